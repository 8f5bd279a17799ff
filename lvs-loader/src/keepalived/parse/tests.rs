//! Unit tests of the keepalived.conf reader.

use super::*;
use super::{reader::include_pattern, text::split_braces};

#[test]
fn comments_like_keepalived() {
    assert_eq!(decomment("  lb_algo rr # round robin"), "lb_algo rr");
    assert_eq!(decomment("lb_algo rr ! comment"), "lb_algo rr");
    assert_eq!(
        decomment("notify \"/bin/echo #1!\" # x"),
        "notify \"/bin/echo #1!\""
    );
    assert_eq!(decomment("a \\# b"), "a # b");
    assert_eq!(decomment("# all comment"), "");
    assert_eq!(decomment("! all comment"), "");
}

#[test]
fn braces_and_words() {
    assert_eq!(
        split_braces("real_server 10.0.0.1 80 { weight 1 }"),
        ["real_server 10.0.0.1 80", "{", "weight 1", "}"]
    );
    assert_eq!(
        split_braces("virtual_server fwmark 3{"),
        ["virtual_server fwmark 3", "{"]
    );
    assert_eq!(split_braces("x \"a{b}\" {"), ["x \"a{b}\"", "{"]);
    assert_eq!(
        words("notify  \"/usr/bin/x a b\"\tc"),
        ["notify", "/usr/bin/x a b", "c"]
    );
}

#[test]
fn brace_expansion() {
    assert_eq!(expand_braces("a{b,c}d"), ["abd", "acd"]);
    assert_eq!(
        expand_braces("{x,y{1,2}}.conf"),
        ["x.conf", "y1.conf", "y2.conf"]
    );
    assert_eq!(expand_braces("plain*.conf"), ["plain*.conf"]);
}

#[test]
fn include_keywords() {
    assert_eq!(
        include_pattern("include /etc/k/*.conf"),
        Some("/etc/k/*.conf")
    );
    assert_eq!(include_pattern("includew  x.conf"), Some("x.conf"));
    assert_eq!(include_pattern("includex x.conf"), None);
    assert_eq!(include_pattern("include_foo 1"), None);
    assert_eq!(include_pattern("include"), None);
}

#[test]
fn tree_and_includes_relative_to_the_including_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("conf.d")).unwrap();
    std::fs::write(
            d.path().join("keepalived.conf"),
            "$MARK=3\nglobal_defs {\n router_id x\n}\ninclude conf.d/*.conf\n@otherhost virtual_server fwmark 99 { }\n@^otherhost vrrp_instance VI { virtual_ipaddress { 172.17.85.56/24 dev eth0 } }\n",
        )
        .unwrap();
    std::fs::write(
        d.path().join("conf.d/a.conf"),
        "virtual_server fwmark $MARK {\n  include ../rs.inc\n}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("rs.inc"),
        "real_server 10.0.0.1 80 { weight 1 }\n",
    )
    .unwrap();
    let c = parse_file(&d.path().join("keepalived.conf"), Some("thishost".into()));
    assert!(c.issues.is_empty(), "{:?}", c.issues);
    let kws: Vec<&str> = c.top.iter().map(Node::keyword).collect();
    assert_eq!(kws, ["global_defs", "virtual_server", "vrrp_instance"]);
    let vs = &c.top[1];
    assert_eq!(vs.words, ["virtual_server", "fwmark", "3"]);
    assert_eq!(vs.loc.line, 1);
    assert!(vs.loc.file.ends_with("conf.d/a.conf"));
    assert_eq!(vs.children[0].words, ["real_server", "10.0.0.1", "80"]);
    assert!(vs.children[0].loc.file.ends_with("rs.inc"));
    assert_eq!(vs.children[0].children[0].words, ["weight", "1"]);
    let vi = &c.top[2];
    assert_eq!(vi.children[0].children[0].words[0], "172.17.85.56/24");
    assert_eq!(c.files.len(), 3);
}

#[test]
fn broken_files_are_reported() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("k.conf"),
        "a {\n b\n}\n}\nc {\ninclude missing.conf\n",
    )
    .unwrap();
    let c = parse_file(&d.path().join("k.conf"), None);
    let msgs: Vec<(usize, &str)> = c
        .issues
        .iter()
        .map(|i| (i.loc.line, i.message.as_str()))
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(msgs.iter().any(|m| m.0 == 4 && m.1 == "extra '}'"));
    assert!(
        msgs.iter()
            .any(|m| m.0 == 6 && m.1.contains("no such file"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.0 == 5 && m.1.contains("never closed"))
    );
}

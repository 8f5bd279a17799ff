//! `lvs-loader import` on a corpus of real-world-shaped rule sets
//! (`tests/data/import/*.rules`): the printed configs and the problems must equal the
//! expected files next to them (`NAME.toml` or `NAME.IFACE.toml`, `NAME.stderr`).
//! `LVS_BLESS=1 cargo test -p lvs-loader --test import` rewrites them (review the diff).
//!
//! Plus the round trip: `export --iptables` of every imported config imports back to the
//! same VIPs, peers and marks.

use std::path::{Path, PathBuf};

use lvs_loader::{
    config::Config,
    export,
    import::{self, Format, Options, Severity},
};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import")
}

/// (file, --merge-peers, translatable exactly)
const CORPUS: &[(&str, bool, bool)] = &[
    ("seed-dr1.rules", false, true),
    ("seed-dr2.rules", false, true),
    ("seed-dr1-commands.rules", false, false),
    ("seed-dr1-commands.rules", true, true),
    ("chain-variant.rules", false, true),
    ("firewalld-direct.rules", false, true),
    ("ipv6-both-families.rules", false, true),
    ("multiport.rules", false, true),
    ("order-conflict.rules", false, true),
    ("untranslatable.rules", false, false),
    ("peer-sets-differ.rules", false, false),
];

fn run(file: &str, merge_peers: bool) -> import::ImportResult {
    let text = std::fs::read_to_string(data().join(file)).expect("corpus file");
    import::import(
        &text,
        &Options {
            format: Format::Auto,
            merge_peers,
            source_name: file.to_owned(),
        },
    )
}

fn expected_name(file: &str, merge: bool, suffix: &str) -> PathBuf {
    let stem = file.trim_end_matches(".rules");
    let stem = if merge {
        format!("{stem}.merged")
    } else {
        stem.to_owned()
    };
    data().join(format!("{stem}{suffix}"))
}

fn check_file(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("LVS_BLESS").is_some() {
        std::fs::write(path, got).expect("bless");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{} differs:\n--- expected\n{want}\n--- got\n{got}",
            path.display()
        )),
        Err(_) => failures.push(format!("{} missing; got:\n{got}", path.display())),
    }
}

#[test]
fn corpus_matches_expected_output() {
    let mut failures = Vec::new();
    for &(file, merge, exact) in CORPUS {
        let r = run(file, merge);
        assert_eq!(
            r.has_errors(),
            !exact,
            "{file} (merge {merge}): {:#?}",
            r.problems
        );
        let stderr: String = r.problems.iter().map(|p| p.render(file) + "\n").collect();
        check_file(
            &expected_name(file, merge, ".stderr"),
            &stderr,
            &mut failures,
        );
        for c in &r.configs {
            let label = if c.ifaces.len() == 1 && !c.ifaces[0].is_empty() {
                format!(".{}.toml", c.ifaces[0])
            } else {
                ".toml".to_owned()
            };
            check_file(&expected_name(file, merge, &label), &c.toml, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What a config means, independent of order, names and comments.
fn meaning(c: &Config) -> (Vec<[u8; 6]>, Vec<String>) {
    let mut peers: Vec<[u8; 6]> = c.peers.iter().map(|p| p.mac).collect();
    peers.sort();
    let mut vips: Vec<String> = c
        .vips
        .iter()
        .map(|v| format!("{} {:?} {} {:#x}", v.address, v.port, v.protocol, v.mark))
        .collect();
    vips.sort();
    (peers, vips)
}

#[test]
fn export_then_import_round_trips() {
    let mut n = 0;
    for &(file, merge, _) in CORPUS {
        let r = run(file, merge);
        for c in &r.configs {
            let exported = export::iptables_restore(&c.config, None);
            let back = import::import(
                &exported,
                &Options {
                    format: Format::Auto,
                    merge_peers: false,
                    source_name: "export".into(),
                },
            );
            assert!(
                !back.has_errors(),
                "{file}: export of\n{}\nimports with problems:\n{:#?}\nexport:\n{exported}",
                c.toml,
                back.problems
            );
            assert_eq!(back.configs.len(), 1, "{file}");
            assert_eq!(
                meaning(&back.configs[0].config),
                meaning(&c.config),
                "{file}:\n{exported}"
            );
            // Names survive through the rule comments.
            let names = |c: &Config| {
                let mut v: Vec<_> = c.vips.iter().map(|v| (v.key(), v.name.clone())).collect();
                v.sort_by_key(|x| format!("{:?}", x.0));
                v
            };
            assert_eq!(names(&back.configs[0].config), names(&c.config), "{file}");
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} configs round-tripped");
}

#[test]
fn export_orders_any_port_first_and_writes_hex_marks() {
    let c = lvs_loader::config::parse(
        "[[peer]]\nmac = \"00:0c:29:57:88:ce\"\n[[peer]]\nmac = \"00:0c:29:57:88:d8\"\n\
         [[vip]]\naddress = \"192.0.2.10\"\nport = 443\nmark = 0x41\nname = \"tls \\\"front\\\"\"\n\
         [[vip]]\naddress = \"192.0.2.10\"\nmark = 0x40\n\
         [[vip]]\naddress = \"2001:db8::57\"\nprotocol = \"udp\"\nmark = 96\n",
        "t.toml",
    )
    .unwrap();
    let out = export::iptables_restore(&c, None);
    let rules: Vec<&str> = out.lines().filter(|l| l.starts_with("-A")).collect();
    assert_eq!(
        rules,
        [
            "-A PREROUTING -d 192.0.2.10/32 -p tcp -m mac ! --mac-source 00:0c:29:57:88:ce -m mac ! --mac-source 00:0c:29:57:88:d8 -j MARK --set-mark 0x40",
            "-A PREROUTING -d 192.0.2.10/32 -p tcp -m tcp --dport 443 -m mac ! --mac-source 00:0c:29:57:88:ce -m mac ! --mac-source 00:0c:29:57:88:d8 -m comment --comment \"tls \\\"front\\\"\" -j MARK --set-mark 0x41",
            "-A PREROUTING -d 2001:db8::57/128 -p udp -m mac ! --mac-source 00:0c:29:57:88:ce -m mac ! --mac-source 00:0c:29:57:88:d8 -j MARK --set-mark 0x60",
        ]
    );
    assert!(out.contains("in ip6tables-save format"));
    let v4 = export::iptables_restore(&c, Some(import::Family::V4));
    assert!(!v4.contains("2001:db8"), "{v4}");
    let v6 = export::iptables_restore(&c, Some(import::Family::V6));
    assert!(!v6.contains("192.0.2.10"), "{v6}");
}

#[test]
fn problems_name_the_rule_and_line() {
    let r = run("untranslatable.rules", false);
    let errs: Vec<(usize, &str)> = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.line.unwrap_or(0), p.reason.as_str()))
        .collect();
    let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
    assert_eq!(lines, [4, 10, 11, 12, 13, 14], "{errs:#?}");
    assert!(errs[1].1.contains("-s 10.0.0.0/8"));
    assert!(errs[2].1.contains("conntrack"));
    assert!(errs[4].1.contains("0xff"));
}

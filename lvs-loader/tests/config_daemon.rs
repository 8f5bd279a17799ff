//! The optional `[daemon]` table (`lvs-loader daemon`'s interfaces): accepted forms, and
//! every rejection with its line, column and field, like the rest of vips.toml.

use lvs_loader::config::{self, ConfigError, Daemon, MAX_DAEMON_INTERFACES};

const BASE: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n";

fn ok(text: &str) -> Daemon {
    config::parse_full(text, "vips.toml")
        .unwrap_or_else(|e| panic!("should be valid:\n{e}"))
        .1
}

fn names(d: &Daemon) -> Vec<String> {
    d.interfaces.iter().map(|i| i.to_string()).collect()
}

/// Asserts a rejection at `line`:`column` naming `field`, with `needle` in the message.
fn rejects(text: &str, line: usize, column: usize, field: &str, needle: &str) {
    let e: ConfigError = config::parse_full(text, "vips.toml").expect_err("should be rejected");
    let msg = e.to_string();
    assert!(
        e.diagnostics().iter().any(|d| d.line == line
            && d.column == column
            && d.field == field
            && d.message.contains(needle)),
        "expected {line}:{column} {field:?} containing {needle:?}, got:\n{msg}"
    );
    assert!(
        msg.chars()
            .all(|c| c == '\n' || lvs_loader::text::is_safe_char(c)),
        "{}",
        msg.escape_debug()
    );
    // The same text without the [daemon] table's problems would still be refused by
    // `parse` too: a config with any problem is never used.
    assert!(config::parse(text, "vips.toml").is_err());
}

#[test]
fn daemon_table_forms() {
    // Absent: no interfaces.
    assert_eq!(ok(BASE), Daemon::default());
    // Before, between and after the other tables; the digest covers it.
    let after = format!("{BASE}[daemon]\ninterfaces = [\"eth0\", \"bond0.100\"]\n");
    assert_eq!(names(&ok(&after)), ["eth0", "bond0.100"]);
    let before = format!("[daemon]\ninterfaces = [\"eth1\"]\n{BASE}");
    assert_eq!(names(&ok(&before)), ["eth1"]);
    let inline = format!("daemon = {{ interfaces = [\"eth2\"] }}\n{BASE}");
    assert_eq!(names(&ok(&inline)), ["eth2"]);
    assert_eq!(
        names(&ok(&format!("{BASE}[daemon]\n"))),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&ok(&format!("{BASE}[daemon]\ninterfaces = []\n"))),
        Vec::<String>::new()
    );
    let a = config::parse(BASE, "vips.toml").unwrap();
    let b = config::parse(&after, "vips.toml").unwrap();
    assert_ne!(
        a.digest, b.digest,
        "the [daemon] table is part of the file's digest"
    );
    assert_eq!(
        (a.vips, a.peers),
        (b.vips, b.peers),
        "and nothing else changes"
    );
    // Exactly the bound is fine.
    let many: Vec<String> = (0..MAX_DAEMON_INTERFACES)
        .map(|i| format!("\"e{i}\""))
        .collect();
    let d = ok(&format!(
        "{BASE}[daemon]\ninterfaces = [{}]\n",
        many.join(", ")
    ));
    assert_eq!(d.interfaces.len(), 1024);
}

#[test]
fn daemon_table_rejections() {
    // Lines: BASE is 6 lines, so [daemon] is line 7.
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = \"eth0\"\n"),
        8,
        14,
        "daemon.interfaces",
        "expected an array of interface names",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [\"eth0\", 7]\n"),
        8,
        23,
        "daemon.interfaces[2]",
        "expected an interface name",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [\"a/b\"]\n"),
        8,
        15,
        "daemon.interfaces[1]",
        "contains '/'",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [\"0123456789abcdef\"]\n"),
        8,
        15,
        "daemon.interfaces[1]",
        "16 bytes long; Linux allows at most 15",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [\"e\\u001b[0m\"]\n"),
        8,
        15,
        "daemon.interfaces[1]",
        "control character",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [\"eth0\",\n  \"eth0\"]\n"),
        9,
        3,
        "daemon.interfaces[2]",
        "eth0 is listed twice, first on line 8",
    );
    rejects(
        &format!("{BASE}[daemon]\ninterface = [\"eth0\"]\n"),
        8,
        1,
        "daemon.interface",
        "unknown key: the [daemon] table has interfaces",
    );
    rejects(
        &format!("{BASE}[daemon]\n[daemon]\n"),
        8,
        1,
        "daemon",
        "a second [daemon] table; the first is on line 7",
    );
    rejects(
        &format!("daemon = {{ interfaces = [] }}\n{BASE}[daemon]\n"),
        8,
        1,
        "daemon",
        "a second [daemon] table; the first is on line 1",
    );
    rejects(
        &format!("{BASE}[[daemon]]\n"),
        7,
        1,
        "daemon",
        "must be a table: write [daemon] (single brackets)",
    );
    rejects(
        &format!("{BASE}[daemon.x]\n"),
        7,
        1,
        "daemon.x",
        "unknown key",
    );
    rejects(
        &format!("daemon = 1\n{BASE}"),
        1,
        1,
        "daemon",
        "must be a table",
    );
    let too_many: Vec<String> = (0..=MAX_DAEMON_INTERFACES)
        .map(|i| format!("\"e{i}\""))
        .collect();
    rejects(
        &format!("{BASE}[daemon]\ninterfaces = [{}]\n", too_many.join(", ")),
        8,
        14,
        "daemon.interfaces",
        "1025 interfaces, more than the 1024",
    );
    // Still an unknown table next to it, with the new list of known ones.
    rejects(
        &format!("{BASE}[deamon]\n"),
        7,
        1,
        "deamon",
        "unknown table: a config has [[peer]], [[vip]] and [daemon] tables only",
    );
}

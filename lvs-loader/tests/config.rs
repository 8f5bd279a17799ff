//! vips.toml validation: what is accepted, and every rejection with its file, line,
//! column and field.

use std::net::IpAddr;

use lvs_loader::config::{self, ConfigError, Protocol};

const PEER: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n";

fn err(text: &str) -> (String, ConfigError) {
    let e = config::parse(text, "vips.toml").expect_err("config should be rejected");
    (e.to_string(), e)
}

/// Asserts a rejection at `line` naming `field`, with `needle` in the message.
fn rejects(text: &str, line: usize, field: &str, needle: &str) {
    let (msg, e) = err(text);
    let d = e.diagnostics();
    assert!(
        d.iter()
            .any(|d| d.line == line && d.field == field && d.message.contains(needle)),
        "expected a diagnostic at line {line} for {field:?} containing {needle:?}, got:\n{msg}"
    );
    assert!(
        msg.starts_with(&format!("vips.toml:{line}:"))
            || msg.contains(&format!("\nvips.toml:{line}:")),
        "{msg}"
    );
}

#[test]
fn the_seed_example_is_accepted() {
    let c = config::parse(
        r#"
# DR1: internal VIP, peer DR2
[[peer]]
mac = "00:0C:29:57:88:CE"
name = "dr2-eth0"

[[vip]]
address = "172.17.85.56"
port = 80
protocol = "tcp"
mark = 0x3
name = "web-internal"
"#,
        "vips.toml",
    )
    .expect("valid");
    assert_eq!(c.peers[0].mac, [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce]);
    assert_eq!(c.peers[0].name.as_deref(), Some("dr2-eth0"));
    let v = &c.vips[0];
    assert_eq!(v.address, "172.17.85.56".parse::<IpAddr>().unwrap());
    assert_eq!((v.port, v.protocol, v.mark), (Some(80), Protocol::Tcp, 3));
}

#[test]
fn defaults_case_and_separators() {
    let c = config::parse(
        r#"
[[peer]]
mac = "00-0c-29-57-88-d8"
[[peer]]
mac = "00:0c:29:DC:d2:6b"
[[vip]]
address = "2001:db8::56"
mark = 4294967295
[[vip]]
address = "172.17.85.56"
protocol = "UDP"
port = 65535
mark = 1
[[vip]]
address = "172.17.85.56"
protocol = "sctp"
port = 1
mark = 0x10
"#,
        "vips.toml",
    )
    .expect("valid");
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[1].mac, [0, 0x0c, 0x29, 0xdc, 0xd2, 0x6b]);
    assert_eq!(c.vips[0].protocol, Protocol::Tcp, "tcp is the default");
    assert_eq!(c.vips[0].port, None, "no port = every port");
    assert_eq!(c.vips[0].mark, u32::MAX);
    assert_eq!(c.vips[1].protocol, Protocol::Udp);
    assert_eq!(c.vips[2].protocol, Protocol::Sctp);
    // Same address and port with another protocol is not a duplicate.
    assert_eq!(c.vips.len(), 3);
}

#[test]
fn digest_is_sha256_of_the_text() {
    let a = config::parse(&format!("{PEER}\n"), "a").expect("valid");
    let b = config::parse(&format!("{PEER}\n\n"), "b").expect("valid");
    assert_ne!(a.digest, b.digest);
    assert_eq!(a.digest_hex().len(), 64);
}

#[test]
fn rejects_the_invalid_address_from_the_seed_write_up() {
    let text = format!("{PEER}[[vip]]\naddress = \"119.253.282.6\"\nport = 80\nmark = 5\n");
    rejects(&text, 4, "vip[1].address", "not a valid IPv4 address");
    let (msg, _) = err(&text);
    assert!(msg.contains("119.253.282.6"), "{msg}");
    assert!(msg.starts_with("vips.toml:4:11: vip[1].address:"), "{msg}");
}

#[test]
fn rejects_bad_addresses() {
    for (a, needle) in [
        ("172.17.85", "not a valid IPv4"),
        ("172.17.85.56.1", "not a valid IPv4"),
        ("256.1.1.1", "not a valid IPv4"),
        ("2001:db8::zz", "not a valid IPv6"),
        ("", "not a valid IPv4"),
        (" 172.17.85.56", "surrounding whitespace"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
    ] {
        let text = format!("{PEER}[[vip]]\naddress = \"{a}\"\nmark = 5\n");
        rejects(&text, 4, "vip[1].address", needle);
    }
}

#[test]
fn rejects_bad_macs() {
    for (m, needle) in [
        ("00:0C:29:57:88", "not a MAC address"),
        ("00:0C:29:57:88:CE:11", "not a MAC address"),
        ("00:0C:29:57:88:CG", "not a MAC address"),
        ("000C.2957.88CE", "not a MAC address"),
        ("0:C:29:57:88:CE", "not a MAC address"),
        ("00:0C-29:57:88:CE", "not a MAC address"),
        ("00:00:00:00:00:00", "all-zero"),
        ("ff:ff:ff:ff:ff:ff", "multicast/broadcast"),
        ("01:00:5e:00:00:01", "multicast/broadcast"),
    ] {
        rejects(
            &format!("[[peer]]\nmac = \"{m}\"\n"),
            2,
            "peer[1].mac",
            needle,
        );
    }
}

#[test]
fn rejects_ports_outside_1_to_65535() {
    for p in ["0", "65536", "-1", "100000"] {
        let text = format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = {p}\nmark = 3\n");
        rejects(&text, 5, "vip[1].port", "not a port in 1-65535");
    }
}

#[test]
fn rejects_mark_zero_and_over_u32() {
    let base = format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = 80\n");
    rejects(
        &format!("{base}mark = 0\n"),
        6,
        "vip[1].mark",
        "must not be 0",
    );
    rejects(
        &format!("{base}mark = 0x100000000\n"),
        6,
        "vip[1].mark",
        "outside 1-0xffffffff",
    );
    rejects(
        &format!("{base}mark = -3\n"),
        6,
        "vip[1].mark",
        "outside 1-0xffffffff",
    );
}

#[test]
fn rejects_missing_mark_and_address() {
    let (msg, e) = err(&format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\n"));
    assert!(msg.contains("missing field `mark`"), "{msg}");
    assert_eq!(e.diagnostics()[0].line, 3, "{msg}");
    let (msg, _) = err(&format!("{PEER}[[vip]]\nmark = 3\n"));
    assert!(msg.contains("missing field `address`"), "{msg}");
}

#[test]
fn rejects_unknown_protocols() {
    for p in ["icmp", "tcp6", "", "TCP/UDP"] {
        let text =
            format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nprotocol = \"{p}\"\nmark = 3\n");
        rejects(&text, 5, "vip[1].protocol", "unknown protocol");
    }
}

#[test]
fn rejects_unknown_keys() {
    let (msg, e) = err(&format!(
        "{PEER}[[vip]]\naddress = \"172.17.85.56\"\nprot = \"tcp\"\nmark = 3\n"
    ));
    assert!(msg.contains("unknown field `prot`"), "{msg}");
    assert_eq!(
        (e.diagnostics()[0].line, e.diagnostics()[0].field.as_str()),
        (5, "vip.prot"),
        "{msg}"
    );
    let (msg, e) = err("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\nmtu = 1500\n");
    assert!(msg.contains("unknown field `mtu`"), "{msg}");
    assert_eq!(e.diagnostics()[0].line, 3, "{msg}");
    let (msg, _) = err(&format!(
        "{PEER}[[vips]]\naddress = \"172.17.85.56\"\nmark = 3\n"
    ));
    assert!(msg.contains("unknown field `vips`"), "{msg}");
}

#[test]
fn rejects_wrong_types_and_bad_toml() {
    let (msg, e) = err(&format!(
        "{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = \"80\"\nmark = 3\n"
    ));
    assert!(msg.contains("invalid type"), "{msg}");
    assert_eq!(
        (e.diagnostics()[0].line, e.diagnostics()[0].field.as_str()),
        (5, "vip.port"),
        "{msg}"
    );
    let (msg, e) = err("[[peer]\nmac = 1\n");
    assert_eq!(e.diagnostics()[0].line, 1, "{msg}");
}

#[test]
fn rejects_duplicate_vips_naming_both_lines() {
    let text = format!(
        "{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nprotocol = \"tcp\"\nmark = 4\n"
    );
    rejects(
        &text,
        8,
        "vip[2]",
        "duplicate VIP 172.17.85.56:80/tcp: already given by vip[1] on line 3",
    );
    // IPv6 written two ways is the same address.
    let text = format!(
        "{PEER}[[vip]]\naddress = \"2001:db8::1\"\nmark = 3\n[[vip]]\naddress = \"2001:0db8:0:0::1\"\nmark = 4\n"
    );
    rejects(&text, 7, "vip[2]", "duplicate VIP [2001:db8::1]:*/tcp");
}

#[test]
fn rejects_duplicate_peers() {
    let text = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[peer]]\nmac = \"00-0c-29-57-88-ce\"\n";
    rejects(
        text,
        4,
        "peer[2].mac",
        "duplicate peer MAC, already given by peer[1] on line 2",
    );
}

#[test]
fn rejects_an_empty_peer_list() {
    rejects(
        "[[vip]]\naddress = \"172.17.85.56\"\nmark = 3\n",
        1,
        "peer",
        "at least one peer",
    );
    rejects("", 1, "peer", "at least one peer");
}

#[test]
fn rejects_more_vips_and_peers_than_the_maps_hold() {
    use std::fmt::Write as _;
    let mut text = String::new();
    for i in 0..=lvs_ebpf_common::MAX_PEERS {
        let _ = write!(
            text,
            "[[peer]]\nmac = \"02:00:00:00:{:02x}:{:02x}\"\n",
            i >> 8,
            i & 0xff
        );
    }
    let (msg, _) = err(&text);
    assert!(
        msg.contains("more than the 1024 the peer map holds"),
        "{}",
        &msg[..msg.len().min(500)]
    );

    let mut text = String::from(PEER);
    for i in 0..=lvs_ebpf_common::MAX_VIPS {
        let _ = write!(
            text,
            "[[vip]]\naddress = \"10.{}.{}.{}\"\nmark = 1\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    let (msg, e) = err(&text);
    assert!(
        msg.contains("more than the 131072 the VIP map holds"),
        "{}",
        &msg[..msg.len().min(500)]
    );
    assert_eq!(e.diagnostics()[0].field, "vip");
}

#[test]
fn rejects_bad_names() {
    let long = "x".repeat(57);
    rejects(
        &format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nmark = 3\nname = \"{long}\"\n"),
        6,
        "vip[1].name",
        "longer than 56",
    );
    rejects(
        &format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nmark = 3\nname = \"\"\n"),
        6,
        "vip[1].name",
        "must not be empty",
    );
    rejects(
        &format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nmark = 3\nname = \"a\\nb\"\n"),
        6,
        "vip[1].name",
        "control characters",
    );
}

#[test]
fn reports_every_problem_at_once() {
    let (msg, e) =
        err("[[peer]]\nmac = \"zz\"\n[[vip]]\naddress = \"1.2.3\"\nport = 0\nmark = 0\n");
    assert_eq!(e.diagnostics().len(), 4, "{msg}");
    assert_eq!(msg.lines().count(), 4, "{msg}");
}

#[test]
fn unreadable_file_names_it() {
    let e = config::load(std::path::Path::new("/nonexistent/vips.toml")).expect_err("missing file");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/vips.toml: cannot read config"),
        "{e}"
    );
}

#[test]
fn load_records_the_absolute_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("vips.toml");
    std::fs::write(&p, PEER).expect("write");
    let c = config::load(&p).expect("valid");
    assert_eq!(c.path.as_deref(), Some(p.as_path()));
}

//! vips.toml validation: what is accepted, and every rejection with its file, line,
//! column and field. Bounds are written out as numbers (64 MiB, 262,144 tokens, 1,000
//! problems, 131,072 VIPs, 56 bytes) so that changing one in the code fails a test.
//!
//! File reading and the CLI's output are in `config_cli.rs`; comparisons with the kernel
//! and iptables in `config_iptables.rs`.

use std::{fmt::Write as _, net::IpAddr};

use lvs_loader::config::{self, Config, ConfigError, Protocol};

const PEER: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n";

fn err(text: &str) -> (String, ConfigError) {
    let e = config::parse(text, "vips.toml").expect_err("config should be rejected");
    (e.to_string(), e)
}

fn ok(text: &str) -> Config {
    config::parse(text, "vips.toml").unwrap_or_else(|e| panic!("should be valid:\n{e}"))
}

/// The config's one peer and one VIP table with `body`.
fn vip(body: &str) -> String {
    format!("{PEER}[[vip]]\n{body}")
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
    // The file as `--json` names it in each problem.
    assert_eq!(e.file(), "vips.toml");
}

/// Every message and field is free of raw control and bidi characters.
fn assert_printable(msg: &str) {
    assert!(
        msg.chars()
            .all(|c| c == '\n' || lvs_loader::text::is_safe_char(c)),
        "raw control or format character in:\n{}",
        msg.escape_debug()
    );
}

#[test]
fn the_seed_example_is_accepted() {
    let c = ok(r#"
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
"#);
    assert_eq!(c.peers[0].mac, [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce]);
    assert_eq!(c.peers[0].name.as_deref(), Some("dr2-eth0"));
    // The peer's map key: the MAC's 6 bytes in order and two zero bytes (the bytes the
    // kernel hashes; a key of zeros would match no peer).
    let k = c.peers[0].key();
    assert_eq!(
        (k.addr, k._pad),
        ([0x00, 0x0c, 0x29, 0x57, 0x88, 0xce], [0, 0])
    );
    let v = &c.vips[0];
    assert_eq!(v.address, "172.17.85.56".parse::<IpAddr>().unwrap());
    assert_eq!((v.port, v.protocol, v.mark), (Some(80), Protocol::Tcp, 3));
}

#[test]
fn defaults_case_and_separators() {
    let c = ok(r#"
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
"#);
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
    let a = ok(&format!("{PEER}\n"));
    let b = ok(&format!("{PEER}\n\n"));
    assert_ne!(a.digest, b.digest);
    assert_eq!(a.digest_hex().len(), 64);
}

#[test]
fn rejects_the_invalid_address_from_the_seed_write_up() {
    let text = vip("address = \"119.253.282.6\"\nport = 80\nmark = 5\n");
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
        rejects(
            &vip(&format!("address = \"{a}\"\nmark = 5\n")),
            4,
            "vip[1].address",
            needle,
        );
    }
}

/// Issue 7 defect 8. What the kernel and iptables do with each is measured in
/// `config_iptables.rs`.
#[test]
fn addresses_that_never_arrive_as_a_vip_are_rejected_with_the_reason_and_the_fix() {
    for (a, needles) in [
        ("127.0.0.1", &["loopback", "route_localnet"][..]),
        ("127.0.0.0", &["loopback"]),
        ("127.255.255.255", &["loopback"]),
        ("::1", &["IPv6 loopback"]),
        (
            "::ffff:10.99.1.1",
            &[
                "IPv4-mapped",
                "-d 10.99.1.1/32",
                "write the IPv4 VIP \"10.99.1.1\"",
            ],
        ),
        ("::ffff:0:0", &["IPv4-mapped", "\"0.0.0.0\""]),
        ("::FFFF:172.17.85.56", &["IPv4-mapped", "\"172.17.85.56\""]),
        (
            "::10.99.1.1",
            &[
                "IPv4-compatible",
                "deprecated",
                "write the IPv4 VIP \"10.99.1.1\"",
            ],
        ),
        ("::0.0.0.2", &["IPv4-compatible"]),
        ("::255.255.255.255", &["IPv4-compatible"]),
    ] {
        let text = vip(&format!("address = \"{a}\"\nmark = 5\n"));
        for needle in needles {
            rejects(&text, 4, "vip[1].address", needle);
        }
    }
}

#[test]
fn addresses_next_to_the_rejected_ranges_are_accepted() {
    for a in [
        "126.255.255.255",
        "128.0.0.0",
        "0.1.2.3",
        "240.0.0.1",
        "255.255.255.254",
        "223.255.255.255",
        "::1:0:0",
        "::1:0:0:0",
        "::fffe:a63:101",
        "::1:ffff:a63:101",
        "64:ff9b::a63:101",
        "fe80::1",
        "2001:db8::1",
    ] {
        let c = ok(&vip(&format!("address = \"{a}\"\nmark = 5\n")));
        assert_eq!(c.vips[0].address, a.parse::<IpAddr>().unwrap(), "{a}");
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
        let text = vip(&format!(
            "address = \"172.17.85.56\"\nport = {p}\nmark = 3\n"
        ));
        rejects(&text, 5, "vip[1].port", "not a port in 1-65535");
    }
}

#[test]
fn rejects_mark_zero_and_over_u32() {
    let base = vip("address = \"172.17.85.56\"\nport = 80\n");
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
    // An integer of 1,000 digits: rejected, and not repeated in full.
    let (msg, _) = err(&format!("{base}mark = {}\n", "9".repeat(1000)));
    assert!(msg.contains("outside 1-0xffffffff"), "{msg}");
    assert!(msg.len() < 300, "{msg}");
}

#[test]
fn rejects_missing_mark_and_address() {
    rejects(
        &vip("address = \"172.17.85.56\"\n"),
        3,
        "vip[1].mark",
        "missing (required)",
    );
    rejects(
        &vip("mark = 3\n"),
        3,
        "vip[1].address",
        "missing (required)",
    );
    rejects(
        "[[peer]]\nname = \"x\"\n",
        1,
        "peer[1].mac",
        "missing (required)",
    );
}

#[test]
fn rejects_unknown_protocols() {
    for p in ["icmp", "tcp6", "", "TCP/UDP"] {
        let text = vip(&format!(
            "address = \"172.17.85.56\"\nprotocol = \"{p}\"\nmark = 3\n"
        ));
        rejects(&text, 5, "vip[1].protocol", "unknown protocol");
    }
}

#[test]
fn rejects_unknown_keys_naming_the_indexed_table() {
    rejects(
        &vip("address = \"172.17.85.56\"\nprot = \"tcp\"\nmark = 3\n"),
        5,
        "vip[1].prot",
        "unknown key",
    );
    rejects(
        "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[peer]]\nmac = \"00:0C:29:57:88:CF\"\nmtu = 1500\n",
        5,
        "peer[2].mtu",
        "unknown key",
    );
    rejects(
        &format!("{PEER}[[vips]]\naddress = \"172.17.85.56\"\nmark = 3\n"),
        3,
        "vips",
        "unknown table",
    );
    rejects(&format!("mark = 3\n{PEER}"), 1, "mark", "unknown key");
    // A key that is not a bare key is quoted.
    rejects(
        &vip("address = \"172.17.85.56\"\nmark = 3\n\"a.b c\" = 1\n"),
        6,
        "vip[1].\"a.b c\"",
        "unknown key",
    );
}

/// Issue 7 defect 11: `vip[2].mark`, not `vip.mark`.
#[test]
fn type_errors_name_the_indexed_field() {
    let ok_vip = "[[vip]]\naddress = \"172.17.85.56\"\nmark = 3\n";
    let text = format!("{PEER}{ok_vip}[[vip]]\naddress = \"172.17.85.57\"\nmark = \"3\"\n");
    rejects(&text, 8, "vip[2].mark", "expected an integer");
    rejects(&text, 8, "vip[2].mark", "found a string");
    for (body, line, field, needle) in [
        (
            "address = 1\nmark = 3\n",
            4,
            "vip[1].address",
            "found an integer",
        ),
        (
            "address = \"1.2.3.4\"\nport = true\nmark = 3\n",
            5,
            "vip[1].port",
            "found a boolean",
        ),
        (
            "address = \"1.2.3.4\"\nport = 8.5\nmark = 3\n",
            5,
            "vip[1].port",
            "found a float",
        ),
        (
            "address = \"1.2.3.4\"\nprotocol = 6\nmark = 3\n",
            5,
            "vip[1].protocol",
            "found an integer",
        ),
        (
            "address = \"1.2.3.4\"\nname = [\"a\"]\nmark = 3\n",
            5,
            "vip[1].name",
            "found an array",
        ),
        (
            "address = \"1.2.3.4\"\nmark = 1979-05-27\n",
            5,
            "vip[1].mark",
            "found a date-time",
        ),
    ] {
        rejects(&vip(body), line, field, needle);
    }
    rejects("[[peer]]\nmac = 1\n", 2, "peer[1].mac", "found an integer");
}

#[test]
fn bad_toml_is_reported_at_its_position_without_its_text() {
    let (msg, e) = err("[[peer]\nmac = 1\n");
    assert_eq!(e.diagnostics()[0].line, 1, "{msg}");
    assert!(msg.contains("TOML syntax"), "{msg}");
    let (msg, e) = err(&format!("{PEER}password = hunter2-Wq9xZ\n"));
    assert_eq!(
        (e.diagnostics()[0].line, e.diagnostics()[0].column),
        (3, 12),
        "{msg}"
    );
    assert!(!msg.contains("hunter2") && !msg.contains("Wq9xZ"), "{msg}");
}

/// A file that is not a config at all, e.g. `sudo lvs-loader check --config
/// /etc/wireguard/private.key` or `/etc/shadow`: positions and the parser's words only,
/// never the file's text (the starting code printed the key as the "field").
#[test]
fn a_secret_file_is_not_echoed() {
    let wireguard_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n";
    let (msg, _) = err(wireguard_key);
    for fragment in ["yAnz", "Bmk", "tji3", "lXXJ"] {
        assert!(!msg.contains(fragment), "{fragment:?} echoed in:\n{msg}");
    }
    assert!(msg.contains("vips.toml:1:8: toml: TOML syntax"), "{msg}");

    let shadow = "root:$y$j9T$Zx8.Qm3sVbQ0$7LKoTt3gvNc8Uu.pwTmJSkdTR4n3UN5hG0/6qA2b:19700:0:99999:7:::\n\
                  daemon:*:19700:0:99999:7:::\n\
                  alice:$6$rounds=5000$S4lt$Hx9q0wHash.Part/Two:19701:0:99999:7:::\n";
    let (msg, e) = err(shadow);
    for fragment in [
        "j9T", "Zx8", "Qm3s", "7LKo", "S4lt", "Hx9q", "Hash", "Part", "Two", "alice", "daemon",
        "root", "19700", "99999", "rounds",
    ] {
        assert!(!msg.contains(fragment), "{fragment:?} echoed in:\n{msg}");
    }
    // One problem per line at most (3 lines), plus "no peer".
    assert!(e.diagnostics().len() <= 4, "{msg}");
    assert!(
        e.diagnostics()
            .iter()
            .any(|d| d.message.contains("TOML syntax")),
        "{msg}"
    );
}

#[test]
fn rejects_duplicate_vips_naming_both_lines() {
    let text = format!(
        "{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nprotocol = \"tcp\"\nmark = 4\n"
    );
    rejects(
        &text,
        9,
        "vip[2]",
        "duplicate VIP 172.17.85.56:80/tcp: already given by vip[1] on line 5",
    );
    // IPv6 written two ways is the same address.
    let text = format!(
        "{PEER}[[vip]]\naddress = \"2001:db8::1\"\nmark = 3\n[[vip]]\naddress = \"2001:0db8:0:0::1\"\nmark = 4\n"
    );
    rejects(
        &text,
        7,
        "vip[2]",
        "duplicate VIP [2001:db8::1]:*/tcp: already given by vip[1] on line 4",
    );
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
fn rejects_more_peers_than_the_map_holds() {
    let peers = |n: u32| {
        let mut text = String::new();
        for i in 0..n {
            let _ = write!(
                text,
                "[[peer]]\nmac = \"02:00:00:00:{:02x}:{:02x}\"\n",
                i >> 8,
                i & 0xff
            );
        }
        text
    };
    assert_eq!(ok(&peers(1024)).peers.len(), 1024);
    let (msg, e) = err(&peers(1025));
    assert!(
        msg.contains("more than the 1024 the peer map holds"),
        "{msg}"
    );
    assert_eq!(
        (e.diagnostics()[0].field.as_str(), e.diagnostics()[0].line),
        ("peer", 2049)
    );
}

/// Capacity is counted on map entries: each port of a list or range is one.
#[test]
fn rejects_more_vip_entries_than_the_map_holds_counting_every_port() {
    // 65,535 + 65,535 + 2 = 131,072 entries: exactly full.
    let full = format!(
        "{PEER}[[vip]]\naddress = \"10.0.0.1\"\nport = \"1-65535\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.2\"\nport = \"1-65535\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.3\"\nport = [1, 2]\nmark = 1\n"
    );
    assert_eq!(ok(&full).vips.len(), 131_072);
    let over = format!(
        "{full}[[vip]]\naddress = \"10.0.0.4\"\nmark = 1\n[[vip]]\naddress = \"10.0.0.5\"\nmark = 1\n"
    );
    let (msg, e) = err(&over);
    rejects(&over, 16, "vip", "more than the 131072 the VIP map holds");
    assert!(msg.contains("vip[4] adds VIP entry 131073"), "{msg}");
    assert!(
        msg.contains("the 1 [[vip]] tables after it were not checked"),
        "{msg}"
    );
    assert_eq!(e.diagnostics().len(), 1, "{msg}");
    // One entry too many inside a list.
    let over = full.replace("port = [1, 2]", "port = [1, 2, 3]");
    rejects(&over, 13, "vip", "more than the 131072 the VIP map holds");
}

#[test]
fn rejects_bad_names() {
    let long = "x".repeat(57);
    rejects(
        &vip(&format!(
            "address = \"172.17.85.56\"\nmark = 3\nname = \"{long}\"\n"
        )),
        6,
        "vip[1].name",
        "longer than 56",
    );
    let c = ok(&vip(&format!(
        "address = \"172.17.85.56\"\nmark = 3\nname = \"{}\"\n",
        "x".repeat(56)
    )));
    assert_eq!(c.vips[0].name.as_deref().map(str::len), Some(56));
    rejects(
        &vip("address = \"172.17.85.56\"\nmark = 3\nname = \"\"\n"),
        6,
        "vip[1].name",
        "must not be empty",
    );
    rejects(
        &vip("address = \"172.17.85.56\"\nmark = 3\nname = \"a\\nb\"\n"),
        6,
        "vip[1].name",
        "control characters",
    );
}

/// Issue 7 defect 11: a right-to-left override shows `web-prod` as something else.
#[test]
fn names_with_bidi_or_invisible_characters_are_rejected() {
    for esc in [
        "\\u202E", "\\u2066", "\\u200B", "\\uFEFF", "\\u061C", "\\u009B", "\\u007F",
    ] {
        let text = vip(&format!(
            "address = \"172.17.85.56\"\nmark = 3\nname = \"web{esc}-prod\"\n"
        ));
        rejects(&text, 6, "vip[1].name", "invisible/bidi");
        let (msg, _) = err(&text);
        assert_printable(&msg);
        rejects(
            &format!("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\nname = \"dr2{esc}\"\n"),
            3,
            "peer[1].name",
            "invisible/bidi",
        );
    }
    // Printable non-ASCII is fine.
    let c = ok(&vip(
        "address = \"172.17.85.56\"\nmark = 3\nname = \"wéb 名前\"\n",
    ));
    assert_eq!(c.vips[0].name.as_deref(), Some("wéb 名前"));
}

#[test]
fn reports_every_problem_at_once() {
    let (msg, e) =
        err("[[peer]]\nmac = \"zz\"\n[[vip]]\naddress = \"1.2.3\"\nport = 0\nmark = 0\n");
    assert_eq!(e.diagnostics().len(), 4, "{msg}");
    assert_eq!(msg.lines().count(), 4, "{msg}");
}

/// Issue 8: an unknown key or a type error used to stop validation before the rest.
#[test]
fn unknown_keys_type_errors_and_semantic_errors_come_out_in_one_run_sorted() {
    let text = "[[peer]]\nmac = \"zz\"\ncolour = \"red\"\n\
                [[vip]]\naddress = \"1.2.3\"\nprot = \"tcp\"\nport = \"80\"\nmark = \"3\"\n\
                [[vip]]\naddress = \"10.0.0.1\"\nmark = 0\n\
                [bogus]\n";
    let (msg, e) = err(text);
    let got: Vec<(usize, &str)> = e
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "peer[1].mac"),
            (3, "peer[1].colour"),
            (5, "vip[1].address"),
            (6, "vip[1].prot"),
            (7, "vip[1].port"),
            (8, "vip[1].mark"),
            (11, "vip[2].mark"),
            (12, "bogus"),
        ],
        "{msg}"
    );
    for (i, line) in msg.lines().enumerate() {
        let d = &e.diagnostics()[i];
        assert_eq!(
            line.trim_start_matches("lvs-loader: error: "),
            format!(
                "vips.toml:{}:{}: {}: {}",
                d.line, d.column, d.field, d.message
            )
        );
    }
}

#[test]
fn port_lists_and_ranges_expand_to_one_vip_per_port() {
    let c = ok(&format!(
        "{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = [80, 443, \"8000-8003\"]\nmark = 3\nname = \"web\"\n\
         [[vip]]\naddress = \"172.17.85.56\"\nport = \"65534-65535\"\nprotocol = \"udp\"\nmark = 4\n\
         [[vip]]\naddress = \"172.17.85.56\"\nport = [1]\nmark = 5\n\
         [[vip]]\naddress = \"172.17.85.56\"\nmark = 6\n"
    ));
    let got: Vec<(Option<u16>, Protocol, u32, Option<&str>)> = c
        .vips
        .iter()
        .map(|v| (v.port, v.protocol, v.mark, v.name.as_deref()))
        .collect();
    let web = |p| (Some(p), Protocol::Tcp, 3, Some("web"));
    assert_eq!(
        got,
        vec![
            web(80),
            web(443),
            web(8000),
            web(8001),
            web(8002),
            web(8003),
            (Some(65534), Protocol::Udp, 4, None),
            (Some(65535), Protocol::Udp, 4, None),
            (Some(1), Protocol::Tcp, 5, None),
            (None, Protocol::Tcp, 6, None),
        ]
    );
    // Unnamed entries are named by their own port.
    assert_eq!(c.vips[6].display_name(), "172.17.85.56:65534/udp");
    assert_eq!(c.vips[7].display_name(), "172.17.85.56:65535/udp");
    // A whole-range VIP.
    let c = ok(&vip(
        "address = \"10.0.0.1\"\nport = \"1-65535\"\nmark = 1\n",
    ));
    assert_eq!(c.vips.len(), 65535);
    assert_eq!((c.vips[0].port, c.vips[65534].port), (Some(1), Some(65535)));
}

#[test]
fn port_ranges_need_first_below_last_within_1_to_65535() {
    for (r, needle) in [
        ("0-10", "0 is not a port in 1-65535"),
        ("1-65536", "65536 is not a port in 1-65535"),
        ("8000-8000", "FIRST < LAST"),
        ("8001-8000", "FIRST < LAST"),
        ("8000:8100", "write the range as \"8000-8100\""),
        ("80", "write a single port as a number (port = 80)"),
        ("80-", "not a port range"),
        ("-80", "not a port range"),
        ("a-b", "not a port range"),
        ("1-2-3", "not a port range"),
        ("", "not a port range"),
    ] {
        let text = vip(&format!(
            "address = \"10.0.0.1\"\nport = \"{r}\"\nmark = 1\n"
        ));
        rejects(&text, 5, "vip[1].port", needle);
    }
    for (r, n) in [("1-2", 2), ("65534-65535", 2), ("8000-8100", 101)] {
        let c = ok(&vip(&format!(
            "address = \"10.0.0.1\"\nport = \"{r}\"\nmark = 1\n"
        )));
        assert_eq!(c.vips.len(), n, "{r}");
    }
}

#[test]
fn bad_port_lists_name_the_element() {
    for (list, field, needle) in [
        ("[]", "vip[1].port", "empty port list"),
        ("[80, true]", "vip[1].port[2]", "found a boolean"),
        ("[80, [443]]", "vip[1].port[2]", "found an array"),
        ("[80, {a = 1}]", "vip[1].port[2]", "found a table"),
        ("[80, 0]", "vip[1].port[2]", "not a port in 1-65535"),
        ("[80, 443, \"9-8\"]", "vip[1].port[3]", "FIRST < LAST"),
    ] {
        rejects(
            &vip(&format!(
                "address = \"10.0.0.1\"\nport = {list}\nmark = 1\n"
            )),
            5,
            field,
            needle,
        );
    }
}

#[test]
fn duplicates_across_lists_and_ranges_name_the_first_line() {
    // Within one list.
    rejects(
        &vip("address = \"10.0.0.1\"\nport = [80,\n  \"70-90\"]\nmark = 1\n"),
        6,
        "vip[1]",
        "duplicate VIP 10.0.0.1:80/tcp: already given by vip[1] on line 5",
    );
    // Across tables, overlapping ranges: reported once, with the count.
    let text = format!(
        "{PEER}[[vip]]\naddress = \"10.0.0.1\"\nport = \"8000-8100\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.1\"\nmark = 2\nport = [\n  443,\n  \"8050-8200\",\n]\n"
    );
    let (msg, e) = err(&text);
    assert_eq!(e.diagnostics().len(), 1, "{msg}");
    rejects(
        &text,
        12,
        "vip[2]",
        "duplicate VIP 10.0.0.1:8050/tcp (and 50 more ports of this range): already given by vip[1] on line 5",
    );
    // Another protocol or address is not a duplicate; an any-port VIP is not either.
    ok(&format!(
        "{PEER}[[vip]]\naddress = \"10.0.0.1\"\nport = \"8000-8100\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.1\"\nport = \"8000-8100\"\nprotocol = \"udp\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.2\"\nport = \"8000-8100\"\nmark = 1\n\
         [[vip]]\naddress = \"10.0.0.1\"\nmark = 1\n"
    ));
}

#[test]
fn tables_of_other_shapes() {
    // Inline arrays of inline tables are the same thing as [[vip]] tables.
    let c = ok(
        "peer = [{mac = \"00:0C:29:57:88:CE\"}]\nvip = [\n  {address = \"10.0.0.1\", mark = 1},\n  {address = \"10.0.0.2\", mark = 2, port = [80, 81]},\n]\n",
    );
    assert_eq!((c.peers.len(), c.vips.len()), (1, 3));
    rejects(
        "peer = [{mac = \"00:0C:29:57:88:CE\"}]\nvip = [{address = \"10.0.0.1\", mark = 1}, 3]\n",
        2,
        "vip[2]",
        "expected a table",
    );
    // ... but TOML cannot add [[vip]] tables to them.
    rejects(
        &format!(
            "vip = [{{address = \"10.0.0.1\", mark = 1}}]\n{PEER}[[vip]]\naddress = \"10.0.0.2\"\nmark = 1\n"
        ),
        4,
        "vip",
        "TOML cannot add tables to `vip`: it was given as an inline array `vip = [...]` on line 1",
    );
    rejects(
        &format!("{PEER}[vip]\naddress = \"10.0.0.1\"\nmark = 1\n"),
        3,
        "vip",
        "write [[vip]] (double brackets)",
    );
    rejects(
        &format!("vip = 3\n{PEER}"),
        1,
        "vip",
        "must be an array of tables",
    );
    // [vip.x] after [[vip]] is a sub-table of the last VIP.
    rejects(
        &format!("{PEER}[[vip]]\naddress = \"10.0.0.1\"\nmark = 1\n[vip.extra]\nx = 1\n"),
        6,
        "vip[1].extra",
        "unknown key",
    );
    rejects(
        &format!("{PEER}[other]\nx = 1\n"),
        3,
        "other",
        "unknown table",
    );
    rejects(&format!("{PEER}[a.b]\n"), 3, "a.b", "unknown table");
}

/// Issue 7 defect 11: ESC sequences in keys, values, table names are printed escaped.
#[test]
fn hostile_text_is_escaped_in_every_message() {
    let text = "[[peer]]\nmac = \"00:0C:29:57:88:CE\\u001b[2J\"\n\"k\\u001b]0;pwn\\u0007\" = 1\n\
                [[vip]]\naddress = \"10.0.0.1\\u001b[31m\"\nprotocol = \"tcp\\u009b1m\"\nmark = 1\n\
                [[\"t\\u001bx\"]]\n[[vip]]\naddress = \"10.0.0.2\"\nmark = 1\n\"\\u202e\" = 2\n";
    let (msg, e) = err(text);
    assert_printable(&msg);
    for d in e.diagnostics() {
        assert_printable(&d.field);
        assert_printable(&d.message);
    }
    for needle in [
        "peer[1].mac: \"00:0C:29:57:88:CE\\x1b[2J\" is not a MAC",
        "peer[1].\"k\\x1b]0;pwn\\x07\": unknown key",
        "vip[1].address: \"10.0.0.1\\x1b[31m\" is not a valid IPv4",
        "vip[1].protocol: unknown protocol \"tcp\\x9b1m\"",
        "\"t\\x1bx\": unknown table",
        "vip[2].\"\\u{202e}\": unknown key",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }
    // A raw control character in a string is a TOML syntax error: reported, not echoed.
    let (msg, _) = err(&vip("address = \"10.0.0.1\x1b[31m\"\nmark = 1\n"));
    assert_printable(&msg);
    assert!(msg.contains("vips.toml:4:"), "{msg}");
}

#[test]
fn a_10_mb_key_or_value_is_not_echoed() {
    let huge = "k".repeat(10 << 20);
    for text in [
        format!("{PEER}\"{huge}\" = 1\n"),
        format!("{PEER}{huge} = 1\n"),
        format!("{huge} = 1\n{PEER}"),
        format!("[{huge}]\n{PEER}"),
        vip(&format!("address = \"{huge}\"\nmark = 1\n")),
        vip(&format!(
            "address = \"10.0.0.1\"\nmark = 1\nname = \"{huge}\"\n"
        )),
        vip(&format!(
            "address = \"10.0.0.1\"\nmark = 1\nport = \"{huge}\"\n"
        )),
    ] {
        let (msg, _) = err(&text);
        assert!(msg.len() < 600, "{} bytes: {}", msg.len(), &msg[..600]);
    }
}

/// Memory is bounded by the largest table: 262,144 tokens (keys, values, punctuation).
#[test]
fn a_table_of_262144_tokens_is_parsed_and_one_more_is_refused() {
    // [[vip]] = 5 tokens, `port = [` 3, k values and k-1 commas, `]` 1: 2k + 8.
    let table = |k: usize, trailing_comma: bool| {
        format!(
            "{PEER}[[vip]]\nport = [{}{}]\n",
            vec!["1"; k].join(","),
            if trailing_comma { "," } else { "" }
        )
    };
    let too_large = "more than 262144 TOML tokens";
    let (msg, _) = err(&table(131_068, false)); // 262,144 tokens
    assert!(!msg.contains(too_large), "{}", &msg[..msg.len().min(300)]);
    assert!(
        msg.contains("vip[1].address: missing"),
        "parsed and checked"
    );
    let (msg, _) = err(&table(131_068, true)); // 262,145 tokens
    assert!(msg.contains(too_large), "{}", &msg[..msg.len().min(300)]);
}

#[test]
fn problems_stop_at_1000() {
    let mut text = String::from(PEER);
    for i in 0..1500 {
        let _ = writeln!(
            text,
            "[[vip]]\naddress = \"10.0.{}.{}\"\nmark = 0",
            i / 256,
            i % 256
        );
    }
    let (_, e) = err(&text);
    let d = e.diagnostics();
    assert_eq!(d.len(), 1001);
    assert!(d[..1000].iter().all(|d| d.field.ends_with(".mark")));
    assert!(
        d[1000].message.contains("stopped after 1000 problems"),
        "{}",
        d[1000].message
    );
    // Where checking stopped: vip[1001]'s header.
    assert_eq!(d[1000].line, 2 + 1000 * 3 + 1);
}

#[test]
fn crlf_comments_and_a_leading_byte_order_mark() {
    let text = "\u{feff}# DR1\r\n[[peer]]  # dr2\r\nmac = \"00:0C:29:57:88:CE\"\r\n\r\n\t[[vip]]\r\n  address = \"10.0.0.1\" # web\r\n  mark = 0\r\n";
    rejects(text, 7, "vip[1].mark", "must not be 0");
    let (_, e) = err(text);
    assert_eq!(e.diagnostics()[0].column, 10);
    ok(&text.replace("mark = 0", "mark = 1"));
    // A byte order mark elsewhere, a control character in a comment, a lone CR: errors.
    rejects(&format!("{PEER}\u{feff}\n"), 3, "toml", "byte order mark");
    rejects(&format!("{PEER}# a\x01b\n"), 3, "peer[1]", "TOML syntax");
    rejects(&format!("{PEER}# a\x7f\n"), 3, "peer[1]", "TOML syntax");
    rejects(&format!("{PEER}\ra = 1\n"), 3, "peer[1]", "TOML syntax");
    ok(&format!("{PEER}# tabs\tand ünïcödé are fine\n"));
}

#[test]
fn load_records_the_absolute_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("vips.toml");
    std::fs::write(&p, PEER).expect("write");
    let c = config::load(&p).expect("valid");
    assert_eq!(c.path.as_deref(), Some(p.as_path()));
}

/// Hostile input in general: random edits of a valid config never panic, and whatever
/// comes out is printable and points inside the file.
#[test]
fn random_edits_never_panic_and_print_safely() {
    let base = format!(
        "{PEER}name = \"dr2\"\n\n[[vip]]\naddress = \"172.17.85.56\"\nport = [80, \"8000-8002\"]\nmark = 0x3 # web\n\
         vip = [{{address = \"10.0.0.1\", mark = 1}}]\n[[vip]]\naddress = \"2001:db8::1\"\nprotocol = \"udp\"\nmark = 4\nname = \"v6\"\n"
    );
    let pieces = [
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        "=",
        ",",
        "\"",
        "'",
        "'''",
        "\"\"\"",
        "#",
        "\n",
        "\r",
        "\r\n",
        "\t",
        " ",
        "\\",
        "\\u001b",
        "\x1b",
        "\u{202e}",
        "\u{feff}",
        "é",
        "vip",
        "peer",
        "port",
        "mark",
        "0x",
        "-",
        ".",
        "9999999999999999999999",
        "\u{0}",
        "a.b",
        "1979-05-27",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..10_000 {
        let mut text = base.clone();
        for _ in 0..1 + next(4) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => text.insert_str(at, pieces[next(pieces.len())]),
                1 => {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, pieces[next(pieces.len())]);
                }
            }
        }
        let lines = text.lines().count().max(1) + 1;
        if let Err(e) = config::parse(&text, "vips.toml") {
            assert_printable(&e.to_string());
            for d in e.diagnostics() {
                assert!(
                    d.line >= 1 && d.line <= lines,
                    "line {} of {lines}: {text:?}",
                    d.line
                );
                assert!(d.column >= 1, "{text:?}");
            }
        }
    }
}

/// Found by `cargo xtask mutants` (host shard 0/40: every arm of `from_number` could go):
/// the map's protocol byte maps back to the protocol it came from, and nothing else does.
#[test]
fn protocol_numbers_round_trip() {
    use lvs_loader::config::Protocol;
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        assert_eq!(Protocol::from_number(p.number()), Some(p), "{p:?}");
    }
    for n in [0u8, 1, 58, 255] {
        assert_eq!(Protocol::from_number(n), None, "{n}");
    }
}

/// `mark_mask`: the default (all 32 bits), the top-level default, a VIP's own, the bounds
/// (1 and 0xffffffff accepted; 0, 2^32 and negatives refused with the reason), a mark
/// outside its mask refused, and an unknown key's message naming `mark_mask`.
#[test]
fn mark_mask_defaults_bounds_and_overrides() {
    let c = ok(&vip("address = \"10.0.0.1\"\nmark = 3\n"));
    assert_eq!(c.vips[0].mark_mask, 0xffff_ffff);
    let c = ok(&format!(
        "mark_mask = 0xff\n{PEER}[[vip]]\naddress = \"10.0.0.1\"\nmark = 3\n[[vip]]\naddress = \"10.0.0.2\"\nmark = 0x300\nmark_mask = 0xff00\n"
    ));
    assert_eq!(
        (c.vips[0].mark_mask, c.vips[1].mark_mask, c.vips[1].mark),
        (0xff, 0xff00, 0x300)
    );
    for (mask, mark) in [
        ("1", "1"),
        ("0xffffffff", "0xffffffff"),
        ("0x80000000", "0x80000000"),
    ] {
        let c = ok(&vip(&format!(
            "address = \"10.0.0.1\"\nmark = {mark}\nmark_mask = {mask}\n"
        )));
        assert_eq!(
            c.vips[0].mark_mask,
            u32::from_str_radix(
                mask.trim_start_matches("0x"),
                if mask.starts_with("0x") { 16 } else { 10 }
            )
            .unwrap()
        );
    }
    rejects(
        &vip("address = \"10.0.0.1\"\nmark = 1\nmark_mask = 0\n"),
        6,
        "vip[1].mark_mask",
        "must not be 0",
    );
    for bad in ["0x100000000", "-1"] {
        rejects(
            &vip(&format!(
                "address = \"10.0.0.1\"\nmark = 1\nmark_mask = {bad}\n"
            )),
            6,
            "vip[1].mark_mask",
            "outside 0x1-0xffffffff",
        );
    }
    rejects(
        &format!("mark_mask = 0\n{PEER}"),
        1,
        "mark_mask",
        "must not be 0",
    );
    let (msg, _) = err(&vip(
        "address = \"10.0.0.1\"\nmark = 0x100\nmark_mask = 0xff\n",
    ));
    assert!(msg.contains("vip[1].mark"), "{msg}");
    let (msg, _) = err(&vip("address = \"10.0.0.1\"\nmark = 1\nmask = 1\n"));
    assert!(
        msg.contains("a vip table has address, port, protocol, mark, mark_mask or name"),
        "{msg}"
    );
}

/// MACs print as lowercase colon-separated hex (`stats`, `explain`, import comments).
#[test]
fn macs_print_in_lowercase_with_colons() {
    assert_eq!(
        config::format_mac(&[0x00, 0x0C, 0x29, 0x57, 0x88, 0xCE]),
        "00:0c:29:57:88:ce"
    );
    let c = ok(PEER);
    assert_eq!(config::format_mac(&c.peers[0].mac), "00:0c:29:57:88:ce");
}

/// Field names in messages: a bare key as written, any other quoted; `[vip.x]` after
/// two vips names the second; `[vip]` and `[vip.x]` before any `[[vip]]` are refused as
/// what they are; syntax errors on two lines of one table are both reported.
#[test]
fn field_names_and_positions_in_messages() {
    let text = vip("address = \"10.0.0.1\"\nmark = 1\nprot = 1\n\"a b\" = 2\nmy-key_2 = 3\n");
    rejects(
        &text,
        6,
        "vip[1].prot",
        "unknown key: a vip table has address",
    );
    rejects(&text, 7, "vip[1].\"a b\"", "unknown key");
    rejects(&text, 8, "vip[1].my-key_2", "unknown key");
    let two = format!(
        "{PEER}[[vip]]\naddress = \"10.0.0.1\"\nmark = 1\n[[vip]]\naddress = \"10.0.0.2\"\nmark = 2\n[vip.x]\na = 1\n"
    );
    rejects(&two, 9, "vip[2].x", "unknown key: a vip table has address");
    // `[vip]` after a `[[vip]]` too.
    let after = format!("{PEER}[[vip]]\naddress = \"10.0.0.1\"\nmark = 1\n[vip]\na = 1\n");
    rejects(&after, 6, "vip", "must be an array of tables");
    for t in ["[vip]\naddress = \"10.0.0.1\"\n", "[vip.x]\na = 1\n"] {
        rejects(
            &format!("{PEER}{t}"),
            3,
            "vip",
            "must be an array of tables",
        );
    }
    let (_, e) = err(&vip("address = = \"10.0.0.1\"\nmark = = 1\n"));
    let lines: Vec<usize> = e.diagnostics().iter().map(|d| d.line).collect();
    assert_eq!(lines, [4, 5]);
}

/// At most 15 distinct masks besides the full one (the program's mask classes): 15 are
/// accepted, each VIP keeping its own; a 16th is refused at its VIP.
#[test]
fn fifteen_distinct_masks_and_not_sixteen() {
    let with = |n: u32| {
        let mut s = String::from(PEER);
        for i in 0..n {
            write!(
                s,
                "[[vip]]\naddress = \"10.0.0.{}\"\nmark = 1\nmark_mask = {:#x}\n",
                i + 1,
                (1u32 << i) | 1
            )
            .unwrap();
        }
        s
    };
    let c = ok(&with(15));
    let masks: Vec<u32> = c.vips.iter().map(|v| v.mark_mask).collect();
    assert_eq!(masks, (0..15).map(|i| (1u32 << i) | 1).collect::<Vec<_>>());
    rejects(
        &with(16),
        66,
        "vip[16].mark_mask",
        "a 16th distinct mark_mask",
    );
    // The full mask written out and a repeated mask are not new classes.
    let more = with(15)
        + "[[vip]]\naddress = \"10.0.1.1\"\nmark = 1\nmark_mask = 0xffffffff\n"
        + "[[vip]]\naddress = \"10.0.1.2\"\nmark = 1\nmark_mask = 0x3\n";
    assert_eq!(ok(&more).vips.len(), 17);
}

/// The usual headers are recognized without toml's parser (`parse_header`'s fast path),
/// from their characters other than whitespace. A header with a non-ASCII character whose
/// low byte is that of `[`, `]` or a letter of `vip`/`peer` (U+015D is `]` + 0x100,
/// U+0176 `v` + 0x100) is rejected, not read as `[[vip]]` or `[[peer]]` byte by byte.
/// (Two checks stand in the way: the fast path sends non-ASCII to the parser, and the
/// section's own text is parsed too; cargo-mutants' `||` -> `&&` on the first one
/// survives because of the second.)
#[test]
fn non_ascii_header_characters_are_not_read_as_vip_or_peer() {
    let body = "address = \"10.0.0.1\"\nport = 80\nmark = 1\n";
    ok(&format!("{PEER}[[vip]]\n{body}"));
    for header in [
        "[[vip\u{15d}]",
        "[[\u{176}ip]]",
        "[\u{15b}vip]]",
        "[[vip]\u{15d}",
    ] {
        let text = format!("{PEER}{header}\n{body}");
        let (msg, _) = err(&text);
        assert!(msg.starts_with("vips.toml:3:"), "{header:?}: {msg}");
    }
    let peer = "mac = \"00:0C:29:57:88:CE\"\n";
    let vip = format!("[[vip]]\n{body}");
    ok(&format!("[[peer]]\n{peer}{vip}"));
    let (msg, _) = err(&format!("[[\u{170}eer]]\n{peer}{vip}"));
    assert!(msg.starts_with("vips.toml:1:"), "{msg}");
}

//! `lvs-loader explain` on a real attachment in a test namespace: every reason code the
//! program gives a linear frame, in the issue's words, from the kernel's own decision
//! code; the live counters untouched; a capture of several packets (pcap and pcapng);
//! `--config`; hostile input refused with a clear error and nothing changed.
//!
//! `nonlinear` is the one reason a test run cannot give: BPF_PROG_TEST_RUN hands the
//! program a linear frame (tests/tests/nonlinear.rs sends frames whose headers lie in page
//! fragments and checks the pull).

use std::net::{Ipv4Addr, Ipv6Addr};

use lvs_tests::{
    conf::WEB_NAMED,
    frames::{ETH_P_ARP, Frame, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str, stderr},
};

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0xc1, 0x1e, 0x01];
const CLIENT_STR: &str = "52:54:00:c1:1e:01";
const PEER: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const PEER_STR: &str = "00:0C:29:57:88:CE";
const VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
const ANY: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 60);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56);
const SRC: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 100);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// [`WEB_NAMED`] plus an any-port UDP VIP and an IPv6 VIP on two ports.
const EXTRA: &str = r#"
[[vip]]
address = "172.17.85.60"
protocol = "udp"
mark = 0x7
name = "dns-all-ports"

[[vip]]
address = "2001:db8::56"
port = [80, 443]
mark = 0x6
name = "web6"
"#;

fn config() -> String {
    format!("{WEB_NAMED}\n{EXTRA}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attached(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    let c = lab.config("vips.toml", &config());
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
    lab
}

/// `explain DEV ARGS...`: its one line of output.
fn explain(lab: &Lab, args: &[&str]) -> String {
    let mut a = vec!["explain", DEV];
    a.extend_from_slice(args);
    lab.loader_ok(&a).trim_end().to_owned()
}

fn explain_frame(lab: &Lab, f: Frame) -> String {
    explain(lab, &["--frame", &hex(&f.bytes())])
}

fn tcp(dst: Ipv4Addr, port: u16) -> Frame {
    Frame::v4(CLIENT, SRC, dst, IPPROTO_TCP, 40000, port)
}

/// The counters as `stats --json` shows them (per VIP and totals).
fn counters(lab: &Lab) -> serde_json::Value {
    let s = lab.stats();
    serde_json::json!({"vips": s["vips"], "totals": s["totals"]})
}

#[test]
fn every_reason_in_words_without_touching_counters() {
    let lab = attached("exr");
    // Real traffic first, so that "unchanged" means something.
    let web = tcp(VIP, 80).with_dst_mac(DIRECTOR_MAC).bytes();
    lab.send(&[web.clone(), web.clone(), web]);
    let before = counters(&lab);
    assert_eq!(before["totals"]["marked"], 3, "{before}");

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "marked",
            explain(
                &lab,
                &["--src-mac", CLIENT_STR, "--dst", "172.17.85.56:80/tcp"],
            ),
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)",
        ),
        (
            "peer",
            explain(&lab, &["--src-mac", PEER_STR, "--dst", "172.17.85.56:80"]),
            "00:0c:29:57:88:ce > 172.17.85.56:80/tcp: unmarked: source 00:0c:29:57:88:ce is peer dr2-eth0 (for VIP web-internal (172.17.85.56:80/tcp))",
        ),
        (
            "no VIP, other port",
            explain(
                &lab,
                &["--src-mac", CLIENT_STR, "--dst", "172.17.85.56:443/tcp"],
            ),
            "52:54:00:c1:1e:01 > 172.17.85.56:443/tcp: unmarked: no VIP 172.17.85.56:443/tcp (this address has only :80/tcp)",
        ),
        (
            "no VIP, other address",
            explain(&lab, &["--src-mac", CLIENT_STR, "--dst", "10.1.2.3:80"]),
            "52:54:00:c1:1e:01 > 10.1.2.3:80/tcp: unmarked: no VIP 10.1.2.3:80/tcp (no VIP has this address)",
        ),
        (
            "IPv6 port list",
            explain(
                &lab,
                &["--src-mac", CLIENT_STR, "--dst", "[2001:db8::56]:443/tcp"],
            ),
            "52:54:00:c1:1e:01 > [2001:db8::56]:443/tcp: marked 0x6 by VIP web6 ([2001:db8::56]:443/tcp)",
        ),
        (
            "any-port VIP",
            explain(
                &lab,
                &["--src-mac", CLIENT_STR, "--dst", "172.17.85.60:5353/udp"],
            ),
            "52:54:00:c1:1e:01 > 172.17.85.60:5353/udp: marked 0x7 by VIP dns-all-ports (172.17.85.60:*/udp)",
        ),
        (
            "fragment",
            explain_frame(&lab, tcp(VIP, 80).with_fragment(64, false)),
            "52:54:00:c1:1e:01 > 172.17.85.56/tcp: unmarked: non-first fragment, only any-port VIPs can match (this address has only :80/tcp)",
        ),
        (
            "fragment of an any-port VIP",
            explain_frame(
                &lab,
                Frame::v4(CLIENT, SRC, ANY, IPPROTO_UDP, 1, 53).with_fragment(64, false),
            ),
            "52:54:00:c1:1e:01 > 172.17.85.60/udp: marked 0x7 by VIP dns-all-ports (172.17.85.60:*/udp), as a non-first fragment (no port: matched the any-port VIP)",
        ),
        (
            "IPv6 fragment",
            explain_frame(
                &lab,
                Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 1, 80).with_fragment(64, false),
            ),
            "52:54:00:c1:1e:01 > [2001:db8::56]/tcp: unmarked: non-first fragment, only any-port VIPs can match (this address has only :80/tcp, :443/tcp)",
        ),
        (
            "TCP header cut short",
            explain_frame(&lab, tcp(VIP, 80).with_l4_len(10)),
            "52:54:00:c1:1e:01 > 172.17.85.56/tcp: unmarked: TCP header cut short, only any-port VIPs can match (this address has only :80/tcp)",
        ),
        (
            "other protocol",
            explain_frame(&lab, Frame::v4(CLIENT, SRC, VIP, IPPROTO_ICMP, 0, 0)),
            "52:54:00:c1:1e:01 > 172.17.85.56 icmp: unmarked: icmp is not TCP, UDP or SCTP (no VIP can match)",
        ),
        (
            "not IP",
            explain_frame(&lab, Frame::raw(CLIENT, ETH_P_ARP, vec![0; 28])),
            "52:54:00:c1:1e:01 > ethertype 0x0806: unmarked: not IPv4 or IPv6 (ethertype 0x0806)",
        ),
        (
            "malformed",
            explain_frame(&lab, tcp(VIP, 80).cut(14 + 30)),
            "52:54:00:c1:1e:01 > 172.17.85.56/tcp: unmarked: malformed IP packet (bad version or header length, lengths past the frame, or an unreadable IPv6 extension header chain; the kernel drops it)",
        ),
    ];
    let mut failures = Vec::new();
    for (what, got, want) in &cases {
        if got != want {
            failures.push(format!("{what}:\n   got: {got}\n  want: {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // --json: the reason code and the VIP as data.
    let j: serde_json::Value = serde_json::from_str(&lab.loader_ok(&[
        "explain",
        DEV,
        "--src-mac",
        PEER_STR,
        "--dst",
        "172.17.85.56:80",
        "--json",
    ]))
    .expect("explain --json");
    let p = &j["packets"][0];
    assert_eq!(
        (
            &p["verdict"],
            &p["reason"],
            &p["vip"]["name"],
            &p["peer"]["name"],
            &j["against"]
        ),
        (
            &"unmarked".into(),
            &"peer".into(),
            &"web-internal".into(),
            &"dr2-eth0".into(),
            &"live".into()
        ),
        "{j}"
    );
    assert_eq!(counters(&lab), before, "explain touched the live counters");
}

/// What explain says follows the live maps: a reload changes the answer, and a config
/// file edited since it was applied gives no peer names (its names may be wrong).
#[test]
fn explain_follows_reloads() {
    let lab = attached("exl");
    let c2 = lab.config(
        "v2.toml",
        "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\nname = \"dr2-new\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 443\nmark = 0x30\n",
    );
    lab.loader_ok(&["reload", DEV, "--config", path_str(&c2)]);
    assert_eq!(
        explain(&lab, &["--src-mac", CLIENT_STR, "--dst", "172.17.85.56:80"]),
        "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: unmarked: no VIP 172.17.85.56:80/tcp (this address has only :443/tcp)"
    );
    assert!(
        explain(&lab, &["--src-mac", PEER_STR, "--dst", "172.17.85.56:443"])
            .contains("is peer dr2-new "),
    );
    std::fs::write(
        &c2,
        format!("# edited\n{}", std::fs::read_to_string(&c2).unwrap()),
    )
    .expect("edit");
    let out = lab.loader(&[
        "explain",
        DEV,
        "--src-mac",
        PEER_STR,
        "--dst",
        "172.17.85.56:443",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("is a peer director"), "{line}");
    assert!(
        stderr(&out).contains("changed since it was applied"),
        "{}",
        stderr(&out)
    );
}

/// `--config FILE`: the same answers from private maps, no attachment needed.
#[test]
fn explain_against_a_config_file() {
    let lab = Lab::new("exc");
    let c = lab.config("vips.toml", &config());
    let out = lab.loader_ok(&[
        "explain",
        "--config",
        path_str(&c),
        "--src-mac",
        PEER_STR,
        "--dst",
        "[2001:db8::56]:80",
    ]);
    assert_eq!(
        out.trim_end(),
        "00:0c:29:57:88:ce > [2001:db8::56]:80/tcp: unmarked: source 00:0c:29:57:88:ce is peer dr2-eth0 (for VIP web6 ([2001:db8::56]:80/tcp))"
    );
    // Nothing was attached by it.
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

/// A classic pcap file of `frames` (Ethernet), each with (captured bytes, wire length).
fn pcap(frames: &[(Vec<u8>, u32)]) -> Vec<u8> {
    let mut f = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    for (i, (d, wire)) in frames.iter().enumerate() {
        for w in [1_764_168_000 + i as u32, 250_000, d.len() as u32, *wire] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(d);
    }
    f
}

/// The same packets as pcapng (section, interface with nanosecond stamps, enhanced
/// packet blocks).
fn pcapng(frames: &[(Vec<u8>, u32)]) -> Vec<u8> {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(body);
        b.resize(len - 4, 0);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b
    }
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    out.extend(block(
        1,
        &[1, 0, 0, 0, 0, 0, 4, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
    ));
    for (i, (d, wire)) in frames.iter().enumerate() {
        let ts = (1_764_168_000 + i as u64) * 1_000_000_000 + 250_000_000;
        let mut epb = Vec::new();
        for w in [0, (ts >> 32) as u32, ts as u32, d.len() as u32, *wire] {
            epb.extend_from_slice(&w.to_le_bytes());
        }
        epb.extend_from_slice(d);
        out.extend(block(6, &epb));
    }
    out
}

#[test]
fn explain_every_packet_of_a_capture() {
    let lab = attached("exp");
    let web = tcp(VIP, 80).bytes();
    let peer = Frame::v4(PEER, SRC, VIP, IPPROTO_TCP, 1, 80)
        .with_payload(&[0; 1000])
        .bytes();
    let frames = vec![
        (web.clone(), web.len() as u32),
        // Cut by a 64-byte snapshot length: padded back to its wire length.
        (peer[..64].to_vec(), peer.len() as u32),
        (tcp(VIP, 22).bytes(), 60),
        (vec![1, 2, 3], 3),
    ];
    let before = counters(&lab);
    let want = [
        "#1 2025-11-26T14:40:00.250000Z 52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)",
        "#2 2025-11-26T14:40:01.250000Z 00:0c:29:57:88:ce > 172.17.85.56:80/tcp: unmarked: source 00:0c:29:57:88:ce is peer dr2-eth0 (for VIP web-internal (172.17.85.56:80/tcp)) [captured 64 of 1054 bytes: padded with zeros to its 1054 bytes on the wire]",
        "#3 2025-11-26T14:40:02.250000Z 52:54:00:c1:1e:01 > 172.17.85.56:22/tcp: unmarked: no VIP 172.17.85.56:22/tcp (this address has only :80/tcp)",
        "#4 2025-11-26T14:40:03.250000Z ? > ?: skipped: 3 bytes, shorter than an Ethernet header",
    ];
    for (kind, bytes) in [("pcap", pcap(&frames)), ("pcapng", pcapng(&frames))] {
        let file = lab.config(&format!("cap.{kind}"), "");
        std::fs::write(&file, bytes).expect("write capture");
        let out = lab.loader_ok(&["explain", DEV, "--pcap", path_str(&file)]);
        let got: Vec<&str> = out.lines().collect();
        assert_eq!(got, want, "{kind}");
        let j: serde_json::Value = serde_json::from_str(&lab.loader_ok(&[
            "explain",
            DEV,
            "--pcap",
            path_str(&file),
            "--json",
        ]))
        .expect("JSON");
        let reasons: Vec<_> = j["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .map(|p| {
                (
                    p["number"].as_u64(),
                    p["reason"].as_str().map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            [
                (Some(1), Some("marked".into())),
                (Some(2), Some("peer".into())),
                (Some(3), Some("no_vip".into())),
                (Some(4), None)
            ],
            "{kind}: {j}"
        );
    }
    assert_eq!(
        counters(&lab),
        before,
        "explain --pcap touched the counters"
    );
}

/// Hostile arguments and files: a clear error, exit 1 or 2, nothing printed on stdout,
/// nothing changed.
#[test]
fn hostile_input_is_refused() {
    let lab = attached("exh");
    let before = counters(&lab);
    let web = tcp(VIP, 80).bytes();
    let good = pcap(&[
        (web.clone(), web.len() as u32),
        (web.clone(), web.len() as u32),
    ]);
    let trunc = lab.config("trunc.pcap", "");
    std::fs::write(&trunc, &good[..good.len() - 7]).expect("write");
    let big = lab.config("big.pcap", "");
    std::fs::File::options()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len((64 << 20) + 1))
        .expect("sparse file");
    let text = lab.config("notes.txt", "not a capture at all\n");
    let dir = lab.dir.clone();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--src-mac", "00:0c:29:zz:88:ce", "--dst", "172.17.85.56:80"],
            2,
            "is not a MAC address",
        ),
        (
            vec!["--src-mac", "01:00:5e:00:00:01", "--dst", "172.17.85.56:80"],
            2,
            "multicast",
        ),
        (
            vec!["--src-mac", CLIENT_STR, "--dst", "172.17.85.56:99999"],
            2,
            "the port must be 1-65535",
        ),
        (
            vec!["--src-mac", CLIENT_STR, "--dst", "172.17.85.56:80/icmp"],
            2,
            "the protocol is tcp, udp or sctp",
        ),
        (
            vec!["--src-mac", CLIENT_STR, "--dst", "vip.example:80"],
            2,
            "expected ADDR[:PORT][/PROTO]",
        ),
        (vec!["--dst", "172.17.85.56:80"], 2, "--src-mac"),
        (vec!["--frame", "0a0"], 2, "an odd number of hex digits"),
        (
            vec!["--frame", "0a\u{1b}[31m"],
            2,
            "\\x1b is not a hex digit",
        ),
        (
            vec!["--pcap", path_str(&trunc)],
            1,
            "packet 2: 60 bytes announced, 53 left (capture truncated?)",
        ),
        (
            vec!["--pcap", path_str(&big)],
            1,
            "capture too large: 67108865 bytes",
        ),
        (
            vec!["--pcap", path_str(&text)],
            1,
            "not a pcap or pcapng capture",
        ),
        (vec!["--pcap", "/dev/zero"], 1, "it is a character device"),
        (vec!["--pcap", path_str(&dir)], 1, "it is a directory"),
        (
            vec!["--pcap", "/nonexistent/x.pcap"],
            1,
            "No such file or directory",
        ),
    ];
    for (args, code, msg) in cases {
        let mut a = vec!["explain", DEV];
        a.extend_from_slice(&args);
        let out = lab.loader(&a);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err:?} lacks {msg:?}");
        assert!(!err.contains('\u{1b}'), "{args:?}: unescaped ESC: {err:?}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", out.stdout);
    }
    // An interface that is not attached.
    let out = lab.loader(&[
        "explain",
        "lo",
        "--src-mac",
        CLIENT_STR,
        "--dst",
        "172.17.85.56:80",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("lo is not attached"),
        "{}",
        stderr(&out)
    );
    assert_eq!(counters(&lab), before);
}

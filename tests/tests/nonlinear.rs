//! Non-linear skbs: frames whose IP and transport headers are not in the skb's linear
//! data, as GRO, header-split NICs and large packets deliver them. The program finds the
//! header past `data_end` and parses again, copying each header onto the stack
//! (`bpf_skb_load_bytes`); every decision must be the one it makes for the same frame
//! when it is linear.
//!
//! BPF_PROG_TEST_RUN hands the program a linear frame, so these are sent for real: a
//! packet socket builds an skb with only the Ethernet header linear and the rest in page
//! fragments when the frame is at least a page long (`packet_alloc_skb`; a shorter frame
//! is copied whole into the linear data), so the frames are padded to
//! [`PAGED_FRAME_LEN`] bytes over a veth with a jumbo MTU. Without the second parse (a
//! mutation `cargo xtask mutants` runs), none of them is marked and all are counted as
//! non-linear.
//!
//! The second test sends the random frames of the differential test (VLAN tags, IPv4
//! options and fragments, IPv6 extension chains, truncated and malformed headers) twice,
//! the same bytes each time: once as a linear skb (a `virtio_net_hdr` whose `hdr_len`
//! covers the frame), once paged. Every counter, per reason and per VIP, must move by the
//! same amount.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use lvs_tests::{
    conf::{PEER_MAC, WEB_MARK, WEB_NAMED, WEB_VIP},
    framegen,
    frames::{Frame, IPPROTO_TCP, IPPROTO_UDP, parse_mac},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str},
    sender::{JUMBO_MTU, PAGED_FRAME_LEN, Sender, paged, vnet_hdr_linear},
};

/// The Ethernet minimum: the packet socket copies the frame whole into the linear data.
const LINEAR_LEN: usize = 60;

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0x6e, 0x11, 0x01];
const SRC: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 100);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56);
const VIP6_MARK: u32 = 0x6;
const DNS: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 60);
const DNS_MARK: u32 = 0x7;

/// [`WEB_NAMED`] plus an IPv6 VIP and an any-port UDP VIP.
const EXTRA: &str = r#"
[[vip]]
address = "2001:db8::56"
port = 80
mark = 0x6

[[vip]]
address = "172.17.85.60"
protocol = "udp"
mark = 0x7
"#;

/// Copies of each frame per layout.
const COPIES: u64 = 4;

fn sized(f: Frame, len: usize) -> Vec<u8> {
    Frame {
        min_len: len,
        ..f.with_dst_mac(DIRECTOR_MAC)
    }
    .bytes()
}

/// The frames (each of at least `len` bytes, the IP packet itself short, the rest
/// Ethernet padding) and the mark each must carry in PREROUTING (0: none).
fn frames(len: usize) -> Vec<(&'static str, Vec<u8>, IpAddr, u32)> {
    let peer = parse_mac(PEER_MAC);
    vec![
        (
            "IPv4 client to the VIP",
            sized(Frame::v4(CLIENT, SRC, WEB_VIP, IPPROTO_TCP, 40000, 80), len),
            WEB_VIP.into(),
            WEB_MARK,
        ),
        (
            "IPv4 peer to the VIP",
            sized(Frame::v4(peer, SRC, WEB_VIP, IPPROTO_TCP, 40001, 80), len),
            WEB_VIP.into(),
            0,
        ),
        (
            "IPv6 client to the VIP",
            sized(Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 40002, 80), len),
            VIP6.into(),
            VIP6_MARK,
        ),
        (
            "IPv4 client to the any-port VIP",
            sized(Frame::v4(CLIENT, SRC, DNS, IPPROTO_UDP, 40003, 5353), len),
            DNS.into(),
            DNS_MARK,
        ),
    ]
}

fn total(stats: &serde_json::Value, key: &str) -> u64 {
    stats["totals"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no totals.{key} in {stats}"))
}

/// A lab whose veth carries [`PAGED_FRAME_LEN`]-byte frames, lvs-ebpf attached with
/// `config`.
fn jumbo_lab(tag: &str, config: &str) -> Lab {
    let lab = Lab::new(tag);
    let mtu = JUMBO_MTU.to_string();
    lab.sender_ns.ip(&["link", "set", "tx0", "mtu", &mtu]);
    lab.director.ip(&["link", "set", DEV, "mtu", &mtu]);
    let c = lab.config("vips.toml", config);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
    lab
}

#[test]
fn headers_in_page_fragments_are_decided_like_linear_ones() {
    let lab = jumbo_lab("nlp", &format!("{WEB_NAMED}\n{EXTRA}"));
    let dsts: Vec<IpAddr> = vec![WEB_VIP.into(), VIP6.into(), DNS.into()];
    let marks = [0, WEB_MARK, VIP6_MARK, DNS_MARK];
    lab.watch_marks(&dsts, &marks);

    let mut want_marked = 0;
    let mut want_peer = 0;
    for (layout, len) in [("paged", PAGED_FRAME_LEN), ("linear", LINEAR_LEN)] {
        for (what, frame, dst, mark) in frames(len) {
            // Padded to `len`, or longer when the headers are (IPv6).
            assert!(frame.len() >= len, "{what}");
            assert_eq!(
                frame.len() >= PAGED_FRAME_LEN,
                len == PAGED_FRAME_LEN,
                "{what}"
            );
            let before: Vec<u64> = marks.iter().map(|&m| lab.mark_count(dst, m)).collect();
            for _ in 0..COPIES {
                lab.send(std::slice::from_ref(&frame));
            }
            if mark == 0 {
                want_peer += COPIES;
            } else {
                want_marked += COPIES;
            }
            // Netfilter saw each copy exactly once, with the mark of the linear decision.
            for (i, &m) in marks.iter().enumerate() {
                let got = lab.mark_count(dst, m) - before[i];
                let want = if m == mark { COPIES } else { 0 };
                assert_eq!(
                    got, want,
                    "{layout} {len}-byte frames, {what}: {got} with mark {m:#x} in PREROUTING, want {want}"
                );
            }
        }
        let stats = lab.stats();
        assert_eq!(total(&stats, "marked"), want_marked, "{layout}: {stats}");
        assert_eq!(total(&stats, "peer"), want_peer, "{layout}: {stats}");
        for key in ["nonlinear", "internal_errors", "malformed", "no_vip"] {
            assert_eq!(total(&stats, key), 0, "{layout}: {key} in {stats}");
        }
    }
}

/// Every number in `v` (the counters of `stats --json`), by its path.
fn numbers(v: &serde_json::Value, path: String, out: &mut BTreeMap<String, u64>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                out.insert(path, n);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                numbers(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The counters of a VIP in `stats --json` (the rest of its entry is its config).
const VIP_COUNTERS: [&str; 5] = [
    "marked_packets",
    "marked_bytes",
    "peer_packets",
    "peer_bytes",
    "already_marked",
];

/// The counters (totals and per VIP) once the program has seen `seen` packets in all.
fn counters_after(lab: &Lab, seen: u64) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lab.stats();
        if total(&s, "packets_seen") >= seen || Instant::now() > deadline {
            assert_eq!(total(&s, "packets_seen"), seen, "{s}");
            let mut out = BTreeMap::new();
            numbers(&s["totals"], "totals".into(), &mut out);
            for (i, v) in s["vips"].as_array().expect("vips").iter().enumerate() {
                for k in VIP_COUNTERS {
                    numbers(&v[k], format!("vips[{i}].{k}"), &mut out);
                }
            }
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn random_frames_count_the_same_linear_and_paged() {
    let lab = jumbo_lab("nlr", framegen::CONFIG);
    let linear = Sender::open(&lab.sender_ns, "tx0");
    linear.enable_vnet_hdr().expect("PACKET_VNET_HDR");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = framegen::frame();
    let frames: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            use proptest::strategy::{Strategy as _, ValueTree as _};
            let mut f = strategy.new_tree(&mut runner).expect("tree").current();
            f[0..6].copy_from_slice(&DIRECTOR_MAC);
            paged(&f)
        })
        .collect();
    let n = frames.len() as u64;

    for f in &frames {
        linear.send(&vnet_hdr_linear(f));
    }
    let after_linear = counters_after(&lab, n);
    lab.send(&frames);
    let after_paged = counters_after(&lab, 2 * n);

    let mut differ = Vec::new();
    for (k, &a) in &after_linear {
        let b = after_paged.get(k).copied().unwrap_or(0);
        if b - a != a {
            differ.push(format!("{k}: linear {a}, paged {}", b - a));
        }
    }
    assert!(differ.is_empty(), "counters differ:\n{}", differ.join("\n"));
    // The frames reached the interesting paths.
    for key in [
        "marked",
        "peer",
        "no_vip",
        "malformed",
        "fragments",
        "l4_truncated",
    ] {
        assert!(
            after_linear[&format!("totals.{key}")] > 0,
            "no {key}: {after_linear:?}"
        );
    }
    assert_eq!(after_paged["totals.nonlinear"], 0);
    assert_eq!(after_paged["totals.internal_errors"], 0);
}

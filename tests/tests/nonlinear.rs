//! Non-linear skbs: frames whose IP and transport headers are not in the skb's linear
//! data, as GRO, header-split NICs and large packets deliver them. The program finds the
//! header past `data_end`, pulls the first bytes into the linear data
//! (`bpf_skb_pull_data`) and parses again; every decision must be the one it makes for
//! the same frame when it is linear.
//!
//! BPF_PROG_TEST_RUN hands the program a linear frame, so these are sent for real: a
//! packet socket builds an skb with only the Ethernet header linear and the rest in page
//! fragments when the frame is at least a page long (`packet_alloc_skb`; a shorter frame
//! is copied whole into the linear data), so the frames are padded to
//! [`PAGED_FRAME_LEN`] bytes over a veth with a jumbo MTU. Without the second parse after the
//! pull (a mutation `cargo xtask mutants` runs), none of them is marked and all are
//! counted as non-linear.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_tests::{
    conf::{PEER_MAC, WEB_MARK, WEB_NAMED, WEB_VIP},
    frames::{Frame, IPPROTO_TCP, IPPROTO_UDP, parse_mac},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str},
    sender::{JUMBO_MTU, PAGED_FRAME_LEN},
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

#[test]
fn headers_in_page_fragments_are_pulled_and_decided_like_linear_ones() {
    let lab = Lab::new("nlp");
    let mtu = JUMBO_MTU.to_string();
    lab.sender_ns.ip(&["link", "set", "tx0", "mtu", &mtu]);
    lab.director.ip(&["link", "set", DEV, "mtu", &mtu]);
    let c = lab.config("vips.toml", &format!("{WEB_NAMED}\n{EXTRA}"));
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
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

//! Packet fixtures through BPF_PROG_TEST_RUN: a hand-built frame in, the expected
//! `skb->mark` out (read from ctx_out), for every protocol and header oddity the iptables
//! recipe has an opinion on. Every expectation is also checked against the reference
//! model, so the model and the fixtures can't drift apart.

use std::net::{Ipv4Addr, Ipv6Addr};

use lvs_ebpf_common::Reason;

use lvs_tests::{
    frames::*,
    harness::{Loaded, hex},
    model,
};

const CONFIG: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CE"
name = "dr2-eth0"
[[peer]]
mac = "00-0c-29-57-88-d8"
name = "dr2-eth1"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x3
name = "web"
[[vip]]
address = "172.17.85.56"
port = 53
protocol = "udp"
mark = 0x13
[[vip]]
address = "172.17.85.56"
port = 9
protocol = "sctp"
mark = 0x23
[[vip]]
address = "192.0.2.10"
mark = 0x40
name = "all-tcp"
[[vip]]
address = "192.0.2.10"
port = 443
mark = 0x41
[[vip]]
address = "2001:db8::56"
port = 80
mark = 0x6
[[vip]]
address = "2001:db8::57"
protocol = "udp"
mark = 0x60
"#;

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const PEER1: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const PEER2: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xd8];
const SRC4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP4: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
const ANY4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56);
const ANY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x57);

/// The mark a frame arrives with; "untouched" means it is still this afterwards.
const PRE: u32 = 0x77;
const UNTOUCHED: u32 = PRE;

fn tcp4(dport: u16) -> Frame {
    Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_TCP, 40000, dport)
}

fn tcp6(dport: u16) -> Frame {
    Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 40000, dport)
}

fn cases() -> Vec<(&'static str, Vec<u8>, u32, Reason)> {
    let mut frame_with_33_ext = tcp6(80);
    for _ in 0..33 {
        frame_with_33_ext = frame_with_33_ext.with_ext(Ext::DestOpts { len8: 0 });
    }
    let mut frame_with_32_ext = tcp6(80);
    for _ in 0..32 {
        frame_with_32_ext = frame_with_32_ext.with_ext(Ext::DestOpts { len8: 0 });
    }
    let v6_bad_version = {
        let mut b = tcp6(80).bytes();
        b[14] = 0x40;
        b
    };
    let v6_ext_past_payload = {
        // Hop-by-hop header claims 16 bytes but the payload ends after 8.
        let mut f = Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 1, 80).with_l4_len(0);
        f = f.with_ext(Ext::HopByHop { len8: 1 });
        if let L3::V6 { payload_len, .. } = &mut f.l3 {
            *payload_len = Some(8);
        }
        f.bytes()
    };
    vec![
        // --- IPv4 basics
        (
            "v4 tcp vip:80 from client is marked",
            tcp4(80).bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 tcp vip:80 from peer 1 stays unmarked",
            Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "v4 tcp vip:80 from peer 2 (dash-separated MAC) stays unmarked",
            Frame::v4(PEER2, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "v4 tcp vip:80 from peer 1's MAC with the group bit set is no peer: marked",
            Frame::v4(
                [
                    PEER1[0] | 1,
                    PEER1[1],
                    PEER1[2],
                    PEER1[3],
                    PEER1[4],
                    PEER1[5],
                ],
                SRC4,
                VIP4,
                IPPROTO_TCP,
                1,
                80,
            )
            .bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 tcp vip:81 (no such port) untouched",
            tcp4(81).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v4 tcp to another address untouched",
            Frame::v4(
                CLIENT,
                SRC4,
                Ipv4Addr::new(172, 17, 85, 57),
                IPPROTO_TCP,
                1,
                80,
            )
            .bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v4 tcp to the VIP as *source* untouched",
            Frame::v4(CLIENT, VIP4, SRC4, IPPROTO_TCP, 80, 80).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v4 udp vip:53 marked",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_UDP, 5353, 53).bytes(),
            0x13,
            Reason::Marked,
        ),
        (
            "v4 udp vip:80 (VIP is tcp) untouched",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_UDP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v4 sctp vip:9 marked",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_SCTP, 1, 9).bytes(),
            0x23,
            Reason::Marked,
        ),
        (
            "v4 sctp vip:80 untouched",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_SCTP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v4 icmp to vip untouched",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_ICMP, 0x0800, 0).bytes(),
            UNTOUCHED,
            Reason::OtherProtocol,
        ),
        (
            "v4 marked frame overwrites an existing mark",
            tcp4(80).bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 large payload marked",
            tcp4(80).with_payload(&[0xab; 1400]).bytes(),
            0x3,
            Reason::Marked,
        ),
        // --- IPv4 options
        (
            "v4 IHL 6 (4 bytes of options) marked",
            tcp4(80).with_ipv4_options(&[1, 1, 1, 0]).bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 IHL 15 (40 bytes of options) marked",
            tcp4(80).with_ipv4_options(&[1; 40]).bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 IHL 15 from peer stays unmarked",
            Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80)
                .with_ipv4_options(&[1; 40])
                .bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        // --- IPv4 fragments
        (
            "v4 first fragment (MF, offset 0) marked",
            tcp4(80)
                .with_fragment(0, true)
                .with_payload(&[0; 64])
                .bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "v4 non-first fragment (offset 1) carries no port: untouched",
            tcp4(80).with_fragment(1, true).bytes(),
            UNTOUCHED,
            Reason::Fragment,
        ),
        (
            "v4 non-first fragment with only offset bit 12 set (offset 4096) untouched",
            tcp4(80).with_fragment(4096, true).bytes(),
            UNTOUCHED,
            Reason::Fragment,
        ),
        (
            "v4 last fragment (offset 185) untouched",
            tcp4(80).with_fragment(185, false).bytes(),
            UNTOUCHED,
            Reason::Fragment,
        ),
        (
            "v4 non-first fragment to an any-port VIP marked",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 443)
                .with_fragment(3, true)
                .bytes(),
            0x40,
            Reason::Marked,
        ),
        // --- truncated transport headers (inside tot_len; Ethernet padding doesn't count)
        (
            "v4 tcp header of 10 bytes (padded frame) untouched",
            tcp4(80).with_l4_len(10).bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v4 tcp header of 19 bytes untouched",
            tcp4(80).with_l4_len(19).bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v4 tcp header of 4 bytes untouched",
            tcp4(80).with_l4_len(4).bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v4 udp header of 7 bytes untouched",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_UDP, 1, 53)
                .with_l4_len(7)
                .bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v4 udp header of exactly 8 bytes marked",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_UDP, 1, 53)
                .with_l4_len(8)
                .bytes(),
            0x13,
            Reason::Marked,
        ),
        (
            "v4 sctp header of 11 bytes untouched",
            Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_SCTP, 1, 9)
                .with_l4_len(11)
                .bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v4 truncated tcp to an any-port VIP:443 falls back to any-port",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 443)
                .with_l4_len(10)
                .bytes(),
            0x40,
            Reason::Marked,
        ),
        (
            "v4 no tcp header at all to any-port VIP marked",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 443)
                .with_l4_len(0)
                .bytes(),
            0x40,
            Reason::Marked,
        ),
        // --- any-port VIPs
        (
            "any-port VIP: tcp :22 gets the any-port mark",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes(),
            0x40,
            Reason::Marked,
        ),
        (
            "any-port VIP: exact :443 entry wins",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 443).bytes(),
            0x41,
            Reason::Marked,
        ),
        (
            "any-port VIP: udp is another protocol, untouched",
            Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_UDP, 1, 22).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "any-port VIP from peer stays unmarked",
            Frame::v4(PEER1, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "any-port v6 udp VIP marked",
            Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242).bytes(),
            0x60,
            Reason::Marked,
        ),
        // --- VLAN
        (
            "802.1Q tagged v4 marked",
            tcp4(80).with_vlan(ETH_P_8021Q, 100).bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "802.1ad+802.1Q (QinQ) v4 marked",
            tcp4(80)
                .with_vlan(ETH_P_8021AD, 10)
                .with_vlan(ETH_P_8021Q, 100)
                .bytes(),
            0x3,
            Reason::Marked,
        ),
        (
            "802.1Q tagged v6 marked",
            tcp6(80).with_vlan(ETH_P_8021Q, 7).bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "802.1Q tagged from peer stays unmarked",
            Frame::v4(PEER2, SRC4, VIP4, IPPROTO_TCP, 1, 80)
                .with_vlan(ETH_P_8021Q, 100)
                .bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "three tags: not parsed, untouched",
            tcp4(80)
                .with_vlan(ETH_P_8021AD, 1)
                .with_vlan(ETH_P_8021Q, 2)
                .with_vlan(ETH_P_8021Q, 3)
                .bytes(),
            UNTOUCHED,
            Reason::NotIp,
        ),
        // --- not IP / malformed IP (BPF_PROG_TEST_RUN refuses IP frames shorter than the
        // IP header; the namespace tests send those for real)
        (
            "ARP untouched",
            Frame::raw(CLIENT, ETH_P_ARP, vec![0; 28]).bytes(),
            UNTOUCHED,
            Reason::NotIp,
        ),
        (
            "v4 version 5 untouched",
            {
                let mut f = tcp4(80);
                if let L3::V4 { ver_ihl, .. } = &mut f.l3 {
                    *ver_ihl = Some(0x55)
                }
                f.bytes()
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 IHL 4 untouched",
            {
                let mut f = tcp4(80);
                if let L3::V4 { ver_ihl, .. } = &mut f.l3 {
                    *ver_ihl = Some(0x44)
                }
                f.bytes()
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 tot_len beyond the frame untouched",
            {
                let mut f = tcp4(80);
                if let L3::V4 { tot_len, .. } = &mut f.l3 {
                    *tot_len = Some(200)
                }
                f.bytes()
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 tot_len shorter than IHL untouched",
            {
                let mut f = tcp4(80);
                if let L3::V4 { tot_len, .. } = &mut f.l3 {
                    *tot_len = Some(16)
                }
                f.bytes()
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
        // --- IPv6
        (
            "v6 tcp vip:80 marked",
            tcp6(80).bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 tcp vip:80 from peer unmarked",
            Frame::v6(PEER1, SRC6, VIP6, IPPROTO_TCP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "v6 tcp vip:81 untouched",
            tcp6(81).bytes(),
            UNTOUCHED,
            Reason::NoVip,
        ),
        (
            "v6 hop-by-hop + dstopts + routing then tcp marked",
            tcp6(80)
                .with_ext(Ext::HopByHop { len8: 0 })
                .with_ext(Ext::DestOpts { len8: 2 })
                .with_ext(Ext::Routing {
                    len8: 2,
                    segments_left: 0,
                })
                .bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 AH then tcp marked",
            tcp6(80).with_ext(Ext::Auth { len4: 4 }).bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 first fragment (offset 0) marked",
            tcp6(80).with_fragment(0, true).bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 non-first fragment untouched",
            tcp6(80).with_fragment(100, false).bytes(),
            UNTOUCHED,
            Reason::Fragment,
        ),
        (
            "v6 non-first fragment to any-port VIP marked",
            Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242)
                .with_fragment(100, true)
                .bytes(),
            0x60,
            Reason::Marked,
        ),
        (
            "v6 non-first fragment followed by dstopts untouched",
            tcp6(80)
                .with_fragment(100, false)
                .with_ext(Ext::DestOpts { len8: 0 })
                .bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 next header NONE untouched",
            Frame::v6(CLIENT, SRC6, VIP6, NEXTHDR_NONE, 0, 0)
                .with_l4_len(0)
                .bytes(),
            UNTOUCHED,
            Reason::OtherProtocol,
        ),
        (
            "v6 ESP untouched",
            Frame::v6(CLIENT, SRC6, VIP6, NEXTHDR_ESP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::OtherProtocol,
        ),
        (
            "v6 tcp header of 12 bytes untouched",
            tcp6(80).with_l4_len(12).bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v6 32 extension headers then tcp marked",
            frame_with_32_ext.bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 33 extension headers: over the walk limit, untouched",
            frame_with_33_ext.bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 extension header past payload_len untouched",
            v6_ext_past_payload,
            UNTOUCHED,
            // The chain ends past the payload: the transport header is cut short.
            Reason::L4Truncated,
        ),
        (
            "v6 version 4 in an IPv6 frame untouched",
            v6_bad_version,
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 payload_len beyond the frame untouched",
            {
                let mut f = tcp6(80);
                if let L3::V6 { payload_len, .. } = &mut f.l3 {
                    *payload_len = Some(500)
                }
                f.bytes()
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
    ]
}

#[test]
fn fixtures_give_the_expected_mark() {
    let dp = Loaded::new(CONFIG);
    let mut failures = Vec::new();
    for (name, frame, expected, _) in cases() {
        let out = dp.run(&frame, PRE);
        if out.retval != -1 {
            failures.push(format!(
                "{name}: program returned {} instead of TC_ACT_UNSPEC (-1)",
                out.retval
            ));
        }
        if out.mark != expected {
            failures.push(format!(
                "{name}: mark {:#x}, expected {expected:#x}\n    frame {}",
                out.mark,
                hex(&frame)
            ));
        }
        let m = model::evaluate(&dp.config, &frame);
        let model_mark = m.bpf_mark.unwrap_or(PRE);
        if model_mark != expected {
            failures.push(format!(
                "{name}: reference model says {model_mark:#x}, fixture says {expected:#x}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unmarked_frames_keep_a_zero_mark() {
    let dp = Loaded::new(CONFIG);
    assert_eq!(dp.run(&tcp4(81).bytes(), 0).mark, 0);
    assert_eq!(
        dp.run(&Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(), 0)
            .mark,
        0
    );
    assert_eq!(dp.run(&tcp4(80).bytes(), 0).mark, 3);
}

#[test]
fn counters_follow_the_verdicts() {
    let dp = Loaded::new(CONFIG);
    let mut dp = dp;
    let marked = tcp4(80).bytes();
    let peer = Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes();
    for _ in 0..5 {
        dp.run(&marked, 0);
    }
    for _ in 0..3 {
        dp.run(&peer, 0);
    }
    dp.run(&Frame::raw(CLIENT, ETH_P_ARP, vec![0; 28]).bytes(), 0);
    dp.run(&tcp4(81).bytes(), 0);
    dp.run(&tcp4(80).with_fragment(1, false).bytes(), 0);
    dp.run(&tcp4(80).with_l4_len(10).bytes(), 0);
    let s = dp.stats();
    let web = s
        .vips
        .iter()
        .find(|v| v.name == "web")
        .expect("web VIP in stats");
    assert_eq!((web.marked_packets, web.peer_packets), (5, 3), "{web:?}");
    assert_eq!(web.marked_bytes, 5 * marked.len() as u64);
    assert_eq!(web.peer_bytes, 3 * peer.len() as u64);
    let t = &s.totals;
    assert_eq!(t["packets_seen"], 12, "{t:?}");
    assert_eq!(t["not_ip"], 1, "{t:?}");
    assert_eq!(t["marked"], 5, "{t:?}");
    assert_eq!(t["peer"], 3, "{t:?}");
    // :81, the fragment and the truncated header find no VIP (no any-port entry for VIP4).
    assert_eq!(t["no_vip"], 3, "{t:?}");
    assert_eq!(t["fragments"], 1, "{t:?}");
    assert_eq!(t["l4_truncated"], 1, "{t:?}");
    assert_eq!(t["internal_errors"], 0, "{t:?}");
}

#[test]
fn reload_switches_generation_and_keeps_counters_of_kept_vips() {
    let mut dp = Loaded::new(CONFIG);
    let web = tcp4(80).bytes();
    dp.run(&web, 0);
    // New config: web's mark changes, the udp VIP goes away, a new VIP arrives, peers change.
    dp.apply(
        r#"
[[peer]]
mac = "02:00:00:00:00:99"
[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x30
name = "web"
[[vip]]
address = "172.17.85.58"
port = 8080
mark = 0x31
"#,
    );
    assert_eq!(dp.run(&web, 0).mark, 0x30, "kept VIP with its new mark");
    assert_eq!(
        dp.run(
            &Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_UDP, 1, 53).bytes(),
            0
        )
        .mark,
        0,
        "removed VIP unmarked"
    );
    assert_eq!(
        dp.run(
            &Frame::v4(
                CLIENT,
                SRC4,
                Ipv4Addr::new(172, 17, 85, 58),
                IPPROTO_TCP,
                1,
                8080
            )
            .bytes(),
            0
        )
        .mark,
        0x31,
        "added VIP marked"
    );
    // The old peer is a client now; the new peer is trusted.
    assert_eq!(
        dp.run(&Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(), 0)
            .mark,
        0x30
    );
    assert_eq!(
        dp.run(
            &Frame::v4([2, 0, 0, 0, 0, 0x99], SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(),
            0
        )
        .mark,
        0
    );
    let s = dp.stats();
    assert_eq!(s.vips.len(), 2);
    let web_stats = s.vips.iter().find(|v| v.name == "web").expect("web");
    assert_eq!(
        web_stats.marked_packets, 3,
        "counter slot kept across reload: {web_stats:?}"
    );
    assert_eq!(web_stats.mark, 0x30);
}

/// A reload that replaces every VIP of a config larger than half the map: the new VIPs
/// run out of fresh counter slots and take over the removed VIPs' slots, whose counters
/// restart from zero.
#[test]
fn reload_replacing_every_vip_of_a_huge_config() {
    use lvs_loader::config::{Config, Peer, Protocol, Vip};
    let make = |base: u8, n: u32, mark: u32| Config {
        peers: vec![Peer {
            mac: PEER1,
            name: None,
        }],
        vips: (0..n)
            .map(|i| Vip {
                address: std::net::IpAddr::from([base, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
                port: Some(80),
                protocol: Protocol::Tcp,
                mark,
                mark_mask: u32::MAX,
                name: None,
            })
            .collect(),
        digest: [0; 32],
        path: None,
    };
    let n = 70_000;
    let mut dp = Loaded::with_config(make(10, n, 0xa));
    let to = |a: [u8; 4]| Frame::v4(CLIENT, SRC4, Ipv4Addr::from(a), IPPROTO_TCP, 1, 80).bytes();
    for _ in 0..3 {
        assert_eq!(dp.run(&to([10, 0, 0, 7]), 0).mark, 0xa);
    }
    let b = make(11, n, 0xb);
    let report = dp.apply_config(b);
    assert_eq!(
        (report.added, report.removed, report.kept),
        (n as usize, n as usize, 0),
        "a reload replacing 70,000 of 70,000 VIPs"
    );
    assert_eq!(dp.run(&to([10, 0, 0, 7]), 0).mark, 0, "old VIP gone");
    assert_eq!(dp.run(&to([11, 0, 0, 7]), 0).mark, 0xb, "new VIP marked");
    let s = dp.stats();
    assert_eq!(s.vips.len(), n as usize);
    let total: u64 = s.vips.iter().map(|v| v.marked_packets).sum();
    assert_eq!(total, 1, "reused slots start from zero: {total}");
    // The totals keep the removed VIPs' packets (they moved to the retired slot).
    assert_eq!(s.totals["marked"], 4, "{:?}", s.totals);
    assert_eq!(s.totals["packets_seen"], 5, "{:?}", s.totals);
}

/// The explaining twin (`lvs_explain`, the same decision code without counters) gives
/// every fixture's reason, the mark the main program sets, and the VIP that matched;
/// explaining touches no counter.
#[test]
fn explain_gives_every_fixture_reason() {
    let mut dp = Loaded::new(CONFIG);
    let fd = dp.dp.explain_fd().expect("loading lvs_explain");
    let mut failures = Vec::new();
    for (name, frame, expected, reason) in cases() {
        let e = lvs_loader::testrun::explain(fd, &frame).expect("explain");
        if e.reason != reason {
            failures.push(format!(
                "{name}: reason {:?}, expected {reason:?}",
                e.reason
            ));
        }
        let want_mark = (expected != UNTOUCHED).then_some(expected);
        if e.mark != want_mark {
            failures.push(format!("{name}: mark {:?}, expected {want_mark:?}", e.mark));
        }
        if matches!(reason, Reason::Marked | Reason::Peer) != e.vip.is_some() {
            failures.push(format!("{name}: matched VIP {:?}", e.vip));
        }
        if let (Some(vip), Some(m)) = (e.vip, want_mark)
            && vip.mark != m
        {
            failures.push(format!("{name}: VIP mark {:#x}, expected {m:#x}", vip.mark));
        }
    }
    assert!(
        failures.is_empty(),
        "{} explain failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert!(
        s.totals.values().all(|&v| v == 0),
        "explain counted: {:?}",
        s.totals
    );
}

/// The details explain reports: the VIP slot (which names the VIP), any-port matches,
/// packets without a port.
#[test]
fn explain_names_the_vip_and_the_details() {
    let mut dp = Loaded::new(CONFIG);
    let fd = dp.dp.explain_fd().expect("loading lvs_explain");
    let live = dp.dp.maps.live_vips().expect("live VIPs");
    let slot_of = |mark: u32| {
        live.iter()
            .find(|v| v.value.mark == mark)
            .map(|v| v.value.index)
            .expect("VIP of the mark")
    };
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).bytes()).expect("explain");
    let vip = e.vip.expect("a VIP");
    assert_eq!(
        (vip.slot, vip.any_port, e.ipv6),
        (slot_of(0x3), false, false)
    );
    let any = Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes();
    let e = lvs_loader::testrun::explain(fd, &any).expect("explain");
    let vip = e.vip.expect("a VIP");
    assert_eq!((vip.slot, vip.any_port), (slot_of(0x40), true));
    let frag = Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242)
        .with_fragment(100, true)
        .bytes();
    let e = lvs_loader::testrun::explain(fd, &frag).expect("explain");
    assert_eq!(
        (e.reason, e.no_port, e.ipv6, e.vip.map(|v| v.any_port)),
        (Reason::Marked, Some(Reason::Fragment), true, Some(true))
    );
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).with_l4_len(10).bytes()).expect("explain");
    assert_eq!(
        (e.reason, e.no_port),
        (Reason::L4Truncated, Some(Reason::L4Truncated))
    );
}

/// MACs `02:52:..` that all have the same first bucket in a peer table of `n` peers
/// built with the first multipliers of the loader's sequence (what a config with few
/// VIPs gets): more of them than a bucket holds, so some go to their second bucket.
fn colliding_macs(n: usize, count: usize) -> Vec<[u8; 6]> {
    use lvs_loader::table::{Params, buckets_log2, multipliers};
    let a = multipliers(Params::default().seed, 0)[0];
    let shift = 64 - buckets_log2(n, lvs_ebpf_common::PEERS_PER_BUCKET, 2);
    (0u32..)
        .map(|i| {
            let b = i.to_be_bytes();
            [0x02, 0x52, b[0], b[1], b[2], b[3]]
        })
        .filter(|m| lvs_ebpf_common::mac_word(*m).wrapping_mul(a) >> shift == 0)
        .take(count)
        .collect()
}

/// More peers than fit inline: the first three are compared inline, every one of them is
/// in the generation's peer table (also those in their second bucket).
#[test]
fn many_peers_are_never_marked() {
    use std::fmt::Write as _;
    // 4: all inline; 5 and more: three inline, all in the peer table.
    for n in [4u32, 5, 12, 1024] {
        let colliding = colliding_macs(n as usize, if n > 12 { 12 } else { 0 });
        let mac = |i: u32| match colliding.get(i as usize) {
            Some(m) => *m,
            None => [0x02, 0x51, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8],
        };
        let mut toml = String::new();
        for i in 0..n {
            let m = mac(i);
            let _ = writeln!(
                toml,
                "[[peer]]\nmac = \"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
        }
        toml.push_str("[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n");
        let mut dp = Loaded::new(&toml);
        let fd = dp.dp.explain_fd().expect("lvs_explain");
        for i in (0..n).chain([n / 2, n - 1]) {
            let f = Frame::v4(mac(i), SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes();
            assert_eq!(dp.run(&f, 0).mark, 0, "peer {i} of {n} marked");
            let e = lvs_loader::testrun::explain(fd, &f).expect("explain");
            assert_eq!(e.reason, Reason::Peer, "peer {i} of {n}");
        }
        for i in n..n + 200 {
            let f = Frame::v4(mac(i), SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes();
            assert_eq!(
                dp.run(&f, 0).mark,
                3,
                "non-peer {i} (of {n} peers) unmarked"
            );
        }
        // A reload to two peers: the former peers are clients now.
        dp.apply("[[peer]]\nmac = \"02:00:00:00:00:01\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n");
        let f = Frame::v4(mac(n - 1), SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes();
        assert_eq!(dp.run(&f, 0).mark, 3);
    }
}

/// No call of a non-helper function (a BPF subprogram, e.g. a compiler_builtins
/// `memset`) anywhere in either program: the kernel's xlated image has no BPF-to-BPF
/// call and the JIT emitted a single function.
#[test]
fn no_subprogram_calls_in_the_loaded_programs() {
    let mut dp = Loaded::new(CONFIG);
    let main_fd = dp.dp.program_fd().expect("fd");
    let explain_fd = dp.dp.explain_fd().expect("lvs_explain");
    for (what, fd) in [("lvs_ingress", main_fd), ("lvs_explain", explain_fd)] {
        let img = lvs_loader::testrun::prog_image(fd).expect("program image");
        assert!(!img.xlated.is_empty(), "{what}: no instructions");
        assert_eq!(
            img.subprogram_calls(),
            0,
            "{what}: BPF-to-BPF calls in the xlated image"
        );
        assert_eq!(img.functions, 1, "{what}: the JIT emitted subprograms");
    }
}

/// A large table: every VIP is found through the real program (including keys the
/// builder had to put in their second bucket) and counted in its own slot.
#[test]
fn every_vip_of_a_large_config_is_marked_and_counted() {
    use lvs_loader::config::{Config, Peer, Protocol, Vip};
    let n = 20_000u32;
    // Scattered addresses (a bijection of i): sequential ones spread perfectly under
    // multiply-shift hashing and would never need a key's second bucket.
    let scatter = |mut x: u32| {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    };
    let addr = move |i: u32| std::net::Ipv4Addr::from(scatter(i + 1));
    let addr6 = move |i: u32| {
        let x = scatter(i + 1);
        Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, (x >> 16) as u16, x as u16)
    };
    let vip = |address: std::net::IpAddr, i: u32, mark: u32| Vip {
        address,
        port: Some(80 + (i % 3) as u16),
        protocol: Protocol::Tcp,
        mark,
        mark_mask: u32::MAX,
        name: None,
    };
    let config = Config {
        peers: vec![Peer {
            mac: PEER1,
            name: None,
        }],
        vips: (0..n)
            .map(|i| vip(addr(i).into(), i, 0x1000 + i))
            .chain((0..n).map(|i| vip(addr6(i).into(), i, 0x10_0000 + i)))
            .collect(),
        digest: [0; 32],
        path: None,
    };
    let mut dp = Loaded::with_config(config);
    let step = 7;
    for i in (0..n).step_by(step) {
        let f = Frame::v4(CLIENT, SRC4, addr(i), IPPROTO_TCP, 1, 80 + (i % 3) as u16).bytes();
        assert_eq!(dp.run(&f, 0).mark, 0x1000 + i, "VIP {i}");
        let other_port = Frame::v4(CLIENT, SRC4, addr(i), IPPROTO_TCP, 1, 83).bytes();
        assert_eq!(dp.run(&other_port, 0).mark, 0, "VIP {i}, port 83");
        let f = Frame::v6(CLIENT, SRC6, addr6(i), IPPROTO_TCP, 1, 80 + (i % 3) as u16).bytes();
        assert_eq!(dp.run(&f, 0).mark, 0x10_0000 + i, "IPv6 VIP {i}");
        let other_port = Frame::v6(CLIENT, SRC6, addr6(i), IPPROTO_TCP, 1, 83).bytes();
        assert_eq!(dp.run(&other_port, 0).mark, 0, "IPv6 VIP {i}, port 83");
    }
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    let hits = 2 * (0..n).step_by(step).count() as u64;
    assert_eq!(s.totals["marked"], hits, "{:?}", s.totals);
    assert_eq!(s.totals["no_vip"], hits, "{:?}", s.totals);
    assert_eq!(s.totals["internal_errors"], 0, "{:?}", s.totals);
    let counted = s.vips.iter().filter(|v| v.marked_packets == 1).count() as u64;
    assert_eq!(counted, hits, "each VIP counted once in its own slot");
}

/// Explaining against an attachment's pinned maps (what `lvs-loader explain` needs): the
/// live configuration's answers, no counter touched, no map created or changed.
#[test]
fn explain_against_pinned_maps() {
    let mut dp = Loaded::new(CONFIG);
    let pins = lvs_tests::netns::PinRoot::new("explain");
    std::fs::create_dir_all(&pins.path).expect("pin dir");
    dp.dp.maps.pin(&pins.path).expect("pinning the maps");
    let before: Vec<_> = std::fs::read_dir(&pins.path)
        .expect("pins")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let mut pinned = lvs_loader::datapath::Datapath::load_pinned(&pins.path).expect("load_pinned");
    let fd = pinned.explain_fd().expect("lvs_explain");
    for (name, frame, expected, reason) in cases() {
        let e = lvs_loader::testrun::explain(fd, &frame).expect("explain");
        assert_eq!(e.reason, reason, "{name}");
        assert_eq!(
            e.mark,
            (expected != UNTOUCHED).then_some(expected),
            "{name}"
        );
    }
    // A reload through the original maps is what the pinned explainer sees next.
    dp.apply("[[peer]]\nmac = \"02:00:00:00:00:99\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x30\n");
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).bytes()).expect("explain");
    assert_eq!((e.reason, e.mark), (Reason::Marked, Some(0x30)));
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert_eq!(
        s.totals["packets_seen"], 0,
        "explain counted: {:?}",
        s.totals
    );
    let after: Vec<_> = std::fs::read_dir(&pins.path)
        .expect("pins")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "no pin added or removed");
    drop(pinned);
    let _ = std::fs::remove_dir_all(&pins.path);
}

/// Totals never go backwards: a reload that removes a VIP keeps its packets in
/// `marked`/`peer`/`packets_seen` (the per-VIP lines only list live VIPs).
#[test]
fn totals_keep_removed_vips_packets() {
    let mut dp = Loaded::new(CONFIG);
    for _ in 0..5 {
        dp.run(&tcp4(80).bytes(), 0);
    }
    dp.run(&Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80).bytes(), 0);
    dp.run(&tcp4(81).bytes(), 0);
    let before = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert_eq!(
        (
            before.totals["marked"],
            before.totals["peer"],
            before.totals["packets_seen"]
        ),
        (5, 1, 7)
    );
    // Remove "web" (172.17.85.56:80).
    dp.apply(
        "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[vip]]\naddress = \"192.0.2.10\"\nmark = 0x40\n",
    );
    let after = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert_eq!(after.vips.len(), 1);
    // The global totals (not the sums over live VIPs, `marked_packets` etc.).
    for name in lvs_ebpf_common::global::NAMES {
        assert_eq!(
            after.totals[name], before.totals[name],
            "{name} changed by the reload"
        );
    }
    // And again after a second reload (the retired slot accumulates).
    dp.run(
        &Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes(),
        0,
    );
    dp.apply(CONFIG);
    let again = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert_eq!(
        (again.totals["marked"], again.totals["packets_seen"]),
        (6, 8),
        "{:?}",
        again.totals
    );
}

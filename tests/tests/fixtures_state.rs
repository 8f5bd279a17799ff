//! Program state through BPF_PROG_TEST_RUN: an unmarked frame's mark left alone, the
//! per-VIP and global counters following the verdicts, a reload switching generation
//! (kept VIPs keep their counter slots; removed VIPs' packets stay in the totals).

use std::net::Ipv4Addr;

use lvs_tests::{conf::MARKERS as CONFIG, fixture::*, frames::*};

#[test]
fn unmarked_frames_keep_a_zero_mark() {
    let dp = loaded();
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
    let dp = loaded();
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
    let mut dp = loaded();
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

/// Totals never go backwards: a reload that removes a VIP keeps its packets in
/// `marked`/`peer`/`packets_seen` (the per-VIP lines only list live VIPs).
#[test]
fn totals_keep_removed_vips_packets() {
    let mut dp = loaded();
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

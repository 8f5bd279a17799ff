//! Packet fixtures, peers: frames from a peer director's MAC are never marked (both
//! families, with IP options, VLAN tags, any-port VIPs; a MAC written with dashes; the
//! group bit makes another MAC), and with 4 to 1,024 peers (inline and in the peer table,
//! keys in their second bucket) every peer is found and no other MAC is; with more peers
//! than fit inline, the peer filter spares most clients the peer-table bucket.

use lvs_tests::{fixture::*, frames::*, harness::Loaded};

fn cases() -> Vec<Case> {
    vec![
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
            "v4 IHL 15 from peer stays unmarked",
            Frame::v4(PEER1, SRC4, VIP4, IPPROTO_TCP, 1, 80)
                .with_ipv4_options(&[1; 40])
                .bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
        (
            "any-port VIP from peer stays unmarked",
            Frame::v4(PEER1, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes(),
            UNTOUCHED,
            Reason::Peer,
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
            "v6 tcp vip:80 from peer unmarked",
            Frame::v6(PEER1, SRC6, VIP6, IPPROTO_TCP, 1, 80).bytes(),
            UNTOUCHED,
            Reason::Peer,
        ),
    ]
}

#[test]
fn peers_fixtures_give_the_expected_mark() {
    assert_marks(&cases());
}

#[test]
fn peers_fixtures_are_explained() {
    assert_explained(&cases());
}

#[test]
fn peers_fixtures_are_explained_from_pinned_maps() {
    assert_explained_from_pins(&cases());
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

/// With more peers than fit inline, the control line's peer filter (128 bits) lets a
/// client whose bit is clear skip the peer-table bucket: with 16 peers most clients
/// never read `LVS_PEER_TABLE` (without the filter every one does), every client is
/// marked, and a peer that is only in the table still reads it and stays unmarked.
#[test]
fn peer_filter_spares_most_clients_the_peer_table() {
    use lvs_tests::bench::{insns, workload};
    let probe =
        insns::PathProbe::new(&workload::config(1, workload::Target::V4, 16)).expect("loading");
    let frame = |mac: [u8; 6]| {
        Frame::v4(
            mac,
            SRC4,
            workload::TARGET_V4,
            IPPROTO_TCP,
            1,
            workload::TARGET_V4_PORT,
        )
        .bytes()
    };
    let table = lvs_ebpf_common::map_names::PEER_TABLE;
    let mut read = 0;
    let clients = 64u8;
    for i in 0..clients {
        let (lookups, mark) = probe
            .lookups(&frame([0x02, 0xcc, 0, 0, i, 1]))
            .expect("interpreting");
        assert_eq!(mark, workload::TARGET_V4_MARK, "client {i} unmarked");
        read += usize::from(lookups.iter().any(|l| l == table));
    }
    // 16 peers set at most 16 of the 126 free bits: ~1 client in 8 reads the table.
    assert!(
        read < usize::from(clients) / 2,
        "{read} of {clients} clients read the peer table"
    );
    // The last peer is not inline: the filter must pass it to the table.
    let (lookups, mark) = probe.lookups(&frame(workload::peer_mac(15))).expect("peer");
    assert_eq!(mark, 0, "peer 15 marked");
    assert!(
        lookups.iter().any(|l| l == table),
        "peer 15 skipped the table: {lookups:?}"
    );
}

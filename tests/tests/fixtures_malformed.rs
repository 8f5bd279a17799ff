//! Packet fixtures, malformed and truncated frames: transport headers cut short (one
//! byte on each side of each protocol's minimum), bad IPv4 version/IHL/tot_len, bad IPv6
//! version/payload_len, extension chains over the walk limit or past the payload, too
//! many VLAN tags, non-IP: never marked (or the any-port mark, which needs no port). The
//! expected mark, reason and model agreement. BPF_PROG_TEST_RUN refuses IP frames shorter
//! than the IP header; the namespace tests send those for real.

use lvs_tests::{fixture::*, frames::*};

fn cases() -> Vec<Case> {
    vec![
        (
            // Found by `cargo xtask mutants` (reading an extension header with only one
            // byte of it inside the payload survived): -EBADMSG, no port is read.
            "v6 extension header with 1 of its 2 first bytes inside payload_len untouched",
            tcp6(80)
                .with_ext(Ext::DestOpts { len8: 0 })
                .with_payload_len(1)
                .bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 extension header with 1 byte inside payload_len, any-port VIP: untouched",
            Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242)
                .with_ext(Ext::DestOpts { len8: 0 })
                .with_payload_len(1)
                .bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
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
        (
            // Found by `cargo xtask mutants` (a tag one byte short taken as a header past
            // the linear data, and so as non-linear, survived).
            "802.1Q tag one byte short of its 4: not IP, untouched",
            // Unpadded (a veth or a packet socket passes a 17-byte frame as it is).
            Frame {
                min_len: 0,
                ..Frame::raw(CLIENT, ETH_P_8021Q, vec![0x00, 0x64, 0x08])
            }
            .bytes(),
            UNTOUCHED,
            Reason::NotIp,
        ),
        (
            "ARP untouched",
            Frame::raw(CLIENT, ETH_P_ARP, vec![0; 28]).bytes(),
            UNTOUCHED,
            Reason::NotIp,
        ),
        (
            "v4 version 5 untouched",
            tcp4(80).with_ver_ihl(0x55).bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 IHL 4 untouched",
            tcp4(80).with_ver_ihl(0x44).bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 tot_len beyond the frame untouched",
            tcp4(80).with_tot_len(200).bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v4 tot_len shorter than IHL untouched",
            tcp4(80).with_tot_len(16).bytes(),
            UNTOUCHED,
            Reason::Malformed,
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
            "v6 tcp header of 12 bytes untouched",
            tcp6(80).with_l4_len(12).bytes(),
            UNTOUCHED,
            Reason::L4Truncated,
        ),
        (
            "v6 33 extension headers: over the walk limit, untouched",
            (0..33)
                .fold(tcp6(80), |f, _| f.with_ext(Ext::DestOpts { len8: 0 }))
                .bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 extension header past payload_len untouched",
            // Hop-by-hop header claims 16 bytes but the payload ends after 8.
            Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 1, 80)
                .with_l4_len(0)
                .with_ext(Ext::HopByHop { len8: 1 })
                .with_payload_len(8)
                .bytes(),
            UNTOUCHED,
            // The chain ends past the payload: the transport header is cut short.
            Reason::L4Truncated,
        ),
        (
            "v6 version 4 in an IPv6 frame untouched",
            {
                let mut b = tcp6(80).bytes();
                b[14] = 0x40; // version 4 in the IPv6 header
                b
            },
            UNTOUCHED,
            Reason::Malformed,
        ),
        (
            "v6 payload_len beyond the frame untouched",
            tcp6(80).with_payload_len(500).bytes(),
            UNTOUCHED,
            Reason::Malformed,
        ),
    ]
}

#[test]
fn malformed_fixtures_give_the_expected_mark() {
    assert_marks(&cases());
}

#[test]
fn malformed_fixtures_are_explained() {
    assert_explained(&cases());
}

#[test]
fn malformed_fixtures_are_explained_from_pinned_maps() {
    assert_explained_from_pins(&cases());
}

//! Packet fixtures, IPv6: extension header chains (hop-by-hop, destination options,
//! routing, AH, fragments; 32 headers, the walk limit), other next headers, any-port
//! VIPs, VLAN tags: the expected mark, reason and model agreement.

use lvs_tests::{fixture::*, frames::*};

fn cases() -> Vec<Case> {
    vec![
        (
            // Found by `cargo xtask mutants` (a fragment-offset mask keeping the reserved
            // bits survived): ipv6_find_hdr masks them off (`& ~0x7`), and so must we.
            "v6 first fragment with the two reserved bits set is a first fragment: marked",
            {
                let mut b = tcp6(80).with_fragment(0, true).bytes();
                b[14 + 40 + 3] |= 0x6; // fragment header: offset (13 bits), res (2), M
                b
            },
            0x6,
            Reason::Marked,
        ),
        (
            "any-port v6 udp VIP marked",
            Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242).bytes(),
            0x60,
            Reason::Marked,
        ),
        (
            "802.1Q tagged v6 marked",
            tcp6(80).with_vlan(ETH_P_8021Q, 7).bytes(),
            0x6,
            Reason::Marked,
        ),
        (
            "v6 tcp vip:80 marked",
            tcp6(80).bytes(),
            0x6,
            Reason::Marked,
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
            "v6 32 extension headers then tcp marked",
            (0..32)
                .fold(tcp6(80), |f, _| f.with_ext(Ext::DestOpts { len8: 0 }))
                .bytes(),
            0x6,
            Reason::Marked,
        ),
    ]
}

#[test]
fn ipv6_fixtures_give_the_expected_mark() {
    assert_marks(&cases());
}

#[test]
fn ipv6_fixtures_are_explained() {
    assert_explained(&cases());
}

#[test]
fn ipv6_fixtures_are_explained_from_pinned_maps() {
    assert_explained_from_pins(&cases());
}

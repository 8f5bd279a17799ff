//! Packet fixtures, IPv4: protocols (TCP, UDP, SCTP, ICMP), ports, addresses, IPv4
//! options, fragments, any-port VIPs and VLAN tags, through BPF_PROG_TEST_RUN: the
//! expected `skb->mark` (from ctx_out), the reason `lvs_explain` gives, also on pinned
//! maps, and the reference model's agreement.

use std::net::Ipv4Addr;

use lvs_tests::{fixture::*, frames::*};

fn cases() -> Vec<Case> {
    vec![
        (
            "v4 tcp vip:80 from client is marked",
            tcp4(80).bytes(),
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
    ]
}

#[test]
fn ipv4_fixtures_give_the_expected_mark() {
    assert_marks(&cases());
}

#[test]
fn ipv4_fixtures_are_explained() {
    assert_explained(&cases());
}

#[test]
fn ipv4_fixtures_are_explained_from_pinned_maps() {
    assert_explained_from_pins(&cases());
}

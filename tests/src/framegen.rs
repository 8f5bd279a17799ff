//! Random frames for property and differential tests (proptest strategies), aimed at
//! the VIPs of [`CONFIG`] most of the time; [`CONFIG`] with random `mark_mask`s and
//! marks ([`masked_config`]); random arriving marks ([`premark`]).

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use lvs_loader::config::{Config, format_mac};
use proptest::{prelude::*, sample::Index};

use crate::{frames::*, model::MarkOp};

/// The config the generated frames are aimed at: TCP/UDP/SCTP, IPv4/IPv6, exact and
/// any-port VIPs, two peers.
pub const CONFIG: &str = crate::conf::RANDOM_FRAMES;

pub const MACS: [[u8; 6]; 3] = [
    [0x52, 0x54, 0, 0x12, 0x34, 0x56],
    [0, 0x0c, 0x29, 0x57, 0x88, 0xce],
    [0, 0x0c, 0x29, 0x57, 0x88, 0xd8],
];
const V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(172, 17, 85, 56),
    Ipv4Addr::new(192, 0, 2, 10),
    Ipv4Addr::new(172, 17, 85, 57),
];
const V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x57),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x58),
];
const PROTOS: [u8; 5] = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, 50];
const PORTS: [u16; 6] = [80, 53, 9, 443, 4789, 22];

fn ext() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (0u8..3).prop_map(|len8| Ext::HopByHop { len8 }),
        (0u8..3).prop_map(|len8| Ext::DestOpts { len8 }),
        ((0u8..3), (0u8..2)).prop_map(|(len8, segments_left)| Ext::Routing {
            len8,
            segments_left
        }),
        ((0u16..4), any::<bool>()).prop_map(|(offset, more)| Ext::Fragment {
            offset,
            more,
            id: 7
        }),
        (1u8..5).prop_map(|len4| Ext::Auth { len4 }),
    ]
}

/// (IPv6?, destination index, protocol, port) of every VIP in CONFIG, so that most
/// generated frames are aimed at one.
const TARGETS: [(bool, usize, u8, u16); 9] = [
    (false, 0, IPPROTO_TCP, 80),
    (false, 0, IPPROTO_UDP, 53),
    (false, 0, IPPROTO_SCTP, 9),
    (false, 1, IPPROTO_TCP, 22),
    (false, 1, IPPROTO_TCP, 443),
    (false, 1, IPPROTO_UDP, 443),
    (true, 0, IPPROTO_TCP, 80),
    (true, 1, IPPROTO_UDP, 1000),
    (true, 1, IPPROTO_UDP, 4789),
];

prop_compose! {
    /// A structured frame: sometimes malformed, mostly aimed at a VIP of [`CONFIG`].
    pub fn frame()(
        mac in 0usize..4, rand_mac in any::<[u8; 6]>(),
        nvlans in prop::sample::select(vec![0usize, 0, 0, 0, 0, 1, 1, 2, 3]),
        tags in prop::collection::vec((prop::sample::select(vec![ETH_P_8021Q, ETH_P_8021AD]), 0u16..4095), 3),
        target in 0usize..12, v6 in any::<bool>(),
        raw in prop::sample::select(vec![false, false, false, false, false, false, true]),
        dst in 0usize..3, proto in 0usize..6, rand_proto in any::<u8>(),
        port in 0usize..7, rand_port in any::<u16>(),
        opts in prop::sample::select(vec![0usize, 0, 0, 1, 3, 10]),
        frag in prop::sample::select(vec![0u16, 0, 0, 0, 0, 0, 1, 2, 100]), more in any::<bool>(),
        l4_len in prop::option::weighted(0.15, 0usize..24),
        nexts in prop::sample::select(vec![0usize, 0, 0, 1, 2, 3, 8, 9]),
        exts in prop::collection::vec(ext(), 9),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        len_fudge in prop::option::weighted(0.1, -30i32..30),
    ) -> Vec<u8> {
        let src = if mac < 3 { MACS[mac] } else { let mut m = rand_mac; m[0] &= 0xfe; m };
        let (v6, dst, proto, dport) = if target < TARGETS.len() {
            TARGETS[target]
        } else {
            (v6, dst, if proto < 5 { PROTOS[proto] } else { rand_proto }, if port < 6 { PORTS[port] } else { rand_port })
        };
        let mut f = if raw {
            Frame::raw(src, 0x0806, payload.clone())
        } else if v6 {
            let mut f = Frame::v6(src, Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1), V6[dst], proto, 1234, dport);
            for e in exts.iter().take(nexts) { f = f.with_ext(e.clone()); }
            f
        } else {
            Frame::v4(src, Ipv4Addr::new(198, 51, 100, 1), V4[dst], proto, 1234, dport)
                .with_ipv4_options(&vec![1u8; opts * 4])
                .with_fragment(frag, more)
        };
        if let Some(n) = l4_len { f = f.with_l4_len(n); }
        f = f.with_payload(&payload);
        for (tpid, vid) in tags.iter().take(nvlans) { f = f.with_vlan(*tpid, *vid); }
        if let Some(d) = len_fudge { f = f.with_ip_len_off_by(d); }
        f.bytes()
    }
}

/// [`CONFIG`], parsed.
pub fn config() -> Config {
    lvs_loader::config::parse(CONFIG, "random-frames.toml")
        .unwrap_or_else(|e| panic!("random-frames.toml:\n{e}"))
}

/// A random non-zero `mark_mask`: a byte, one bit, a run of bits, any bits, or all 32.
fn mask() -> impl Strategy<Value = u32> {
    const BYTE: u32 = 0xff;
    const BITS: u32 = u32::BITS;
    prop_oneof![
        (0..BITS / 8).prop_map(|i| BYTE << (8 * i)),
        (0..BITS).prop_map(|i| 1u32 << i),
        (0..BITS)
            .prop_flat_map(|lo| (Just(lo), 1..=BITS - lo))
            .prop_map(|(lo, n)| (u32::MAX >> (BITS - n)) << lo),
        1..=u32::MAX,
        Just(MarkOp::FULL_MASK),
    ]
}

/// The lowest set bit of a non-zero `mask`: a mark that fits in it.
fn lowest_bit(mask: u32) -> u32 {
    mask & mask.wrapping_neg()
}

/// [`CONFIG`]'s peers and VIPs with random marks and `mark_mask`s, as a vips.toml (so
/// through the config's own validation): sometimes a top-level `mark_mask`, most VIPs a
/// mask of their own from a pool (shared, so some VIPs share a mask class; in a quarter
/// of the configs every VIP takes its own pool entry: up to 9 classes), marks random
/// inside their masks (so often inside other VIPs' masks). In a fifth of the configs one
/// VIP's mark then gets bits outside its mask too (xt_MARK toggles those; the config
/// refuses them, but the datapath computes them exactly and only such a mark tells `^`
/// from `|`).
pub fn masked_config() -> impl Strategy<Value = Config> {
    let base = config();
    let n = base.vips.len();
    (
        prop::collection::vec(mask(), n),
        prop::option::weighted(0.4, any::<Index>()),
        prop::sample::select(vec![false, false, false, true]),
        prop::collection::vec(prop::option::weighted(0.7, any::<Index>()), n),
        prop::collection::vec(any::<u32>(), n),
        prop::option::weighted(0.2, (any::<Index>(), any::<u32>())),
    )
        .prop_map(move |(pool, global, distinct, own, raw, outside)| {
            let global = global.map(|i| *i.get(&pool));
            let mut text = String::new();
            if let Some(g) = global {
                let _ = writeln!(text, "mark_mask = {g:#x}");
            }
            for p in &base.peers {
                let _ = writeln!(text, "[[peer]]\nmac = \"{}\"", format_mac(&p.mac));
            }
            for (i, ((v, own), raw)) in base.vips.iter().zip(own).zip(raw).enumerate() {
                let own = if distinct {
                    Some(pool[i])
                } else {
                    own.map(|x| *x.get(&pool))
                };
                let mask = own.or(global).unwrap_or(MarkOp::FULL_MASK);
                let mark = match raw & mask {
                    0 => lowest_bit(mask),
                    m => m,
                };
                let _ = writeln!(
                    text,
                    "[[vip]]\naddress = \"{}\"\nprotocol = \"{}\"\nmark = {mark:#x}",
                    v.address,
                    v.protocol.as_str()
                );
                if let Some(p) = v.port {
                    let _ = writeln!(text, "port = {p}");
                }
                if let Some(m) = own {
                    let _ = writeln!(text, "mark_mask = {m:#x}");
                }
            }
            let mut config = lvs_loader::config::parse(&text, "masked.toml")
                .unwrap_or_else(|e| panic!("generated config refused:\n{e}\n{text}"));
            if let Some((i, bits)) = outside {
                let v = i.get_mut(&mut config.vips);
                v.mark |= bits & !v.mark_mask;
            }
            config
        })
}

/// The mark a frame arrives with: mostly random and non-zero, sometimes 0.
pub fn premark() -> impl Strategy<Value = u32> {
    prop_oneof![9 => 1..=u32::MAX, 1 => Just(0)]
}

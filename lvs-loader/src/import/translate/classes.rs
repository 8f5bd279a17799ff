//! The packet classes the walk tries: client MACs no rule names, VIP and other
//! protocols, stand-ins for "any other address", and the port intervals on which the
//! rules are constant.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::import::{eval::Tables, lex::Family, rule::Net};

pub(super) const CLIENT_MACS: [[u8; 6]; 3] = [
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01],
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02],
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x03],
];
pub(super) const VIP_PROTOS: [u8; 3] = [6, 17, 132];

pub(super) fn other_protos(mentioned: &BTreeSet<u8>) -> Vec<u8> {
    let mut v: Vec<u8> = mentioned
        .iter()
        .copied()
        .filter(|p| !VIP_PROTOS.contains(p))
        .collect();
    if let Some(p) = [47u8, 50, 1, 2, 253]
        .into_iter()
        .find(|p| !mentioned.contains(p))
    {
        v.push(p);
    }
    v
}

/// Addresses no rule names and inside no named prefix... plus one inside each non-host
/// prefix: stand-ins for "any other address".
pub(super) fn other_addrs(
    family: Family,
    hosts: &BTreeSet<IpAddr>,
    prefixes: &[Net],
) -> Vec<IpAddr> {
    let cands: Vec<IpAddr> = match family {
        Family::V4 => [
            [192, 0, 2, 77],
            [198, 51, 100, 77],
            [203, 0, 113, 77],
            [100, 64, 7, 77],
            [10, 254, 253, 77],
        ]
        .into_iter()
        .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
        .collect(),
        Family::V6 => [
            "2001:db8:ffff::77",
            "3fff:ffff::77",
            "fd00:ffff::77",
            "2001:db8:fffe::77",
        ]
        .into_iter()
        .map(|s| s.parse().expect("literal"))
        .collect(),
    };
    let mut out = Vec::new();
    if let Some(a) = cands
        .iter()
        .find(|a| !hosts.contains(a) && !prefixes.iter().any(|p| p.contains(**a)))
    {
        out.push(*a);
    }
    for p in prefixes {
        for k in 1u32..8 {
            let a = match p.addr {
                IpAddr::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n).wrapping_add(k))),
                IpAddr::V6(n) => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(n).wrapping_add(u128::from(k))))
                }
            };
            if p.contains(a) && !hosts.contains(&a) {
                if !out.contains(&a) {
                    out.push(a);
                }
                break;
            }
        }
    }
    out
}

/// Port classes of `addr`/`proto`: the starts of intervals on which every port range of
/// the relevant rules is constant.
pub(super) fn port_intervals(t: &Tables, relevant: &[usize], proto: u8) -> Vec<(u16, u16)> {
    let mut cuts: BTreeSet<u32> = [0u32, 65536].into();
    for &i in relevant {
        let r = &t.rules[i];
        if r.proto
            .as_ref()
            .is_some_and(|p| !p.negated && p.value != proto)
        {
            continue;
        }
        if let Some(d) = &r.dports {
            for &(lo, hi) in &d.value {
                cuts.insert(u32::from(lo));
                cuts.insert(u32::from(hi) + 1);
            }
        }
    }
    let c: Vec<u32> = cuts.into_iter().collect();
    c.windows(2)
        .map(|w| (w[0] as u16, (w[1] - 1) as u16))
        .collect()
}

/// A port class's outcome: (ports, or `None` for non-first fragments; client mark and
/// mask; excluded MACs; rules that set the mark).
pub(super) type ClassResult = (
    Option<(u16, u16)>,
    (u32, u32),
    BTreeSet<[u8; 6]>,
    BTreeSet<usize>,
);

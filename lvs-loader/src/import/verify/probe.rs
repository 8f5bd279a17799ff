//! The frames `import --verify` sends to both sides: every interface class, address,
//! protocol, port (and the ports just outside each range), source MAC, fragments, IPv6
//! extension headers and VLAN tags the rules can tell apart, each from a unique source
//! address; and the frame that tells the iptables side all of them have arrived.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::{
    config::{Protocol, format_endpoint, format_mac},
    frames::{ETH_P_8021Q, Ext, Frame, IPPROTO_ICMP, IPPROTO_ICMPV6},
    import::{
        ImportResult, Imported,
        scratch::{DEV_MAC, VLAN_ID},
    },
};

/// One generated frame.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Index of the interface class it arrives on.
    pub link: usize,
    pub summary: String,
    pub frame: Vec<u8>,
    /// Its unique source address (the key of the iptables observation).
    pub src: IpAddr,
    /// `skb->mark` it arrives with (0, or [`PREMARK`] when the rules use partial masks).
    pub mark_in: u32,
}

/// The mark the second copy of every frame arrives with when some rule's mask is not
/// all 32 bits, so that what a mask keeps is compared too: every bit pattern of a
/// nibble, in every byte (`SO_MARK` on the iptables side, `ctx_in` on lvs-ebpf's).
pub const PREMARK: u32 = 0x5aa5_c33c;

/// The interface classes: the names the rules use, then one name they don't
/// ("every other interface"); and which config each gets.
pub fn classes(r: &ImportResult, configs: &[Imported]) -> Vec<(String, Option<usize>)> {
    let mut out: Vec<(String, Option<usize>)> = r
        .ifaces
        .iter()
        .map(|i| (i.clone(), configs.iter().position(|c| c.ifaces.contains(i))))
        .collect();
    let other = (0..)
        .map(|n| {
            if n == 0 {
                "lvsv-other".to_owned()
            } else {
                format!("lvsv-other{n}")
            }
        })
        .find(|n| !r.ifaces.contains(n))
        .expect("a free name");
    out.push((
        other,
        configs
            .iter()
            .position(|c| c.ifaces.iter().any(String::is_empty)),
    ));
    out
}

struct Gen {
    n: u32,
    probes: Vec<Probe>,
    mark_in: u32,
}

impl Gen {
    fn src(&mut self, v6: bool) -> IpAddr {
        self.n += 1;
        let n = self.n;
        if v6 {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0x5eed,
                0,
                0,
                0,
                0,
                (n >> 16) as u16,
                n as u16,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
        }
    }

    fn push(
        &mut self,
        link: usize,
        summary: String,
        build: impl FnOnce(IpAddr) -> Frame,
        v6: bool,
    ) {
        let src = self.src(v6);
        let frame = build(src).with_dst_mac(DEV_MAC).bytes();
        let summary = match self.mark_in {
            0 => summary,
            m => format!("{summary} arriving with mark {m:#x}"),
        };
        self.probes.push(Probe {
            link,
            summary,
            frame,
            src,
            mark_in: self.mark_in,
        });
    }
}

fn frame(mac: [u8; 6], src: IpAddr, dst: IpAddr, proto: u8, dport: u16) -> Frame {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Frame::v4(mac, s, d, proto, 40000, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => Frame::v6(mac, s, d, proto, 40000, dport),
        _ => unreachable!("families match"),
    }
}

/// The frames for `r` and its configs.
pub fn probes(
    classes: &[(String, Option<usize>)],
    r: &ImportResult,
    configs: &[Imported],
    vlan: &[bool],
) -> Vec<Probe> {
    let mut addrs: BTreeSet<IpAddr> = r.addresses.clone();
    let mut macs: BTreeSet<[u8; 6]> = r.macs.clone();
    let mut ports: BTreeSet<u16> = r.ports.clone();
    for c in configs {
        addrs.extend(c.config.vips.iter().map(|v| v.address));
        macs.extend(c.config.peers.iter().map(|p| p.mac));
        ports.extend(c.config.vips.iter().filter_map(|v| v.port));
    }
    let other4: IpAddr = [192, 0, 2, 99].into();
    let other6: IpAddr = "2001:db8:ffff::99".parse().expect("literal");
    if addrs.iter().any(IpAddr::is_ipv4) && !addrs.contains(&other4) {
        addrs.insert(other4);
    }
    if addrs.iter().any(IpAddr::is_ipv6) && !addrs.contains(&other6) {
        addrs.insert(other6);
    }
    let client = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    let client = if macs.contains(&client) {
        [0x02, 0x00, 0x5e, 0x10, 0x00, 0x09]
    } else {
        client
    };
    macs.insert(client);
    let mut test_ports: BTreeSet<u16> = BTreeSet::new();
    for &p in &ports {
        test_ports.insert(p);
        if p > 1 {
            test_ports.insert(p - 1);
        }
        if p < u16::MAX {
            test_ports.insert(p + 1);
        }
    }
    test_ports.remove(&0);
    test_ports.insert((33333..).find(|p| !ports.contains(p)).unwrap_or(33333));
    let first_port = *ports.iter().find(|&&p| p != 0).unwrap_or(&80);
    let mut g = Gen {
        n: 0,
        probes: Vec::new(),
        mark_in: 0,
    };
    // Partial masks anywhere: every frame once more, arriving already marked.
    let masked = r.masks.iter().any(|&m| m != u32::MAX)
        || configs
            .iter()
            .any(|c| c.config.vips.iter().any(|v| v.mark_mask != u32::MAX));
    let marks_in: &[u32] = if masked { &[0, PREMARK] } else { &[0] };
    for &mark_in in marks_in {
        g.mark_in = mark_in;
        for (li, (iface, _)) in classes.iter().enumerate() {
            let on = format!("on {iface}");
            for &dst in &addrs {
                let v6 = dst.is_ipv6();
                for &mac in &macs {
                    let from = format!("from {}", format_mac(&mac));
                    for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                        for &port in &test_ports {
                            g.push(
                                li,
                                format!("{} {from} {on}", format_endpoint(dst, Some(port), proto)),
                                |s| frame(mac, s, dst, proto.number(), port),
                                v6,
                            );
                        }
                    }
                    let icmp = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
                    g.push(
                        li,
                        format!("{dst} ICMP {from} {on}"),
                        |s| frame(mac, s, dst, icmp, 0),
                        v6,
                    );
                    let tcp = Protocol::Tcp.number();
                    let ep = format_endpoint(dst, Some(first_port), Protocol::Tcp);
                    if v6 {
                        g.push(
                            li,
                            format!("{ep} behind hop-by-hop and destination options {from} {on}"),
                            |s| {
                                frame(mac, s, dst, tcp, first_port)
                                    .with_ext(Ext::HopByHop { len8: 0 })
                                    .with_ext(Ext::DestOpts { len8: 1 })
                            },
                            v6,
                        );
                        g.push(
                            li,
                            format!("{ep} non-first IPv6 fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(100, true),
                            v6,
                        );
                    } else {
                        g.push(
                            li,
                            format!("{ep} non-first fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(100, true),
                            v6,
                        );
                        g.push(
                            li,
                            format!("{ep} first fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(0, true),
                            v6,
                        );
                    }
                    if vlan.get(li).copied().unwrap_or(false) {
                        g.push(
                            li,
                            format!("{ep} VLAN {VLAN_ID} tagged {from} {on}.{VLAN_ID}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_vlan(ETH_P_8021Q, VLAN_ID),
                            v6,
                        );
                    }
                }
            }
        }
    }
    g.probes
}

pub(super) fn sync_probe(link: usize, v6: bool) -> (IpAddr, Vec<u8>) {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "fd00:5eed:ffff::1".parse().expect("lit"),
            "2001:db8:ffff::fe".parse().expect("lit"),
        )
    } else {
        ([10, 255, 255, 254].into(), [192, 0, 2, 254].into())
    };
    let _ = link;
    (
        src,
        frame(
            [0x02, 0, 0x5e, 0x10, 0xff, 0xfe],
            src,
            dst,
            Protocol::Udp.number(),
            9,
        )
        .with_dst_mac(DEV_MAC)
        .bytes(),
    )
}

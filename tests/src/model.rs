//! A userspace reference model of the LVS-HOWTO iptables recipe, written from the kernel's
//! netfilter code (`ip_packet_match`/`ip6_packet_match`, `ipv6_find_hdr`, `tcp_mt`,
//! `udp_mt`, `sctp_mt`, `mac_mt`), independently of the eBPF program.
//!
//! The recipe, per VIP (any-port rules first, so an exact-port rule's mark wins):
//!
//! ```text
//! iptables -t mangle -A PREROUTING -d VIP -p PROTO [-m PROTO --dport PORT] \
//!          -m mac ! --mac-source PEER1 [-m mac ! --mac-source PEER2 ...] -j MARK --set-mark M
//! ```
//!
//! with `--set-xmark M/MASK` for a VIP whose `mark_mask` is not full. Predictions are
//! [`MarkOp`]s (what xt_MARK does to the arriving mark), so a caller gets the mark a
//! frame leaves PREROUTING with for any mark it arrives with. MARK does not end the
//! chain: a packet matching an any-port rule and an exact-port rule gets both, in rule
//! order ([`MarkOp::then`]); lvs-ebpf applies the exact-port VIP's alone. The two agree
//! unless the any-port VIP's mask has bits the exact-port VIP's lacks
//! (`lvs_loader::export::overlapping_masks`).

mod mark;

use std::net::IpAddr;

use lvs_loader::config::{Config, Vip};

pub use mark::{MarkOp, after};

/// What netfilter does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netfilter {
    /// Passes PREROUTING with the mark this does to the arriving one (`None`: untouched):
    /// every matching rule's, in rule order.
    Mark(Option<MarkOp>),
    /// A match "hot-dropped" it (TCP tinygram, TCP fragment at offset 8, truncated UDP/SCTP
    /// header, unreadable IPv6 extension headers).
    HotDrop,
}

impl Netfilter {
    /// The mark the frame leaves PREROUTING with, arriving with `pre` (`None`: dropped).
    pub fn mark(self, pre: u32) -> Option<u32> {
        match self {
            Netfilter::Mark(op) => Some(after(op, pre)),
            Netfilter::HotDrop => None,
        }
    }
}

/// The model's prediction for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// What lvs-ebpf does to `skb->mark` (`None`: leaves it as it arrived).
    pub bpf: Option<MarkOp>,
    /// What the iptables recipe does.
    pub netfilter: Netfilter,
    /// The IP layer drops it before PREROUTING (bad header, bad IPv4 checksum, short),
    /// so no mark is observable in either datapath.
    pub dropped_before_netfilter: bool,
    /// An IPv6 extension chain that ends past the payload (the transport header would
    /// start beyond `payload_len`). Linux 6.18 passes these through PREROUTING; Debian's
    /// 6.1 and 6.12 were seen dropping them in the iptables namespace (`cargo xtask
    /// vm-test`). lvs-ebpf leaves them as `bpf` says on every kernel.
    pub chain_past_end: bool,
}

impl Expectation {
    /// The mark lvs-ebpf leaves on the frame, arriving with `pre`.
    pub fn bpf_mark(&self, pre: u32) -> u32 {
        after(self.bpf, pre)
    }
}

/// lvs-ebpf walks at most this many IPv6 extension headers (see parse.rs).
pub const BPF_MAX_EXT_HDRS: usize = 32;

struct Ip {
    daddr: IpAddr,
    /// Transport protocol per `ipv6_find_hdr` (or the IPv4 protocol field);
    /// `None` when the IPv6 chain is unreadable.
    proto: Option<u8>,
    /// Fragment offset: IPv4 in 8-byte units, IPv6 in bytes (as netfilter keeps them).
    fragoff: u32,
    /// Offset of the transport header in the frame.
    thoff: usize,
    /// End of the IP packet in the frame (`tot_len`/`payload_len` trimmed).
    end: usize,
    /// IPv6 extension headers consumed.
    ext_hdrs: usize,
    /// ip_rcv/ipv6_rcv would drop it before netfilter.
    kernel_drop: bool,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn is_ext(n: u8) -> bool {
    matches!(n, 0 | 43 | 44 | 51 | 59 | 60)
}

/// Parses the frame as the kernel would hand it to netfilter. `None`: not IP at all, or
/// too short to even hold an IP header (the IP layer drops those).
fn parse(frame: &[u8]) -> Option<Ip> {
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = 14;
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        ethertype = be16(frame, l3 + 2)?;
        l3 += 4;
    }
    let len = frame.len();
    match ethertype {
        0x0800 => {
            let h = frame.get(l3..l3 + 20)?;
            let ihl = usize::from(h[0] & 0xf) * 4;
            let tot = usize::from(be16(h, 2)?);
            let bad = h[0] >> 4 != 4 || ihl < 20 || tot < ihl || l3 + tot > len;
            if bad {
                return Some(Ip {
                    daddr: IpAddr::from([h[16], h[17], h[18], h[19]]),
                    proto: None,
                    fragoff: 0,
                    thoff: 0,
                    end: 0,
                    ext_hdrs: 0,
                    kernel_drop: true,
                });
            }
            let csum_ok = crate::frames::checksum(&frame[l3..l3 + ihl]) == 0;
            Some(Ip {
                daddr: IpAddr::from([h[16], h[17], h[18], h[19]]),
                proto: Some(h[9]),
                fragoff: u32::from(be16(h, 6)? & 0x1fff),
                thoff: l3 + ihl,
                end: l3 + tot,
                ext_hdrs: 0,
                kernel_drop: !csum_ok,
            })
        }
        0x86dd => {
            let h = frame.get(l3..l3 + 40)?;
            let mut d = [0u8; 16];
            d.copy_from_slice(&h[24..40]);
            let daddr = IpAddr::from(d);
            let plen = usize::from(be16(h, 4)?);
            let first = h[6];
            let end = if plen == 0 && first == 0 {
                len
            } else {
                l3 + 40 + plen
            };
            if h[0] >> 4 != 6 || end > len {
                return Some(Ip {
                    daddr,
                    proto: None,
                    fragoff: 0,
                    thoff: 0,
                    end: 0,
                    ext_hdrs: 0,
                    kernel_drop: true,
                });
            }
            let pkt = &frame[..end];
            // ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL)
            let mut next = first;
            let mut start = l3 + 40;
            let mut fragoff = 0u32;
            let mut consumed = 0;
            let proto = loop {
                if !is_ext(next) || next == 59 {
                    break Some(next);
                }
                let (Some(&hn), Some(&hl)) = (pkt.get(start), pkt.get(start + 1)) else {
                    break None; // -EBADMSG
                };
                consumed += 1;
                let hdrlen = match next {
                    43 => {
                        if pkt.len() < start + 4 {
                            break None;
                        }
                        (usize::from(hl) + 1) * 8
                    }
                    44 => {
                        let Some(fo) = be16(pkt, start + 2) else {
                            break None;
                        };
                        let fo = u32::from(fo & !7);
                        if fo != 0 {
                            if !is_ext(hn) || hn == 59 {
                                fragoff = fo;
                                break Some(hn);
                            }
                            break None; // -ENOENT with fragoff 0
                        }
                        8
                    }
                    51 => (usize::from(hl) + 2) * 4,
                    _ => (usize::from(hl) + 1) * 8,
                };
                next = hn;
                start += hdrlen;
            };
            Some(Ip {
                daddr,
                proto,
                fragoff,
                thoff: start,
                end,
                ext_hdrs: consumed,
                kernel_drop: false,
            })
        }
        _ => None,
    }
}

fn l4_len(proto: u8) -> usize {
    match proto {
        6 => 20,
        17 => 8,
        132 => 12,
        _ => 0,
    }
}

/// One iptables rule of the recipe, evaluated on a parsed packet.
enum RuleResult {
    NoMatch,
    Match,
    HotDrop,
}

fn eval_rule(vip: &Vip, peers: &[[u8; 6]], src_mac: [u8; 6], ip: &Ip, frame: &[u8]) -> RuleResult {
    // ip_packet_match: -d VIP first...
    if ip.daddr != vip.address {
        return RuleResult::NoMatch;
    }
    // ...then -p PROTO (ip6: ipv6_find_hdr < 0 hot-drops unless a fragment).
    let Some(proto) = ip.proto else {
        return RuleResult::HotDrop;
    };
    if proto != vip.protocol.number() {
        return RuleResult::NoMatch;
    }
    // -m tcp/udp/sctp --dport PORT
    if let Some(port) = vip.port {
        if ip.fragoff != 0 {
            let v4 = ip.daddr.is_ipv4();
            if v4 && proto == 6 && ip.fragoff == 1 {
                return RuleResult::HotDrop;
            }
            return RuleResult::NoMatch;
        }
        if ip.thoff + l4_len(proto) > ip.end {
            return RuleResult::HotDrop;
        }
        return match be16(frame, ip.thoff + 2) {
            Some(d) if d == port => mac_rule(peers, src_mac),
            _ => RuleResult::NoMatch,
        };
    }
    mac_rule(peers, src_mac)
}

fn mac_rule(peers: &[[u8; 6]], src_mac: [u8; 6]) -> RuleResult {
    // -m mac ! --mac-source P for every peer
    if peers.contains(&src_mac) {
        RuleResult::NoMatch
    } else {
        RuleResult::Match
    }
}

/// The recipe's rule order: any-port VIPs first, then exact-port VIPs.
pub fn rule_order(config: &Config) -> Vec<&Vip> {
    let mut v: Vec<&Vip> = config.vips.iter().filter(|v| v.port.is_none()).collect();
    v.extend(config.vips.iter().filter(|v| v.port.is_some()));
    v
}

/// Predicts lvs-ebpf's and the iptables recipe's treatment of `frame`.
pub fn evaluate(config: &Config, frame: &[u8]) -> Expectation {
    let peers: Vec<[u8; 6]> = config.peers.iter().map(|p| p.mac).collect();
    let Some(src_mac) = frame
        .get(6..12)
        .map(|s| [s[0], s[1], s[2], s[3], s[4], s[5]])
    else {
        return Expectation {
            bpf: None,
            netfilter: Netfilter::Mark(None),
            dropped_before_netfilter: true,
            chain_past_end: false,
        };
    };
    let Some(ip) = parse(frame) else {
        return Expectation {
            bpf: None,
            netfilter: Netfilter::Mark(None),
            dropped_before_netfilter: false,
            chain_past_end: false,
        };
    };

    // netfilter: walk the chain; MARK is non-terminating, every match applies in order
    // (with full masks the last one wins).
    let netfilter = if ip.kernel_drop && ip.proto.is_none() {
        Netfilter::Mark(None)
    } else {
        let mut mark = None;
        let mut dropped = false;
        for vip in rule_order(config) {
            match eval_rule(vip, &peers, src_mac, &ip, frame) {
                RuleResult::NoMatch => {}
                RuleResult::Match => {
                    let op = MarkOp::of(vip);
                    mark = Some(mark.map_or(op, |m: MarkOp| m.then(op)));
                }
                RuleResult::HotDrop => {
                    dropped = true;
                    break;
                }
            }
        }
        if dropped {
            Netfilter::HotDrop
        } else {
            Netfilter::Mark(mark)
        }
    };

    // lvs-ebpf: exact (address, port, proto) first, then the any-port entry; never marks
    // what the IP layer drops as malformed, nor unreadable IPv6 chains.
    let bpf = (|| {
        if ip.end == 0 {
            return None; // malformed header: ip_rcv drops it
        }
        let proto = ip.proto?;
        if ip.ext_hdrs > BPF_MAX_EXT_HDRS {
            return None;
        }
        let has_port = ip.fragoff == 0 && l4_len(proto) > 0 && ip.thoff + l4_len(proto) <= ip.end;
        let dport = if has_port {
            be16(frame, ip.thoff + 2)
        } else {
            None
        };
        let find = |port: Option<u16>| {
            config
                .vips
                .iter()
                .find(|v| v.address == ip.daddr && v.protocol.number() == proto && v.port == port)
        };
        let vip = dport.and_then(|p| find(Some(p))).or_else(|| find(None))?;
        if peers.contains(&src_mac) {
            None
        } else {
            Some(MarkOp::of(vip))
        }
    })();

    Expectation {
        bpf,
        netfilter,
        dropped_before_netfilter: ip.kernel_drop,
        chain_past_end: ip.daddr.is_ipv6() && ip.proto.is_some() && ip.thoff > ip.end,
    }
}

/// The recipe as `iptables`/`ip6tables` argument lists (without the binary), in order,
/// for the `mangle` table's PREROUTING chain: `--set-mark M`, or `--set-xmark M/MASK` for
/// a VIP with a partial `mark_mask`.
pub fn iptables_rules(config: &Config) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    for vip in rule_order(config) {
        let v6 = vip.address.is_ipv6();
        let mut a: Vec<String> = vec!["-t", "mangle", "-A", "PREROUTING", "-d"]
            .into_iter()
            .map(String::from)
            .collect();
        a.push(vip.address.to_string());
        a.push("-p".into());
        a.push(vip.protocol.as_str().into());
        if let Some(port) = vip.port {
            a.push("-m".into());
            a.push(vip.protocol.as_str().into());
            a.push("--dport".into());
            a.push(port.to_string());
        }
        for p in &peers_of(config) {
            a.extend(["-m", "mac", "!", "--mac-source"].map(String::from));
            a.push(p.clone());
        }
        a.extend(["-j", "MARK"].map(String::from));
        a.extend(MarkOp::of(vip).iptables_args());
        out.push((v6, a));
    }
    out
}

fn peers_of(config: &Config) -> Vec<String> {
    config
        .peers
        .iter()
        .map(|p| lvs_loader::config::format_mac(&p.mac))
        .collect()
}

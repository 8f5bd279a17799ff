//! Header parsing with direct packet access.
//!
//! The semantics follow what iptables/ip6tables see in `mangle PREROUTING` for
//! `-d VIP -p PROTO [-m PROTO --dport PORT]`:
//! * IPv4: any IHL; the transport header starts at IHL*4; a non-first fragment
//!   (`frag_off & 0x1fff != 0`) carries no ports; everything past `tot_len` is padding.
//! * IPv6: the extension header chain is walked exactly like `ipv6_find_hdr(skb, .., -1,
//!   ..)` (what `ip6tables -p tcp` uses): HOPOPTS, ROUTING, FRAGMENT, AUTH, DSTOPTS, NONE.
//! * A port is read only when the whole transport header the xt match reads (TCP 20, UDP
//!   8, SCTP 12 bytes) lies inside the IP payload; otherwise only an any-port VIP can match.

use aya_ebpf::programs::TcContext;
use lvs_ebpf_common::{MacKey, PROTO_SCTP, PROTO_TCP, PROTO_UDP, VipKey, global};

use crate::counters;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;

const IPV6_HLEN: usize = 40;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_NONE: u8 = 59;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers walked before giving up (counted as malformed). ip6tables has no
/// limit; real traffic carries a handful at most.
pub const MAX_EXT_HDRS: usize = 32;

/// Bytes made linear with `bpf_skb_pull_data` when the skb head is shorter.
const PULL_LEN: usize = 256;
/// Upper bound for any header offset. The verifier only keeps a packet pointer's range
/// when its variable offset stays well below 64 KiB; no frame we parse is longer.
const MAX_OFF: usize = 0x3fff;

/// What the parser found.
pub enum Verdict {
    /// A TCP/UDP/SCTP packet that may belong to a VIP.
    Candidate(Packet),
    /// IP, but not TCP/UDP/SCTP (ICMP, ESP, ...): no VIP can match.
    OtherProtocol,
    NotIp,
    Malformed,
    /// Headers lie in paged skb data the program cannot read directly.
    Nonlinear,
}

pub struct Packet {
    /// Destination address, protocol and (if `has_port`) destination port.
    pub key: VipKey,
    pub has_port: bool,
    pub src_mac: MacKey,
}

/// Header bytes at `off`, if they are in the linear data.
#[inline(always)]
fn ptr_at<const N: usize>(ctx: &TcContext, off: usize) -> Option<&[u8; N]> {
    if off > MAX_OFF {
        return None;
    }
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + N > end {
        return None;
    }
    // SAFETY: bounds checked against data_end just above.
    Some(unsafe { &*((start + off) as *const [u8; N]) })
}

#[inline(always)]
fn be16(b0: u8, b1: u8) -> u16 {
    (u16::from(b0) << 8) | u16::from(b1)
}

/// Why reading `N` bytes at `off` failed: past `limit` (the packet really is that short)
/// or only past the linear head.
#[inline(always)]
fn short_or_nonlinear(off: usize, n: usize, limit: usize) -> Verdict {
    if off + n > limit {
        Verdict::Malformed
    } else {
        Verdict::Nonlinear
    }
}

#[inline(always)]
fn ensure_linear(ctx: &TcContext) {
    let len = ctx.len() as usize;
    let linear = ctx.data_end() - ctx.data();
    if linear < len && linear < PULL_LEN {
        let want = if len < PULL_LEN { len } else { PULL_LEN };
        if ctx.pull_data(want as u32).is_err() {
            counters::global_inc(global::INTERNAL);
        }
    }
}

#[inline(always)]
pub fn parse(ctx: &TcContext) -> Verdict {
    ensure_linear(ctx);
    let len = ctx.len() as usize;
    let Some(eth) = ptr_at::<ETH_HLEN>(ctx, 0) else {
        return Verdict::NotIp;
    };
    let src_mac = MacKey::new([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]]);
    let mut proto = be16(eth[12], eth[13]);
    let mut l3 = ETH_HLEN;
    // At most two in-band tags (802.1ad outer + 802.1Q inner, or 802.1Q). On a real
    // device the kernel has already moved the outer tag to skb->vlan_tci by now.
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let Some(tag) = ptr_at::<VLAN_HLEN>(ctx, l3) else {
            return Verdict::NotIp;
        };
        proto = be16(tag[2], tag[3]);
        l3 += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, l3, len, src_mac),
        ETH_P_IPV6 => parse_ipv6(ctx, l3, len, src_mac),
        _ => Verdict::NotIp,
    }
}

/// Bytes of transport header the xt match reads before it looks at the port.
#[inline(always)]
fn l4_header_len(proto: u8) -> Option<usize> {
    match proto {
        PROTO_TCP => Some(20),
        PROTO_UDP => Some(8),
        PROTO_SCTP => Some(12),
        _ => None,
    }
}

/// Reads the destination port when the packet carries one (first fragment, whole
/// transport header inside the IP payload).
#[inline(always)]
fn finish(
    ctx: &TcContext,
    mut key: VipKey,
    l4: usize,
    l3_end: usize,
    fragment: bool,
    src_mac: MacKey,
) -> Verdict {
    let Some(hlen) = l4_header_len(key.proto) else {
        return Verdict::OtherProtocol;
    };
    let mut has_port = false;
    if fragment {
        counters::global_inc(global::FRAGMENT);
    } else if l4 + hlen > l3_end {
        counters::global_inc(global::L4_TRUNCATED);
    } else {
        // Source and destination port are the first four bytes of all three headers.
        let Some(ports) = ptr_at::<4>(ctx, l4) else {
            return Verdict::Nonlinear;
        };
        key.port = be16(ports[2], ports[3]);
        has_port = true;
    }
    Verdict::Candidate(Packet {
        key,
        has_port,
        src_mac,
    })
}

#[inline(always)]
fn parse_ipv4(ctx: &TcContext, l3: usize, len: usize, src_mac: MacKey) -> Verdict {
    let Some(ip) = ptr_at::<20>(ctx, l3) else {
        return short_or_nonlinear(l3, 20, len);
    };
    let version = ip[0] >> 4;
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    if version != 4 || hlen < 20 {
        return Verdict::Malformed;
    }
    let tot_len = usize::from(be16(ip[2], ip[3]));
    // ip_rcv drops these before netfilter ever sees them.
    if tot_len < hlen || l3 + tot_len > len {
        return Verdict::Malformed;
    }
    let fragment = be16(ip[6], ip[7]) & 0x1fff != 0;
    let key = VipKey::v4([ip[16], ip[17], ip[18], ip[19]], 0, ip[9]);
    finish(ctx, key, l3 + hlen, l3 + tot_len, fragment, src_mac)
}

#[inline(always)]
fn is_ext_hdr(nexthdr: u8) -> bool {
    matches!(
        nexthdr,
        NEXTHDR_HOP
            | NEXTHDR_ROUTING
            | NEXTHDR_FRAGMENT
            | NEXTHDR_AUTH
            | NEXTHDR_NONE
            | NEXTHDR_DEST
    )
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext, l3: usize, len: usize, src_mac: MacKey) -> Verdict {
    let Some(ip) = ptr_at::<IPV6_HLEN>(ctx, l3) else {
        return short_or_nonlinear(l3, IPV6_HLEN, len);
    };
    if ip[0] >> 4 != 6 {
        return Verdict::Malformed;
    }
    let payload_len = usize::from(be16(ip[4], ip[5]));
    let mut nexthdr = ip[6];
    let mut daddr = [0u8; 16];
    daddr.copy_from_slice(&ip[24..40]);
    // payload_len 0 with a hop-by-hop header is a jumbogram: its length is the skb's.
    let l3_end = if payload_len == 0 && nexthdr == NEXTHDR_HOP {
        len
    } else {
        l3 + IPV6_HLEN + payload_len
    };
    if l3_end > len {
        return Verdict::Malformed;
    }
    let mut start = l3 + IPV6_HLEN;
    let mut fragment = false;
    // ipv6_find_hdr(skb, &off, -1, &fragoff, NULL)
    for _ in 0..MAX_EXT_HDRS {
        if !is_ext_hdr(nexthdr) || nexthdr == NEXTHDR_NONE {
            break;
        }
        if start + 2 > l3_end {
            return Verdict::Malformed; // -EBADMSG
        }
        let Some(hp) = ptr_at::<2>(ctx, start) else {
            return Verdict::Nonlinear;
        };
        let (hp_next, hp_len) = (hp[0], usize::from(hp[1]));
        let hdrlen = match nexthdr {
            NEXTHDR_ROUTING => {
                if start + 4 > l3_end {
                    return Verdict::Malformed;
                }
                (hp_len + 1) << 3
            }
            NEXTHDR_FRAGMENT => {
                if start + 4 > l3_end {
                    return Verdict::Malformed;
                }
                let Some(fh) = ptr_at::<4>(ctx, start) else {
                    return Verdict::Nonlinear;
                };
                let frag_off = be16(fh[2], fh[3]) & !0x7;
                if frag_off != 0 {
                    if !is_ext_hdr(hp_next) || hp_next == NEXTHDR_NONE {
                        // Non-first fragment of an upper-layer protocol.
                        nexthdr = hp_next;
                        fragment = true;
                        break;
                    }
                    return Verdict::Malformed; // -ENOENT, ip6tables hot-drops it
                }
                8
            }
            NEXTHDR_AUTH => (hp_len + 2) << 2,
            _ => (hp_len + 1) << 3,
        };
        nexthdr = hp_next;
        start += hdrlen;
    }
    // The chain may end exactly after MAX_EXT_HDRS headers.
    if is_ext_hdr(nexthdr) && nexthdr != NEXTHDR_NONE {
        return Verdict::Malformed;
    }
    let key = VipKey::v6(daddr, 0, nexthdr);
    finish(ctx, key, start, l3_end, fragment, src_mac)
}

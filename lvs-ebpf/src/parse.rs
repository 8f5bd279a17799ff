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
//!
//! Two ways to read the headers, one parser: direct packet access to the linear data
//! ([`Pkt::direct`]), and, for a packet whose headers lie past it (GRO'd, header-split or
//! large packets), a copy of each header onto the stack with `bpf_skb_load_bytes`
//! ([`Pkt::copied`]), which reads page fragments too and leaves the skb as it is (a
//! `bpf_skb_pull_data` would reallocate and copy its head, ~25 ns more per packet in the
//! whole path here).
//!
//! Fixed headers are read through `network-types`; the result is a few words in
//! registers (the key words of the VIP tables), never a struct in memory.

use core::mem::{offset_of, size_of};

use core::{cell::UnsafeCell, mem::MaybeUninit};

use aya_ebpf::{helpers::generated::bpf_skb_load_bytes, programs::TcContext};
use lvs_ebpf_common::{PROTO_SCTP, PROTO_TCP, PROTO_UDP, Reason, detail, v4_key, v6_tail};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    sctp::SctpHdr,
    tcp::TcpHdr,
    udp::UdpHdr,
    vlan::VlanHdr,
};

const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_NONE: u8 = 59;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers walked before giving up (counted as malformed). ip6tables has no
/// limit; real traffic carries a handful at most.
pub const MAX_EXT_HDRS: usize = 32;

/// Upper bound for any header offset. The verifier only keeps a packet pointer's range
/// when its variable offset stays well below 64 KiB; no frame we parse is longer.
const MAX_OFF: usize = 0x3fff;

/// The 48 bits of a MAC in a little-endian u64 load.
const MAC_MASK: u64 = 0xffff_ffff_ffff;

/// What the parser found, in four words: what the lookups need stays in registers
/// across the join of the two parser passes (before and after a pull).
#[derive(Clone, Copy)]
pub struct Parsed {
    /// IPv4: [`v4_key`] with the destination port (0 when there is none); IPv6: the
    /// destination address's first word.
    pub k0: u64,
    /// IPv6: the destination address's second word.
    pub k1: u64,
    /// Bits 0..32: IPv6 [`v6_tail`]; 32..40: `no_port` (0, [`detail::FRAGMENT`] or
    /// [`detail::L4_TRUNCATED`]); 40..48: [`Kind`].
    pub meta: u64,
    /// Source MAC as [`lvs_ebpf_common::mac_word`].
    pub mac: u64,
}

/// What kind of packet [`Parsed`] describes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    V4,
    V6,
    /// No VIP can match, for this reason (never `Marked`/`Peer`).
    Done(Reason),
}

const KIND_V4: u64 = 0;
const KIND_V6: u64 = 1;
const KIND_DONE: u64 = 2;

impl Parsed {
    #[inline(always)]
    fn done(reason: Reason) -> Self {
        Self {
            k0: 0,
            k1: 0,
            meta: (KIND_DONE + reason as u64) << 40,
            mac: 0,
        }
    }

    #[inline(always)]
    fn v4(key: u64, no_port: u32, mac: u64) -> Self {
        Self {
            k0: key,
            k1: 0,
            meta: u64::from(no_port) << 32 | KIND_V4 << 40,
            mac,
        }
    }

    #[inline(always)]
    fn v6(w0: u64, w1: u64, tail: u32, no_port: u32, mac: u64) -> Self {
        Self {
            k0: w0,
            k1: w1,
            meta: u64::from(tail) | u64::from(no_port) << 32 | KIND_V6 << 40,
            mac,
        }
    }

    #[inline(always)]
    pub fn kind(&self) -> Kind {
        match self.meta >> 40 {
            KIND_V4 => Kind::V4,
            KIND_V6 => Kind::V6,
            k => Kind::Done(match (k - KIND_DONE) as u32 {
                x if x == Reason::Fragment as u32 => Reason::Fragment,
                x if x == Reason::L4Truncated as u32 => Reason::L4Truncated,
                x if x == Reason::OtherProtocol as u32 => Reason::OtherProtocol,
                x if x == Reason::NotIp as u32 => Reason::NotIp,
                x if x == Reason::Malformed as u32 => Reason::Malformed,
                x if x == Reason::Nonlinear as u32 => Reason::Nonlinear,
                _ => Reason::NoVip,
            }),
        }
    }

    #[inline(always)]
    pub fn no_port(&self) -> u32 {
        (self.meta >> 32) as u32 & 0xff
    }

    #[inline(always)]
    pub fn tail(&self) -> u32 {
        self.meta as u32
    }
}

/// Room for the largest header the parser reads at once (the fixed IPv6 header).
#[repr(C, align(8))]
struct Scratch([u8; 40]);

/// The packet being parsed, read directly (`COPY = false`) or through stack copies of its
/// headers (`COPY = true`).
pub struct Pkt<'a, const COPY: bool> {
    ctx: &'a TcContext,
    /// Where `COPY` puts the header just read (each read replaces the previous one: the
    /// parser takes what it needs of a header into registers before it reads the next).
    scratch: UnsafeCell<MaybeUninit<Scratch>>,
}

impl<'a> Pkt<'a, false> {
    /// The headers in the linear data, read in place.
    #[inline(always)]
    pub fn direct(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            scratch: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

impl<'a> Pkt<'a, true> {
    /// The headers wherever they lie in the packet (linear data or page fragments), each
    /// copied onto the stack.
    #[inline(always)]
    pub fn copied(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            scratch: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

impl<const COPY: bool> Pkt<'_, COPY> {
    /// `skb->data` and `skb->data_end`.
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        (self.ctx.data(), self.ctx.data_end())
    }

    /// A header of type `T` at `off` (known to be `<= MAX_OFF`) if it can be read: in the
    /// linear data (direct), or anywhere in the packet (copied).
    #[inline(always)]
    fn within<T>(&self, off: usize) -> Option<*const T> {
        const { assert!(size_of::<T>() <= size_of::<Scratch>()) };
        if COPY {
            let dst = self.scratch.get() as *mut u8;
            // SAFETY: `dst` has room for `size_of::<T>()` bytes; the helper fails (and
            // writes nothing we read) when they are not all in the packet.
            let rc = unsafe {
                bpf_skb_load_bytes(
                    self.ctx.skb.skb as *const _,
                    off as u32,
                    dst as *mut _,
                    size_of::<T>() as u32,
                )
            };
            return (rc == 0).then_some(dst as *const T);
        }
        let (start, end) = self.linear();
        if start + off + size_of::<T>() > end {
            return None;
        }
        Some((start + off) as *const T)
    }

    /// A header of type `T` at `off`, if it can be read ([`Self::within`]).
    #[inline(always)]
    fn ptr_at<T>(&self, off: usize) -> Option<*const T> {
        if off > MAX_OFF {
            return None;
        }
        self.within(off)
    }

    /// [`Self::ptr_at`] for an offset an extension-header walk computed. The offset the
    /// pointer is made from is bounded by construction: an `& MAX_OFF` written as inline
    /// asm, which LLVM cannot drop (it is a no-op once `off <= MAX_OFF` is checked). LLVM
    /// may check `off` on one register and add a copy filled from the stack, and Linux
    /// 5.10's verifier carries no bound from a register to its copies (that came in 5.11),
    /// so it would reject the load. (An empty asm barrier is no help: 5.10 rejects the
    /// two line-info records at one instruction it leaves.)
    #[inline(always)]
    fn ptr_at_walked<T>(&self, off: usize) -> Option<*const T> {
        if off > MAX_OFF {
            return None;
        }
        const _: () = assert!(MAX_OFF == 0x3fff);
        let mut o = off;
        // SAFETY: one ALU instruction on a register: no memory access.
        unsafe {
            core::arch::asm!("{0} &= 0x3fff", inout(reg) o, options(pure, nomem, nostack, preserves_flags));
        }
        self.within(o)
    }
}

/// A word at `p`. Packet data has no alignment guarantee; BPF loads of any size work at
/// any address on every architecture the verifier lets us load on (x86-64, arm64 have
/// efficient unaligned access), and this keeps LLVM from splitting the load into bytes.
#[inline(always)]
unsafe fn load<T: Copy>(p: *const u8) -> T {
    // SAFETY: the caller has bounds-checked `p .. p + size_of::<T>()` against data_end, or
    // `p` points at the header's copy.
    unsafe { (p as *const T).read_volatile() }
}

/// Why reading `n` bytes at `off` failed: past `limit` (the packet really is that short:
/// malformed), or only past the linear data (non-linear: the decision core parses again
/// with copied headers) or past `MAX_OFF`.
#[inline(always)]
fn short_or_nonlinear(off: usize, n: usize, limit: usize) -> Parsed {
    if off + n > limit {
        Parsed::done(Reason::Malformed)
    } else {
        Parsed::done(Reason::Nonlinear)
    }
}

/// Why the Ethernet header or a VLAN tag could not be read: the frame is that short (not
/// IP), or it lies past the linear data (non-linear: parse again with copied headers).
#[inline(always)]
fn short_or_not_ip(off: usize, n: usize, len: usize) -> Parsed {
    if off + n > len {
        Parsed::done(Reason::NotIp)
    } else {
        Parsed::done(Reason::Nonlinear)
    }
}

#[inline(always)]
pub fn parse<const COPY: bool>(p: &Pkt<COPY>) -> Parsed {
    // The source MAC and the EtherType are the last 8 bytes of the Ethernet header: one
    // load gives both. Read as an 8-byte header of its own, so that its copy starts
    // word-aligned on the stack (the verifier refuses a misaligned stack load).
    let len = p.ctx.len() as usize;
    const TAIL: usize = offset_of!(EthHdr, src_addr);
    const _: () = assert!(TAIL + size_of::<u64>() == EthHdr::LEN);
    let Some(tail) = p.ptr_at::<u64>(TAIL) else {
        return short_or_not_ip(0, EthHdr::LEN, len);
    };
    // SAFETY: the last 8 bytes of the Ethernet header, bounds-checked or copied.
    let tail: u64 = unsafe { load(tail as *const u8) };
    let mac = tail & MAC_MASK;
    let mut proto = (tail >> 48) as u16;
    let mut l3 = EthHdr::LEN;
    // At most two in-band tags (802.1ad outer + 802.1Q inner, or 802.1Q). On a real
    // device the kernel has already moved the outer tag to skb->vlan_tci by now.
    for _ in 0..2 {
        if proto != EtherType::Ieee8021q as u16 && proto != EtherType::Ieee8021ad as u16 {
            break;
        }
        let Some(tag) = p.ptr_at::<VlanHdr>(l3) else {
            return short_or_not_ip(l3, VlanHdr::LEN, len);
        };
        // SAFETY: bounds-checked just above.
        proto = unsafe { (*tag).ether_type };
        l3 += VlanHdr::LEN;
    }
    if proto == EtherType::Ipv4 as u16 {
        parse_ipv4(p, l3, mac)
    } else if proto == EtherType::Ipv6 as u16 {
        parse_ipv6(p, l3, mac)
    } else {
        Parsed::done(Reason::NotIp)
    }
}

/// Bytes of transport header the xt match reads before it looks at the port.
#[inline(always)]
fn l4_header_len(proto: u8) -> Option<usize> {
    match proto {
        PROTO_TCP => Some(TcpHdr::LEN),
        PROTO_UDP => Some(UdpHdr::LEN),
        PROTO_SCTP => Some(SctpHdr::LEN),
        _ => None,
    }
}

/// The destination port when the packet carries one (first fragment, whole transport
/// header inside the IP payload): `Ok((port, no_port))`, `Err` when parsing ends here.
#[inline(always)]
fn dport<const COPY: bool, const WALKED: bool>(
    p: &Pkt<COPY>,
    proto: u8,
    l4: usize,
    l3_end: usize,
    fragment: bool,
) -> Result<(u16, u32), Parsed> {
    let Some(hlen) = l4_header_len(proto) else {
        return Err(Parsed::done(Reason::OtherProtocol));
    };
    if fragment {
        return Ok((0, detail::FRAGMENT));
    }
    if l4 + hlen > l3_end {
        return Ok((0, detail::L4_TRUNCATED));
    }
    // The destination port is bytes 2..4 of all three headers.
    const _: () = assert!(offset_of!(TcpHdr, dest) == 2);
    const _: () = assert!(offset_of!(UdpHdr, dst) == 2);
    const _: () = assert!(offset_of!(SctpHdr, dst) == 2);
    let ports = if WALKED {
        p.ptr_at_walked::<[u16; 2]>(l4)
    } else {
        p.ptr_at::<[u16; 2]>(l4)
    };
    let Some(ports) = ports else {
        return Err(Parsed::done(Reason::Nonlinear));
    };
    // SAFETY: bounds-checked just above.
    let port = u16::from_be(unsafe { load::<u16>((ports as *const u8).add(2)) });
    Ok((port, 0))
}

#[inline(always)]
fn parse_ipv4<const COPY: bool>(p: &Pkt<COPY>, l3: usize, mac: u64) -> Parsed {
    let len = p.ctx.len() as usize;
    let Some(ip) = p.ptr_at::<Ipv4Hdr>(l3) else {
        return short_or_nonlinear(l3, Ipv4Hdr::LEN, len);
    };
    // SAFETY: the fixed IPv4 header is in the linear data.
    let ip = unsafe { &*ip };
    let hlen = usize::from(ip.ihl());
    if ip.version() != 4 || hlen < Ipv4Hdr::LEN {
        return Parsed::done(Reason::Malformed);
    }
    let base = ip as *const Ipv4Hdr as *const u8;
    // SAFETY (both): inside the fixed header. One 16-bit load each (network-types'
    // getters read bytes).
    let tot_len = usize::from(u16::from_be(unsafe {
        load::<u16>(base.add(offset_of!(Ipv4Hdr, tot_len)))
    }));
    // ip_rcv drops these before netfilter ever sees them.
    if tot_len < hlen || l3 + tot_len > len {
        return Parsed::done(Reason::Malformed);
    }
    let frags = u16::from_be(unsafe { load::<u16>(base.add(offset_of!(Ipv4Hdr, frags))) });
    let fragment = frags & 0x1fff != 0;
    let proto = ip.proto as u8;
    // SAFETY: inside the fixed header.
    let daddr: u32 = unsafe { load(base.add(offset_of!(Ipv4Hdr, dst_addr))) };
    match dport::<COPY, false>(p, proto, l3 + hlen, l3 + tot_len, fragment) {
        Ok((port, no_port)) => Parsed::v4(v4_key(daddr, port, proto), no_port, mac),
        Err(p) => p,
    }
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
fn parse_ipv6<const COPY: bool>(p: &Pkt<COPY>, l3: usize, mac: u64) -> Parsed {
    let len = p.ctx.len() as usize;
    let Some(ip) = p.ptr_at::<Ipv6Hdr>(l3) else {
        return short_or_nonlinear(l3, Ipv6Hdr::LEN, len);
    };
    let base = ip as *const u8;
    // SAFETY (all): inside the fixed IPv6 header, which is in the linear data. One load
    // per field (network-types' getters read bytes).
    let first: u8 = unsafe { load(base) };
    if first >> 4 != 6 {
        return Parsed::done(Reason::Malformed);
    }
    let payload_len = usize::from(u16::from_be(unsafe {
        load::<u16>(base.add(offset_of!(Ipv6Hdr, payload_len)))
    }));
    let mut nexthdr: u8 = unsafe { load(base.add(offset_of!(Ipv6Hdr, next_hdr))) };
    let daddr = base.wrapping_add(offset_of!(Ipv6Hdr, dst_addr));
    let (w0, w1): (u64, u64) = unsafe { (load(daddr), load(daddr.add(8))) };
    // payload_len 0 with a hop-by-hop header is a jumbogram: its length is the skb's.
    let l3_end = if payload_len == 0 && nexthdr == NEXTHDR_HOP {
        len
    } else {
        l3 + Ipv6Hdr::LEN + payload_len
    };
    if l3_end > len {
        return Parsed::done(Reason::Malformed);
    }
    let start = l3 + Ipv6Hdr::LEN;
    // The common case, the transport header right after the fixed header, skips the
    // walk: TCP, UDP and SCTP are no extension headers, so the walk would stop at once.
    // Its own `dport` call: the walk's reads its header through `ptr_at_walked`.
    if l4_header_len(nexthdr).is_some() {
        return v6_parsed(
            dport::<COPY, false>(p, nexthdr, start, l3_end, false),
            w0,
            w1,
            nexthdr,
            mac,
        );
    }
    let mut start = start;
    let mut fragment = false;
    // ipv6_find_hdr(skb, &off, -1, &fragoff, NULL)
    for _ in 0..MAX_EXT_HDRS {
        if !is_ext_hdr(nexthdr) || nexthdr == NEXTHDR_NONE {
            break;
        }
        if start + 2 > l3_end {
            return Parsed::done(Reason::Malformed); // -EBADMSG
        }
        let Some(hp) = p.ptr_at::<[u8; 2]>(start) else {
            return Parsed::done(Reason::Nonlinear);
        };
        // SAFETY: bounds-checked just above.
        let [hp_next, hp_len] = unsafe { *hp };
        let hp_len = usize::from(hp_len);
        let hdrlen = match nexthdr {
            NEXTHDR_ROUTING => {
                if start + 4 > l3_end {
                    return Parsed::done(Reason::Malformed);
                }
                (hp_len + 1) << 3
            }
            NEXTHDR_FRAGMENT => {
                if start + 4 > l3_end {
                    return Parsed::done(Reason::Malformed);
                }
                let Some(fh) = p.ptr_at::<[u8; 4]>(start) else {
                    return Parsed::done(Reason::Nonlinear);
                };
                // SAFETY: bounds-checked just above.
                let fh = unsafe { *fh };
                let frag_off = u16::from_be_bytes([fh[2], fh[3]]) & !0x7;
                if frag_off != 0 {
                    if !is_ext_hdr(hp_next) || hp_next == NEXTHDR_NONE {
                        // Non-first fragment of an upper-layer protocol.
                        nexthdr = hp_next;
                        fragment = true;
                        break;
                    }
                    return Parsed::done(Reason::Malformed); // -ENOENT, ip6tables hot-drops it
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
        return Parsed::done(Reason::Malformed);
    }
    v6_parsed(
        dport::<COPY, true>(p, nexthdr, start, l3_end, fragment),
        w0,
        w1,
        nexthdr,
        mac,
    )
}

/// The IPv6 result from the destination and the transport header's `dport` outcome.
#[inline(always)]
fn v6_parsed(l4: Result<(u16, u32), Parsed>, w0: u64, w1: u64, proto: u8, mac: u64) -> Parsed {
    match l4 {
        Ok((port, no_port)) => Parsed::v6(w0, w1, v6_tail(port, proto), no_port, mac),
        Err(p) => p,
    }
}

//! The decision core shared by the attached program and its explaining twin: parse,
//! find the VIP in the live generation, check the source MAC against the peers, mark
//! and count.
//!
//! The mark is written as the kernel's xt_MARK target writes it (`mark_tg`):
//! `skb->mark = (skb->mark & keep) ^ mark`, `keep = !mark_mask` loaded with the VIP
//! (full mask: `keep = 0`, the mark is set whole). Every packet is counted once, and
//! that one count also says whether it arrived with `skb->mark != 0`.
//!
//! Generic over the VIP lookup ([`Backend`]: the call-free table of `lookup.rs`, or the
//! kernel hash maps of the `htab` benchmark variant) and over counting (`COUNT`): the
//! explain program runs exactly this code with `COUNT = false`.

use aya_ebpf::programs::TcContext;
use lvs_ebpf_common::{Control, GenControl, KeepLine, Reason, detail, global};

use crate::{
    counters,
    maps::LVS_CONTROL,
    parse::{self, Kind, Pkt},
};

/// A VIP entry that matched.
#[derive(Clone, Copy)]
pub struct Hit {
    pub mark: u32,
    /// `!mark_mask`: the bits of `skb->mark` the VIP leaves alone.
    pub keep: u32,
    /// Counter slot.
    pub slot: u32,
    /// Found through the any-port entry.
    pub any_port: bool,
}

/// Where the VIPs and peers of generation `g` (described by `gc`) are looked up.
pub trait Backend {
    /// `key` as [`lvs_ebpf_common::v4_key`]; `has_port`: the key carries the packet's
    /// destination port (otherwise its port is 0 and only an any-port VIP can match).
    /// `keep`: the generation's mask classes.
    fn find_v4<const COUNT: bool>(
        gc: &GenControl,
        keep: &KeepLine,
        g: u32,
        key: u64,
        has_port: bool,
    ) -> Option<Hit>;
    /// Address words `w0`, `w1` and `tail` as [`lvs_ebpf_common::v6_tail`].
    fn find_v6<const COUNT: bool>(
        gc: &GenControl,
        keep: &KeepLine,
        g: u32,
        w0: u64,
        w1: u64,
        tail: u32,
        has_port: bool,
    ) -> Option<Hit>;
    /// Whether `mac` ([`lvs_ebpf_common::mac_word`]) is a peer director's.
    fn is_peer(gc: &GenControl, g: u32, mac: u64) -> bool;
}

/// What the core decided (the explain program returns it; the main program only marks).
#[derive(Clone, Copy)]
#[allow(dead_code)] // the explain program reads them; the htab variant has none
pub struct Decision {
    pub reason: Reason,
    /// The VIP's mark when a VIP matched (set on the skb when `reason` is `Marked`).
    pub mark: u32,
    /// The VIP's counter slot when a VIP matched, else `u32::MAX`.
    pub slot: u32,
    /// [`detail`] bits (with [`detail::GENERATION_1`] when generation 1 decided).
    pub detail: u32,
    /// The control value when the decision read it (IP packets), else null: the trace
    /// switch is read from it without a second lookup.
    pub control: *mut Control,
}

/// `skb->mark` as the packet arrived (nothing before us in this program writes it).
/// Read once, before the parser: its load then overlaps the parse instead of sitting
/// on the way to the counter update at the end (a miss measured ~1 ns faster).
#[inline(always)]
fn mark_in(ctx: &TcContext) -> u32 {
    // SAFETY: the context's skb pointer is valid for the whole run.
    unsafe { (*ctx.skb.skb).mark }
}

#[inline(always)]
fn done<const COUNT: bool>(
    old: u32,
    reason: Reason,
    detail: u32,
    control: *mut Control,
) -> Decision {
    if COUNT {
        counters::global_count(reason as usize, old != 0);
    }
    Decision {
        reason,
        mark: 0,
        slot: u32::MAX,
        detail,
        control,
    }
}

/// The control value, the live generation's control line, mask classes and number.
#[inline(always)]
fn live_generation<const COUNT: bool>()
-> Option<(*mut Control, &'static GenControl, &'static KeepLine, u32)> {
    let Some(control) = LVS_CONTROL.get_ptr_mut(0) else {
        // Slot 0 of a one-entry array: cannot fail.
        if COUNT {
            counters::global_inc(global::INTERNAL);
        }
        return None;
    };
    // SAFETY: a value of the array, which lives as long as the program.
    let c = unsafe { &*control };
    let g = c.lines[0].active & 1;
    Some((
        control,
        &c.lines[g as usize].generation,
        &c.keep[g as usize],
        g,
    ))
}

#[inline(always)]
pub fn decide<const COUNT: bool, B: Backend>(ctx: &TcContext) -> Decision {
    // Parse the linear data in place.
    let old = mark_in(ctx);
    let mut parsed = parse::parse(&Pkt::direct(ctx));
    // A header lies past the linear data (but inside the packet: otherwise the parser
    // says malformed/not IP): parse once more, copying each header out of the packet
    // (page fragments included) instead of pulling it into the linear data. One join
    // after the two parses: the verifier walks the rest once per parse.
    if parsed.kind() == Kind::Done(Reason::Nonlinear) {
        parsed = parse::parse(&Pkt::copied(ctx));
    }
    // Not reported by the explain program: carrying it would double what the verifier
    // explores after the parser, and test runs hand over linear frames anyway.
    let pulled = 0;

    let no_port = parsed.no_port();
    let (hit, family, control) = match parsed.kind() {
        Kind::V4 => {
            let Some((control, gc, kl, g)) = live_generation::<COUNT>() else {
                return done::<COUNT>(old, Reason::NoVip, pulled, core::ptr::null_mut());
            };
            let hit = B::find_v4::<COUNT>(gc, kl, g, parsed.k0, no_port == 0);
            let peer = hit.map(|_| B::is_peer(gc, g, parsed.mac));
            (hit.zip(peer), g, control)
        }
        Kind::V6 => {
            let Some((control, gc, kl, g)) = live_generation::<COUNT>() else {
                return done::<COUNT>(old, Reason::NoVip, pulled, core::ptr::null_mut());
            };
            let tail = parsed.tail();
            let hit = B::find_v6::<COUNT>(gc, kl, g, parsed.k0, parsed.k1, tail, no_port == 0);
            let peer = hit.map(|_| B::is_peer(gc, g, parsed.mac));
            (hit.zip(peer), detail::IPV6 | g, control)
        }
        Kind::Done(reason) => return done::<COUNT>(old, reason, pulled, core::ptr::null_mut()),
    };
    let detail = no_port | family | pulled;
    let Some((hit, peer)) = hit else {
        let reason = match no_port {
            detail::FRAGMENT => Reason::Fragment,
            detail::L4_TRUNCATED => Reason::L4Truncated,
            _ => Reason::NoVip,
        };
        return done::<COUNT>(old, reason, detail, control);
    };
    let detail = detail | if hit.any_port { detail::ANY_PORT } else { 0 };
    if COUNT {
        counters::vip_packet(hit.slot, peer, u64::from(ctx.len()), old != 0);
        match no_port {
            detail::FRAGMENT => counters::global_inc(global::HIT_FRAGMENT),
            detail::L4_TRUNCATED => counters::global_inc(global::HIT_L4_TRUNCATED),
            _ => {}
        }
    }
    let reason = if peer {
        Reason::Peer
    } else {
        // xt_MARK: (mark & ~mask) ^ value.
        ctx.set_mark((old & hit.keep) ^ hit.mark);
        Reason::Marked
    };
    Decision {
        reason,
        mark: hit.mark,
        slot: hit.slot,
        detail,
        control,
    }
}

//! `lvs-loader trace`: per-packet decisions of the attached program, for the packets a
//! filter selects, through a ring buffer.
//!
//! Off (the control line's `trace` word is 0, the default) the cost is one load and one
//! branch: IP packets read the switch from the control value the decision already
//! looked up; frames that are not IP are not traced (never marked; `explain` covers
//! them) and pay nothing. On, each packet: the lease is
//! checked (expired: the program switches tracing off itself, so a `kill -9`ed trace
//! leaves nothing running), the first bytes of the frame (up to [`TRACE_HEADER_BYTES`],
//! in a few constant lengths) are copied into
//! a reserved ring-buffer record, the filter (source MAC, destination address and port)
//! is applied to them, then a per-CPU token bucket; the record is submitted or
//! discarded.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
    programs::TcContext,
};
use lvs_ebpf_common::{
    Reason, TRACE_HEADER_BYTES, TRACE_MAC, TRACE_PORT, TRACE_RING_BYTES, TRACE_V4, TRACE_V6,
    TraceBucket, TraceEvent, TraceFilter, detail,
};

use crate::{decide::Decision, maps::LVS_CONTROL};

#[map]
pub static LVS_TRACE: Array<TraceFilter> = Array::with_max_entries(1, 0);
#[map]
pub static LVS_TRACE_RL: PerCpuArray<TraceBucket> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static LVS_TRACE_EV: RingBuf = RingBuf::with_byte_size(TRACE_RING_BYTES, 0);

const H: usize = TRACE_HEADER_BYTES;

/// Emits `d` for this packet when tracing is on and the packet passes the filter.
#[inline(always)]
pub fn maybe_emit(ctx: &TcContext, d: &crate::decide::Decision) {
    let c = if !d.control.is_null() {
        // An IP packet: the decision read the control value already.
        d.control
    } else if d.reason == Reason::NotIp {
        // Not traced: never marked, and the common frame on a busy segment (ARP, LLDP);
        // `explain` answers for them. Keeps their cost at one counter update.
        return;
    } else {
        // A packet the parser gave up on (malformed, cut short): rare, look it up.
        match LVS_CONTROL.get_ptr_mut(0) {
            Some(c) => c,
            None => return,
        }
    };
    // SAFETY: the array's value lives as long as the program.
    let trace = unsafe { core::ptr::addr_of!((*c).lines[0].trace).read_volatile() };
    if trace == 0 {
        return;
    }
    emit(ctx, d, c);
}

#[inline(always)]
fn byte(h: &[u8; H], i: usize) -> u8 {
    if i < H { h[i] } else { 0 }
}

#[inline(always)]
fn be16(h: &[u8; H], i: usize) -> u16 {
    u16::from(byte(h, i)) << 8 | u16::from(byte(h, i + 1))
}

/// Whether the copied headers `h` (`n` bytes valid) pass `f`. What cannot be read here
/// (a port behind IP options or IPv6 extension headers, a fragment) passes: lvs-loader
/// applies the filter again to the decoded headers.
#[inline(always)]
fn passes(f: &TraceFilter, h: &[u8; H], n: usize) -> bool {
    if f.flags & TRACE_MAC != 0 {
        let mut m = 0u64;
        for i in 0..6 {
            m |= u64::from(byte(h, 6 + i)) << (8 * i);
        }
        if m != f.mac {
            return false;
        }
    }
    if f.flags & (TRACE_V4 | TRACE_V6) == 0 {
        return true;
    }
    let mut et = be16(h, 12);
    let mut l3 = 14;
    for _ in 0..2 {
        if et != 0x8100 && et != 0x88a8 {
            break;
        }
        et = be16(h, l3 + 2);
        l3 += 4;
    }
    let (plen, l4, proto, fragment) = if f.flags & TRACE_V4 != 0 {
        if et != 0x0800 {
            return false;
        }
        for i in 0..4 {
            if byte(h, l3 + 16 + i) != f.addr[i] {
                return false;
            }
        }
        let ihl = usize::from(byte(h, l3) & 0xf) * 4;
        (4, l3 + ihl, byte(h, l3 + 9), be16(h, l3 + 6) & 0x1fff != 0)
    } else {
        if et != 0x86dd {
            return false;
        }
        for i in 0..16 {
            if byte(h, l3 + 24 + i) != f.addr[i] {
                return false;
            }
        }
        (16, l3 + 40, byte(h, l3 + 6), false)
    };
    let _ = plen;
    if f.flags & TRACE_PORT == 0 || fragment || !matches!(proto, 6 | 17 | 132) {
        return true;
    }
    if l4 + 4 > n {
        return true;
    }
    u32::from(be16(h, l4 + 2)) == f.port
}

/// Copies the first `N` bytes of the frame into `h`: `N`, or 0 if that failed.
#[inline(always)]
fn copy<const N: usize>(ctx: &TcContext, h: &mut [u8; H]) -> usize {
    const { assert!(N <= H) };
    match ctx.load_bytes(0, &mut h[..N]) {
        Ok(_) => N,
        Err(_) => 0,
    }
}

#[inline(always)]
fn emit(ctx: &TcContext, d: &Decision, c: *mut lvs_ebpf_common::Control) {
    let Some(f) = LVS_TRACE.get(0) else {
        return;
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now > f.expires_ns {
        // The lease is over (the trace exited or was killed): off until re-armed.
        // SAFETY: the array's value lives as long as the program.
        unsafe { core::ptr::addr_of_mut!((*c).lines[0].trace).write_volatile(0) };
        return;
    }
    let Some(mut entry) = LVS_TRACE_EV.reserve::<TraceEvent>(0) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let len = ctx.len() as usize;
    // SAFETY: `ev` is a reserved record of the right size; only its `headers` are read
    // before they are written (as far as `n`), the rest is written below.
    let h = unsafe { &mut (*ev).headers };
    // Constant lengths only: the 5.10 verifier loses the bounds of a variable one.
    let n = if len >= H {
        copy::<H>(ctx, h)
    } else if len >= 80 {
        copy::<80>(ctx, h)
    } else if len >= 74 {
        copy::<74>(ctx, h)
    } else if len >= 64 {
        copy::<64>(ctx, h)
    } else if len >= 60 {
        copy::<60>(ctx, h)
    } else if len >= 54 {
        copy::<54>(ctx, h)
    } else if len >= 42 {
        copy::<42>(ctx, h)
    } else if len >= 14 {
        copy::<14>(ctx, h)
    } else {
        0
    };
    if n == 0 || !passes(f, h, n) {
        entry.discard(0);
        return;
    }
    let Some(b) = LVS_TRACE_RL.get_ptr_mut(0) else {
        entry.discard(0);
        return;
    };
    // SAFETY: per-CPU value; the program is not re-entered on this CPU.
    let b = unsafe { &mut *b };
    let mut credit = b.credit_ns.saturating_add(now.saturating_sub(b.last_ns));
    if credit > f.burst_ns {
        credit = f.burst_ns;
    }
    b.last_ns = now;
    if credit < f.cost_ns {
        b.credit_ns = credit;
        b.suppressed += 1;
        entry.discard(0);
        return;
    }
    b.credit_ns = credit - f.cost_ns;
    // SAFETY: the reserved record.
    unsafe {
        (*ev).time_ns = now;
        (*ev).suppressed = b.suppressed;
        (*ev).reason = d.reason as u32;
        (*ev).mark = d.mark;
        (*ev).slot = d.slot;
        (*ev).detail = d.detail;
        (*ev).len = len as u32;
        (*ev).captured = n as u32;
        (*ev).stamp = if d.control.is_null() {
            0
        } else {
            (*c).stamp(d.detail & detail::GENERATION_1)
        };
        (*ev)._pad = 0;
    }
    b.suppressed = 0;
    entry.submit(0);
}

//! Per-CPU counters: no atomics needed, userspace sums over CPUs. A packet that hits a
//! VIP is counted once, in its VIP's slot; every other packet once, in the global
//! counter of its reason. Whether it arrived already marked (`skb->mark != 0`) is part
//! of that same update: a field of the VIP's record, or the upper half of the global
//! counters.

use lvs_ebpf_common::{GlobalCounters, global};

use crate::maps::{LVS_GLOBAL, LVS_VIP_STATS};

/// `count[index] += 1` in the global counters (`index` < `global::SLOTS`).
#[inline(always)]
pub fn global_inc(index: usize) {
    if let Some(c) = LVS_GLOBAL.get_ptr_mut(0) {
        let c: *mut GlobalCounters = c;
        if index < global::SLOTS {
            // SAFETY: per-CPU value, the program is not re-entered on this CPU; index
            // bounds-checked.
            unsafe { (*c).count[index] += 1 };
        }
    }
}

/// The one count of a packet that matched no VIP: `count[index]`, or
/// `count[SLOTS + index]` when it arrived with a mark (`index` < `global::SLOTS`).
#[inline(always)]
pub fn global_count(index: usize, already_marked: bool) {
    let index = if already_marked {
        index + global::SLOTS
    } else {
        index
    };
    if let Some(c) = LVS_GLOBAL.get_ptr_mut(0) {
        let c: *mut GlobalCounters = c;
        if index < 2 * global::SLOTS {
            // SAFETY: per-CPU value, the program is not re-entered on this CPU; index
            // bounds-checked.
            unsafe { (*c).count[index] += 1 };
        }
    }
}

/// One VIP packet: `marked` (or from a peer when `peer`), `bytes` long, arrived with a
/// non-zero mark when `already_marked`.
#[inline(always)]
pub fn vip_packet(slot: u32, peer: bool, bytes: u64, already_marked: bool) {
    match LVS_VIP_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        Some(c) => unsafe {
            if already_marked {
                (*c).already_marked += 1;
            }
            if peer {
                (*c).peer_packets += 1;
                (*c).peer_bytes += bytes;
            } else {
                (*c).marked_packets += 1;
                (*c).marked_bytes += bytes;
            }
        },
        // The loader hands out slots below the map's max_entries (its capacity, set at
        // load) only; the verifier-inlined bounds check uses the real size. Count the
        // impossible.
        None => global_inc(global::INTERNAL),
    }
}

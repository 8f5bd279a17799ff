//! Per-CPU counters: no atomics needed, userspace sums over CPUs. A packet that hits a
//! VIP is counted once, in its VIP's slot; every other packet once, in the global
//! counter of its reason.

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

/// One VIP packet: `marked` (or from a peer when false), `bytes` long.
#[inline(always)]
pub fn vip_packet(slot: u32, peer: bool, bytes: u64) {
    match LVS_VIP_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        Some(c) => unsafe {
            if peer {
                (*c).peer_packets += 1;
                (*c).peer_bytes += bytes;
            } else {
                (*c).marked_packets += 1;
                (*c).marked_bytes += bytes;
            }
        },
        // The loader hands out slots below VIP_STAT_SLOTS only; count the impossible.
        None => global_inc(global::INTERNAL),
    }
}

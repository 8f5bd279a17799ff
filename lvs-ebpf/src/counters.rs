//! Per-CPU counters: no atomics needed, userspace sums over CPUs.

use lvs_ebpf_common::{VipCounters, global};

use crate::maps::{LVS_GLOBAL, LVS_VIP_STATS};

#[inline(always)]
pub fn global_inc(index: u32) {
    if let Some(c) = LVS_GLOBAL.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, the program is not re-entered on this CPU.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn vip_counters(index: u32) -> Option<*mut VipCounters> {
    let c = LVS_VIP_STATS.get_ptr_mut(index);
    if c.is_none() {
        // The loader hands out indices below MAX_VIPS only; count the impossible.
        global_inc(global::INTERNAL);
    }
    c
}

#[inline(always)]
pub fn vip_marked(index: u32, bytes: u64) {
    global_inc(global::MARKED);
    if let Some(c) = vip_counters(index) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*c).marked_packets += 1;
            (*c).marked_bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn vip_peer(index: u32, bytes: u64) {
    global_inc(global::PEER);
    if let Some(c) = vip_counters(index) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*c).peer_packets += 1;
            (*c).peer_bytes += bytes;
        }
    }
}

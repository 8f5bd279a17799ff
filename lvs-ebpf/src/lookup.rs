//! VIP and peer lookups in the live generation, and the marking decision.

use aya_ebpf::{maps::HashMap, programs::TcContext};
use lvs_ebpf_common::{ANY_PORT, CONTROL_ACTIVE, MacKey, VipKey, VipValue, global};

use crate::{
    counters,
    maps::{LVS_CONTROL, LVS_PEERS_0, LVS_PEERS_1, LVS_VIPS_0, LVS_VIPS_1},
    parse::Packet,
};

#[inline(always)]
fn active_generation() -> u32 {
    match LVS_CONTROL.get_ptr(CONTROL_ACTIVE) {
        // SAFETY: array slot, always present.
        Some(v) => (unsafe { *v }) & 1,
        None => {
            counters::global_inc(global::INTERNAL);
            0
        }
    }
}

#[inline(always)]
fn lookup_vip(map: &HashMap<VipKey, VipValue>, key: &VipKey) -> Option<VipValue> {
    // SAFETY: the value is copied out immediately.
    map.get_ptr(key).map(|v| unsafe { *v })
}

/// Exact (address, port, protocol) first; the any-port entry of (address, protocol) when
/// there is no exact entry or the packet carries no readable port.
#[inline(always)]
fn find_vip(map: &HashMap<VipKey, VipValue>, pkt: &Packet) -> Option<VipValue> {
    let mut key = pkt.key;
    if pkt.has_port {
        if let Some(v) = lookup_vip(map, &key) {
            return Some(v);
        }
    }
    key.port = ANY_PORT;
    lookup_vip(map, &key)
}

#[inline(always)]
fn is_peer(map: &HashMap<MacKey, u32>, src: &MacKey) -> bool {
    map.get_ptr(src).is_some()
}

#[inline(always)]
pub fn mark_if_vip(ctx: &TcContext, pkt: &Packet) {
    let gen1 = active_generation() == 1;
    let vips = if gen1 { &LVS_VIPS_1 } else { &LVS_VIPS_0 };
    let Some(vip) = find_vip(vips, pkt) else {
        counters::global_inc(global::NO_VIP);
        return;
    };
    let peers = if gen1 { &LVS_PEERS_1 } else { &LVS_PEERS_0 };
    let bytes = u64::from(ctx.len());
    if is_peer(peers, &pkt.src_mac) {
        counters::vip_peer(vip.index, bytes);
    } else {
        ctx.set_mark(vip.mark);
        counters::vip_marked(vip.index, bytes);
    }
}

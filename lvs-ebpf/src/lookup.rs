//! VIP and peer lookups in the live generation, and the marking decision.

use aya_ebpf::{maps::HashMap, programs::TcContext};
use lvs_ebpf_common::{
    ANY_PORT, CONTROL_ACTIVE, CONTROL_ANY_PORT_COUNT, MacKey, VipKey, VipValue, global,
};

use crate::{
    counters,
    maps::{LVS_CONTROL, LVS_PEERS_0, LVS_PEERS_1, LVS_VIPS_0, LVS_VIPS_1},
    parse::Packet,
};

/// The live generation (0 or 1) and whether it holds any any-port VIP.
#[inline(always)]
fn live_generation() -> (u32, bool) {
    let Some(active) = LVS_CONTROL.get_ptr(CONTROL_ACTIVE) else {
        counters::global_inc(global::INTERNAL);
        return (0, true);
    };
    // SAFETY: array slot, always present.
    let generation = (unsafe { *active }) & 1;
    let any_port = match LVS_CONTROL.get_ptr(CONTROL_ANY_PORT_COUNT + generation) {
        // SAFETY: array slot, always present.
        Some(n) => (unsafe { *n }) != 0,
        None => {
            counters::global_inc(global::INTERNAL);
            true
        }
    };
    (generation, any_port)
}

#[inline(always)]
fn lookup_vip(map: &HashMap<VipKey, VipValue>, key: &VipKey) -> Option<VipValue> {
    // SAFETY: the value is copied out immediately.
    map.get_ptr(key).map(|v| unsafe { *v })
}

/// Exact (address, port, protocol) first; the any-port entry of (address, protocol) when
/// there is no exact entry or the packet carries no readable port (and the generation has
/// any-port VIPs at all, so a miss usually costs one lookup).
#[inline(always)]
fn find_vip(map: &HashMap<VipKey, VipValue>, pkt: &Packet, any_port: bool) -> Option<VipValue> {
    let mut key = pkt.key;
    if pkt.has_port {
        if let Some(v) = lookup_vip(map, &key) {
            return Some(v);
        }
    }
    if !any_port {
        return None;
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
    let (generation, any_port) = live_generation();
    // One branch per generation, each with constant map pointers: the verifier can then
    // inline the hash lookups instead of calling the generic helper.
    if generation == 1 {
        mark_in(ctx, pkt, any_port, &LVS_VIPS_1, &LVS_PEERS_1);
    } else {
        mark_in(ctx, pkt, any_port, &LVS_VIPS_0, &LVS_PEERS_0);
    }
}

#[inline(always)]
fn mark_in(
    ctx: &TcContext,
    pkt: &Packet,
    any_port: bool,
    vips: &HashMap<VipKey, VipValue>,
    peers: &HashMap<MacKey, u32>,
) {
    let Some(vip) = find_vip(vips, pkt, any_port) else {
        counters::global_inc(global::NO_VIP);
        return;
    };
    let bytes = u64::from(ctx.len());
    if is_peer(peers, &pkt.src_mac) {
        counters::vip_peer(vip.index, bytes);
    } else {
        ctx.set_mark(vip.mark);
        counters::vip_marked(vip.index, bytes);
    }
}

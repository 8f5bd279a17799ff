//! Every map of the program, explicitly named (the names are shared with the loader
//! through `lvs_ebpf_common::map_names`).
//!
//! VIPs and peers are double-buffered: `LVS_CONTROL[0]` says which generation (0 or 1) is
//! live. The loader fills the standby generation and flips the index in one map update,
//! so a reload is atomic for every packet.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use lvs_ebpf_common::{
    AttachMeta, CONTROL_ENTRIES, MAX_PEERS, MAX_VIPS, MacKey, VipCounters, VipInfo, VipKey,
    VipValue, global,
};

#[map]
pub static LVS_VIPS_0: HashMap<VipKey, VipValue> = HashMap::with_max_entries(MAX_VIPS, 0);
#[map]
pub static LVS_VIPS_1: HashMap<VipKey, VipValue> = HashMap::with_max_entries(MAX_VIPS, 0);

#[map]
pub static LVS_PEERS_0: HashMap<MacKey, u32> = HashMap::with_max_entries(MAX_PEERS, 0);
#[map]
pub static LVS_PEERS_1: HashMap<MacKey, u32> = HashMap::with_max_entries(MAX_PEERS, 0);

#[map]
pub static LVS_CONTROL: Array<u32> = Array::with_max_entries(CONTROL_ENTRIES, 0);

#[map]
pub static LVS_VIP_STATS: PerCpuArray<VipCounters> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

#[map]
pub static LVS_GLOBAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(global::COUNT, 0);

// Userspace-only bookkeeping, declared here so that it lives (and is pinned) with the
// program's maps.
#[map]
pub static LVS_VIP_INFO: Array<VipInfo> = Array::with_max_entries(MAX_VIPS, 0);
#[map]
pub static LVS_META: Array<AttachMeta> = Array::with_max_entries(1, 0);

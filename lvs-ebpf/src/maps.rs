//! The maps both program variants share, explicitly named (the names are shared with
//! the loader through `lvs_ebpf_common::map_names`). The VIP lookup structures live with
//! their lookup code (`lookup.rs` for the table datapath, `lookup_htab.rs` for the
//! kernel-hash-map benchmark variant).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use lvs_ebpf_common::{
    AttachMeta, Control, GlobalCounters, MAX_PEERS, MAX_VIPS, MacKey, VIP_STAT_SLOTS, VipCounters,
    VipInfo,
};

/// `BPF_F_MMAPABLE`: the array's values start page-aligned (so a 64-byte value is one
/// cache line) and the loader may map them.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The live generation and what a packet needs of it (see [`Control`]).
#[map]
pub static LVS_CONTROL: Array<Control> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Peer MACs per generation: the loader's record (`stats`), and what the `htab` variant
/// looks up.
#[map]
pub static LVS_PEERS_0: HashMap<MacKey, u32> = HashMap::with_max_entries(MAX_PEERS, 0);
#[map]
pub static LVS_PEERS_1: HashMap<MacKey, u32> = HashMap::with_max_entries(MAX_PEERS, 0);

#[map]
pub static LVS_VIP_STATS: PerCpuArray<VipCounters> =
    PerCpuArray::with_max_entries(VIP_STAT_SLOTS, 0);

#[map]
pub static LVS_GLOBAL: PerCpuArray<GlobalCounters> = PerCpuArray::with_max_entries(1, 0);

// Userspace-only bookkeeping, declared here so that it lives (and is pinned) with the
// program's maps.
#[map]
pub static LVS_VIP_INFO: Array<VipInfo> = Array::with_max_entries(MAX_VIPS, 0);
#[map]
pub static LVS_META: Array<AttachMeta> = Array::with_max_entries(1, 0);

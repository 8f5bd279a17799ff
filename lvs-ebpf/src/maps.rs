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

/// Entry 0: what the program counts. Entry `lvs_ebpf_common::GLOBAL_BASE`: counts the loader carried over
/// from the maps a growing reload replaced (the program never touches it).
#[map]
pub static LVS_GLOBAL: PerCpuArray<GlobalCounters> = PerCpuArray::with_max_entries(2, 0);

// Userspace-only bookkeeping, declared here so that it lives (and is pinned) with the
// program's maps.
#[map]
pub static LVS_VIP_INFO: Array<VipInfo> = Array::with_max_entries(MAX_VIPS, 0);
#[map]
pub static LVS_META: Array<AttachMeta> = Array::with_max_entries(1, 0);
/// Per counter slot: the counts a growing reload carried over from the maps it replaced
/// (the loader adds them to `LVS_VIP_STATS`; written after the old program stopped, so
/// nothing the program counts races with them).
#[map]
pub static LVS_VIP_BASE: Array<VipCounters> =
    Array::with_max_entries(VIP_STAT_SLOTS, BPF_F_MMAPABLE);

//! `#[repr(C)]` map keys and values shared by the kernel program (`lvs-ebpf`) and the
//! userspace loader (`lvs-loader`). Every struct is laid out without implicit padding
//! (checked by the `const` asserts below), so a key built on one side hashes the same on
//! the other.
#![no_std]

/// Map names, as the kernel sees them (at most 15 bytes).
pub mod map_names {
    pub const VIPS: [&str; 2] = ["LVS_VIPS_0", "LVS_VIPS_1"];
    pub const PEERS: [&str; 2] = ["LVS_PEERS_0", "LVS_PEERS_1"];
    pub const CONTROL: &str = "LVS_CONTROL";
    pub const VIP_STATS: &str = "LVS_VIP_STATS";
    pub const GLOBAL_STATS: &str = "LVS_GLOBAL";
    pub const VIP_INFO: &str = "LVS_VIP_INFO";
    pub const META: &str = "LVS_META";
}

/// Name of the TC classifier in the object file.
pub const PROGRAM_NAME: &str = "lvs_ingress";

/// Capacity of the VIP maps (each of the two generations) and of the per-VIP counters.
pub const MAX_VIPS: u32 = 131_072;
/// Capacity of the peer-MAC maps (each generation).
pub const MAX_PEERS: u32 = 1_024;
/// Bytes reserved for a VIP's name in [`VipInfo`].
pub const MAX_NAME_LEN: usize = 56;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// `port` value of a VIP that covers every port of its address and protocol.
pub const ANY_PORT: u16 = 0;

/// Key of the VIP maps.
///
/// `addr` holds the 4 address bytes of an IPv4 VIP followed by 12 zero bytes, or the 16
/// bytes of an IPv6 VIP. `port` is in host byte order (0 = any port). Aligned to 4 so the
/// program builds keys with word stores.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VipKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

impl VipKey {
    #[inline(always)]
    pub const fn v4(addr: [u8; 4], port: u16, proto: u8) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self {
            addr: a,
            port,
            proto,
            family: FAMILY_V4,
        }
    }

    #[inline(always)]
    pub const fn v6(addr: [u8; 16], port: u16, proto: u8) -> Self {
        Self {
            addr,
            port,
            proto,
            family: FAMILY_V6,
        }
    }
}

/// Value of the VIP maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipValue {
    /// What `skb->mark` is set to for VIP traffic from a non-peer (never 0).
    pub mark: u32,
    /// Slot of this VIP in the per-VIP counter and info arrays.
    pub index: u32,
}

/// Key of the peer maps: a source MAC, padded to 8 bytes with zeros.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacKey {
    pub addr: [u8; 6],
    pub _pad: [u8; 2],
}

impl MacKey {
    #[inline(always)]
    pub const fn new(addr: [u8; 6]) -> Self {
        Self { addr, _pad: [0; 2] }
    }
}

/// Per-CPU, per-VIP counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipCounters {
    /// Packets from a non-peer MAC that were marked.
    pub marked_packets: u64,
    pub marked_bytes: u64,
    /// Packets for the VIP from a peer director, left unmarked.
    pub peer_packets: u64,
    pub peer_bytes: u64,
}

/// Indices of the per-CPU global counter array ([`map_names::GLOBAL_STATS`]).
pub mod global {
    /// Every packet the program ran on.
    pub const SEEN: u32 = 0;
    /// Not IPv4/IPv6 (after at most two VLAN tags), or too short for an Ethernet header.
    pub const NOT_IP: u32 = 1;
    /// IP packets the parser could not read: bad version/IHL, total length shorter than
    /// the header, truncated IP header, unreadable IPv6 extension header chain.
    pub const MALFORMED: u32 = 2;
    /// IP packets that matched no VIP.
    pub const NO_VIP: u32 = 3;
    /// Packets marked (all VIPs).
    pub const MARKED: u32 = 4;
    /// VIP packets from a peer, left unmarked (all VIPs).
    pub const PEER: u32 = 5;
    /// IPv4/IPv6 non-first fragments (no ports: only any-port VIPs can match).
    pub const FRAGMENT: u32 = 6;
    /// TCP/UDP/SCTP header cut short (no ports: only any-port VIPs can match).
    pub const L4_TRUNCATED: u32 = 7;
    /// Internal errors: a map lookup that cannot fail did.
    pub const INTERNAL: u32 = 8;
    /// Headers beyond the linear part of the skb even after `bpf_skb_pull_data`.
    pub const NONLINEAR: u32 = 9;
    pub const COUNT: u32 = 10;

    /// Names used by `lvs-loader stats`, in index order.
    pub const NAMES: [&str; COUNT as usize] = [
        "packets_seen",
        "not_ip",
        "malformed",
        "no_vip",
        "marked",
        "peer",
        "fragments",
        "l4_truncated",
        "internal_errors",
        "nonlinear",
    ];
}

/// Index 0 of [`map_names::CONTROL`]: the active generation (0 or 1) of the VIP and peer maps.
pub const CONTROL_ACTIVE: u32 = 0;
/// Indices 1 and 2: number of any-port VIPs in generation 0 and 1 (0 lets the program skip
/// the any-port lookup on a miss).
pub const CONTROL_ANY_PORT_COUNT: u32 = 1;
pub const CONTROL_ENTRIES: u32 = 3;

/// Userspace-only description of a VIP slot (the program never reads it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipInfo {
    /// Position of the VIP in its config file (for stable output order).
    pub order: u32,
    pub name_len: u32,
    pub name: [u8; MAX_NAME_LEN],
}

impl Default for VipInfo {
    fn default() -> Self {
        Self {
            order: 0,
            name_len: 0,
            name: [0; MAX_NAME_LEN],
        }
    }
}

/// [`AttachMeta::mode`]: a pinned TCX link.
pub const MODE_TCX: u32 = 1;
/// [`AttachMeta::mode`]: a cls_bpf filter on a clsact qdisc.
pub const MODE_NETLINK: u32 = 2;
/// [`AttachMeta::clsact`]: the clsact qdisc was there before us.
pub const CLSACT_FOUND: u32 = 0;
/// [`AttachMeta::clsact`]: lvs-loader created the clsact qdisc (removed with the last filter).
pub const CLSACT_CREATED: u32 = 1;
/// [`AttachMeta::clsact`]: about to create it (written before the qdisc is added, so a
/// crash in between is recognised).
pub const CLSACT_MAYBE: u32 = 2;
/// [`AttachMeta::hook_order`]: first on the hook (TCX: before every other program;
/// netlink: the lowest free priority, 1 when it is free).
pub const HOOK_FIRST: u32 = 0;
/// [`AttachMeta::hook_order`]: after everything already on the hook.
pub const HOOK_LAST: u32 = 1;
/// [`AttachMeta::hook_order`]: netlink only, exactly [`AttachMeta::hook_priority`].
pub const HOOK_PRIORITY: u32 = 2;
pub const META_MAGIC: u32 = 0x4c56_5345; // "LVSE"
/// 2: netns cookie, per-generation config descriptions, full-length config paths.
/// 3: hook order (first, last, or a tc priority), kept by re-hooks and repairs.
pub const META_VERSION: u32 = 3;
/// `PATH_MAX`: a config path is stored whole, never truncated.
pub const META_PATH_LEN: usize = 4096;

/// Userspace-only description of the config installed in one generation of the VIP and
/// peer maps. The loader writes the standby generation's description *before* it flips
/// `LVS_CONTROL`, so the live generation and its description switch together.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationMeta {
    /// Increases with every apply; 0 = this generation never held a config.
    pub serial: u64,
    pub applied_at: u64,
    pub vip_count: u32,
    pub peer_count: u32,
    /// Non-zero while work after the flip is outstanding (counter slots taken over from
    /// removed VIPs still to be reset).
    pub pending: u32,
    pub path_len: u32,
    /// SHA-256 of the config file.
    pub digest: [u8; 32],
    /// Absolute path of the config file (`path_len` bytes).
    pub config_path: [u8; META_PATH_LEN],
}

impl Default for GenerationMeta {
    fn default() -> Self {
        Self {
            serial: 0,
            applied_at: 0,
            vip_count: 0,
            peer_count: 0,
            pending: 0,
            path_len: 0,
            digest: [0; 32],
            config_path: [0; META_PATH_LEN],
        }
    }
}

/// Userspace-only record of an attachment, kept in the pinned [`map_names::META`] map so
/// that `status`, `reload` and `detach` work after the loader has exited. Everything
/// needed to undo the hook (mode, netlink priority/handle, whether the qdisc is ours) is
/// written before the hook is created.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttachMeta {
    pub magic: u32,
    pub version: u32,
    pub mode: u32,
    pub ifindex: u32,
    pub netns_ino: u64,
    /// `SO_NETNS_COOKIE` of the namespace (0 on kernels before 5.14).
    pub netns_cookie: u64,
    pub attached_at: u64,
    pub nl_priority: u32,
    pub nl_handle: u32,
    /// [`CLSACT_FOUND`], [`CLSACT_CREATED`] or [`CLSACT_MAYBE`].
    pub clsact: u32,
    pub ifname_len: u32,
    /// [`HOOK_FIRST`], [`HOOK_LAST`] or [`HOOK_PRIORITY`].
    pub hook_order: u32,
    /// With [`HOOK_PRIORITY`]: the tc filter priority asked for.
    pub hook_priority: u32,
    pub ifname: [u8; 16],
    /// Indexed by generation (`LVS_CONTROL[0]`).
    pub generations: [GenerationMeta; 2],
}

// No implicit padding anywhere: sizes equal the sum of the fields.
const _: () = assert!(core::mem::size_of::<VipKey>() == 20);
const _: () = assert!(core::mem::size_of::<VipValue>() == 8);
const _: () = assert!(core::mem::size_of::<MacKey>() == 8);
const _: () = assert!(core::mem::size_of::<VipCounters>() == 32);
const _: () = assert!(core::mem::size_of::<VipInfo>() == 8 + MAX_NAME_LEN);
const _: () = assert!(core::mem::size_of::<GenerationMeta>() == 8 * 2 + 4 * 4 + 32 + META_PATH_LEN);
const _: () = assert!(
    core::mem::size_of::<AttachMeta>()
        == 4 * 4 + 8 * 3 + 4 * 6 + 16 + 2 * core::mem::size_of::<GenerationMeta>()
);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for VipValue {}
    unsafe impl aya::Pod for MacKey {}
    unsafe impl aya::Pod for VipCounters {}
    unsafe impl aya::Pod for VipInfo {}
    unsafe impl aya::Pod for AttachMeta {}
    unsafe impl aya::Pod for GenerationMeta {}
}

//! `#[repr(C)]` map keys and values shared by the kernel program (`lvs-ebpf`) and the
//! userspace loader (`lvs-loader`). Every struct is laid out without implicit padding
//! (checked by the `const` asserts below), so a value written on one side reads the same
//! on the other.
//!
//! The datapath's VIP tables are arrays of 64-byte buckets the loader builds (a
//! bucketized cuckoo hash, [`V4Bucket`] and [`V6Bucket`]); the hash functions are
//! defined here ([`v4_key`], [`v4_hash`], [`v6_hash`]) so both sides compute them alike.
#![no_std]

/// Map names, as the kernel sees them (at most 15 bytes).
pub mod map_names {
    /// IPv4 VIP table (array of [`crate::V4Bucket`], both generations).
    pub const V4_TABLE: &str = "LVS_V4";
    /// IPv6 VIP table (array of [`crate::V6Bucket`], both generations).
    pub const V6_TABLE: &str = "LVS_V6";
    /// Kernel hash maps of VIPs, one per generation: only in the `htab` benchmark
    /// variant of the program.
    pub const VIPS: [&str; 2] = ["LVS_VIPS_0", "LVS_VIPS_1"];
    /// Peer MACs (hash maps, one per generation): what the `htab` variant looks up, and
    /// the loader's record of the peers of each generation.
    pub const PEERS: [&str; 2] = ["LVS_PEERS_0", "LVS_PEERS_1"];
    /// Peer table (array of [`crate::PeerBucket`], both generations): what the table
    /// datapath reads when a generation has more than [`crate::PEERS_INLINE`] peers.
    pub const PEER_TABLE: &str = "LVS_PEER_TABLE";
    pub const CONTROL: &str = "LVS_CONTROL";
    pub const VIP_STATS: &str = "LVS_VIP_STATS";
    pub const GLOBAL_STATS: &str = "LVS_GLOBAL";
    pub const VIP_INFO: &str = "LVS_VIP_INFO";
    pub const META: &str = "LVS_META";
    /// Counts carried over by a growing reload, per counter slot (userspace only).
    pub const VIP_BASE: &str = "LVS_VIP_BASE";
    /// `lvs-loader trace`: the filter, lease and rate of the trace ([`crate::TraceFilter`]).
    pub const TRACE: &str = "LVS_TRACE";
    /// `lvs-loader trace`: per-CPU token buckets ([`crate::TraceBucket`]).
    pub const TRACE_BUCKET: &str = "LVS_TRACE_RL";
    /// `lvs-loader trace`: the events (a ring buffer of [`crate::TraceEvent`]).
    pub const TRACE_EVENTS: &str = "LVS_TRACE_EV";
}

/// Name of the TC classifier in the object file.
pub const PROGRAM_NAME: &str = "lvs_ingress";
/// Name of the explaining twin of [`PROGRAM_NAME`] in the same object: the same decision
/// code without counters, returning a [`Reason`] (never attached; BPF_PROG_TEST_RUN only).
pub const EXPLAIN_PROGRAM_NAME: &str = "lvs_explain";

/// Capacity: VIPs per generation, and per-VIP counter slots.
pub const MAX_VIPS: u32 = 131_072;
/// Capacity of the peer-MAC maps (each generation).
pub const MAX_PEERS: u32 = 1_024;
/// Bytes reserved for a VIP's name in [`VipInfo`].
pub const MAX_NAME_LEN: usize = 56;

/// Counter slots in [`map_names::VIP_STATS`] as compiled: one per VIP plus the retired
/// slot. An attachment sizes its maps from its config ([`capacity_for`]); the slot after
/// its last VIP slot (index = its capacity) is the retired slot.
pub const VIP_STAT_SLOTS: u32 = MAX_VIPS + 1;
/// The retired slot of maps of the full capacity: the counter slot that accumulates the
/// counts of removed VIPs (written by the loader only), so that the `marked`/`peer`
/// totals never go backwards. Maps of capacity `c` have it at index `c`.
pub const RETIRED_SLOT: u32 = MAX_VIPS;

/// The entry of [`map_names::GLOBAL_STATS`] that holds the global counts a growing reload
/// carried over (the program counts in entry 0 only).
pub const GLOBAL_BASE: u32 = 1;

/// Smallest capacity an attachment gets (VIP slots): a few VIPs need no growth.
pub const MIN_CAPACITY: u32 = 256;

/// The capacity (VIP slots) of the maps of an attachment whose config has `vips` VIP
/// entries: the next power of two of twice that (headroom: reloads up to twice the size
/// need no new maps, and the cuckoo tables stay at most half full), at least
/// [`MIN_CAPACITY`], at most [`MAX_VIPS`].
pub const fn capacity_for(vips: usize) -> u32 {
    let want = vips.saturating_mul(2);
    if want <= MIN_CAPACITY as usize {
        MIN_CAPACITY
    } else if want >= MAX_VIPS as usize {
        MAX_VIPS
    } else {
        want.next_power_of_two() as u32
    }
}

/// A config needs new maps when it has a quarter or less of the VIPs the live ones were
/// sized for: [`resized_capacity`] then shrinks them.
pub const SHRINK_FACTOR: u32 = 4;

/// The capacity a reload to a config of `vips` VIP entries moves maps of capacity `have`
/// to, or `None` when they stay: grown when the config does not fit
/// ([`capacity_for`] `> have`), shrunk when it needs a [`SHRINK_FACTOR`]th or less of
/// `have` (the gap between growing and shrinking keeps a config that moves back and forth
/// around one size from swapping maps at every reload).
pub const fn resized_capacity(have: u32, vips: usize) -> Option<u32> {
    let want = capacity_for(vips);
    if want > have || want.saturating_mul(SHRINK_FACTOR) <= have {
        Some(want)
    } else {
        None
    }
}

/// `max_entries` of each capacity-sized map for `capacity` VIP slots: (IPv4 table
/// buckets, IPv6 table buckets, counter slots, VIP info entries). Both generations of a
/// table hold `capacity` VIPs each at a load of at most one half, like the compiled sizes
/// do for [`MAX_VIPS`].
pub const fn sized_entries(capacity: u32) -> (u32, u32, u32, u32) {
    (
        capacity / V4_PER_BUCKET as u32 * 2 * 2,
        capacity / V6_PER_BUCKET as u32 * 2 * 2,
        capacity + 1,
        capacity,
    )
}

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// `port` value of a VIP that covers every port of its address and protocol.
pub const ANY_PORT: u16 = 0;

/// A VIP's identity `(address, port, protocol)`, as the loader and `stats` see it, and
/// the key of the `htab` variant's kernel hash maps.
///
/// `addr` holds the 4 address bytes of an IPv4 VIP followed by 12 zero bytes, or the 16
/// bytes of an IPv6 VIP. `port` is in host byte order (0 = any port).
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

/// Value of the `htab` variant's VIP maps, and a VIP's marking as the loader reads it
/// back.
///
/// A VIP packet from a non-peer gets `skb->mark = (skb->mark & !mask) ^ mark`, exactly
/// the kernel's xt_MARK target (`--set-xmark mark/mask`); `mask = u32::MAX` sets all 32
/// bits (`--set-mark mark`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipValue {
    /// The mark bits (never 0; the loader's configs keep it inside `mask`).
    pub mark: u32,
    /// Slot of this VIP in the per-VIP counter and info arrays.
    pub index: u32,
    /// The bits of `skb->mark` this VIP owns.
    pub mask: u32,
}

impl Default for VipValue {
    fn default() -> Self {
        Self {
            mark: 0,
            index: 0,
            mask: u32::MAX,
        }
    }
}

/// xt_MARK (`net/netfilter/xt_mark.c`, `mark_tg`): the mark a packet that arrived with
/// `old` leaves with, for `--set-xmark value/mask`.
#[inline(always)]
pub const fn xt_mark(old: u32, value: u32, mask: u32) -> u32 {
    (old & !mask) ^ value
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

/// A MAC as the program compares it: the six bytes as a little-endian u64 (what an
/// 8-byte load at the source-MAC offset of a frame gives, masked to 48 bits).
#[inline(always)]
pub const fn mac_word(mac: [u8; 6]) -> u64 {
    u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0])
}

// ---------------------------------------------------------------------------------------
// Control: the live generation and everything a packet needs about it, in one value.

/// Peers compared inline (from [`GenControl::peers`]) before any map is consulted.
pub const PEERS_INLINE: usize = 4;
/// An unused peer word: no 48-bit MAC equals it (and it is not [`PEERS_IN_TABLE`]).
pub const NO_PEER: u64 = 1 << 62;
/// In `peers[PEERS_INLINE - 1]`, or'ed with the [`Geometry`] of the generation's peer
/// table (low 32 bits): the generation has more than [`PEERS_INLINE`] peers;
/// `peers[0]` holds the first, `peers[1..3]` the [peer filter](peer_filter) and the peer
/// table holds all of them. No MAC equals a word with this bit.
pub const PEERS_IN_TABLE: u64 = 1 << 63;
/// Set in both words of a [peer filter](peer_filter): no MAC word (48 bits) equals them,
/// so the inline compares never match a filter word.
pub const PEER_FILTER_MARK: u64 = 1 << 63;

/// A MAC word's bit in the peer filter: the top 7 bits of its first hash with the
/// generation's multiplier `mult` (bit `b & 63` of `peers[1 + (b >> 6)]`).
#[inline(always)]
pub const fn peer_filter_bit(mac: u64, mult: u64) -> u32 {
    (mac.wrapping_mul(mult) >> 57) as u32
}

/// The 128-bit filter of a generation with its peers in the table (`peers[1..3]` of its
/// [`GenControl`]): the [`peer_filter_bit`] of every peer set, and [`PEER_FILTER_MARK`].
/// A client MAC whose bit is clear is no peer: the program skips the peer-table bucket
/// (a non-peer hit with 16 peers reads it one time in ~8 instead of every time).
pub fn peer_filter(macs: impl IntoIterator<Item = u64>, mult: u64) -> [u64; 2] {
    let mut f = [PEER_FILTER_MARK; 2];
    for m in macs {
        let b = peer_filter_bit(m, mult);
        f[(b >> 6) as usize] |= 1 << (b & 63);
    }
    f
}

/// Where one family's table of a generation lives in its array, packed in one word:
/// `base | ANY_PORT_FLAG | shift`.
///
/// * `base` (a multiple of [`GEOMETRY_BASE_ALIGN`]): first bucket of the generation;
/// * `shift` (low 6 bits, 1..=63): a hash `h` picks bucket `base + (h >> shift)`, so the
///   generation has `2^(64 - shift)` buckets;
/// * [`GEOMETRY_ANY_PORT`]: the generation has any-port VIPs of this family (otherwise a
///   miss skips the any-port probe).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Geometry(pub u32);

pub const GEOMETRY_SHIFT_MASK: u32 = 0x3f;
pub const GEOMETRY_ANY_PORT: u32 = 0x40;
pub const GEOMETRY_BASE_ALIGN: u32 = 0x80;

impl Geometry {
    /// `buckets_log2` in 1..=32, `base` a multiple of [`GEOMETRY_BASE_ALIGN`].
    pub const fn new(base: u32, buckets_log2: u32, any_port: bool) -> Self {
        Self(base | if any_port { GEOMETRY_ANY_PORT } else { 0 } | (64 - buckets_log2))
    }
    #[inline(always)]
    pub const fn shift(self) -> u32 {
        self.0 & GEOMETRY_SHIFT_MASK
    }
    #[inline(always)]
    pub const fn base(self) -> u32 {
        self.0 & !(GEOMETRY_BASE_ALIGN - 1)
    }
    #[inline(always)]
    pub const fn any_port(self) -> bool {
        self.0 & GEOMETRY_ANY_PORT != 0
    }
    /// Buckets of the generation's table; 0 for a zeroed word (a generation never
    /// written: shift 0 is not a valid geometry).
    pub const fn buckets(self) -> u64 {
        match self.shift() {
            0 => 0,
            s => 1u64 << (64 - s),
        }
    }
}

/// Everything one generation of the config tells a packet (56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenControl {
    /// Peer MACs as [`mac_word`]; unused = [`NO_PEER`]; see [`PEERS_IN_TABLE`].
    pub peers: [u64; PEERS_INLINE],
    /// Odd multipliers of the two hash functions of both tables ([`v4_hash`], [`v6_hash`]).
    pub hash: [u64; 2],
    pub v4: Geometry,
    pub v6: Geometry,
}

impl Default for GenControl {
    fn default() -> Self {
        Self {
            peers: [NO_PEER; PEERS_INLINE],
            hash: [1, 1],
            v4: Geometry::new(0, 1, false),
            v6: Geometry::new(0, 1, false),
        }
    }
}

/// Mask classes of a generation: the distinct `mark_mask`es of its VIPs, at most
/// [`MASK_CLASSES`]. A VIP entry names its class in `meta` ([`META_CLASS_SHIFT`]); the
/// program reads the class's `keep` word from the generation's [`KeepLine`] in
/// [`Control`] (the value it has already looked up: no extra map access) and sets
/// `skb->mark = (skb->mark & keep) ^ mark`.
pub const MASK_CLASSES: usize = 16;
/// `meta >> META_CLASS_SHIFT & META_CLASS_BITS`: an entry's mask class.
pub const META_CLASS_SHIFT: u32 = 24;
pub const META_CLASS_BITS: u32 = (MASK_CLASSES - 1) as u32;

/// `keep[c] = !mask` of mask class `c` of one generation (unused classes and a zeroed
/// line: 0, the full mask, so an entry of class 0 in a never-written line sets all 32
/// bits as before masks existed).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KeepLine {
    pub keep: [u32; MASK_CLASSES],
}

/// One cache line of [`Control`].
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ControlLine {
    /// Line 0: the live generation (0 or 1). Line 1: the stamp of generation 0 (see
    /// [`Control::stamp`]).
    pub active: u32,
    /// Line 0: the trace switch (`lvs-loader trace`): 0 = off (the program's only cost:
    /// this load and a branch); otherwise the program checks [`TraceFilter`] for each
    /// packet, and switches itself off (writes 0) once the filter's lease has expired.
    /// Line 1: the stamp of generation 1 (see [`Control::stamp`]).
    pub trace: u32,
    /// Generation `i` lives in line `i`.
    pub generation: GenControl,
}

/// The only value of [`map_names::CONTROL`] (a `BPF_F_MMAPABLE` array, so the value is
/// cache-line aligned): line 0 holds the live-generation selector and generation 0,
/// line 1 generation 1. A packet reads `active` and then the line of that generation.
///
/// The loader writes the standby generation's line (the live line is rewritten with
/// identical bytes), then flips `active` with a second update that changes one byte:
/// the flip is a single map update, atomic for every packet. Generation `g`'s mask
/// classes are in `keep[g]`, written with its line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Control {
    pub lines: [ControlLine; 2],
    pub keep: [KeepLine; 2],
}

/// The stamp ([`Control::stamp`]) of the config with record serial `serial`: its low 32
/// bits (never 0, which means "unknown").
pub const fn stamp_of(serial: u64) -> u32 {
    match serial as u32 {
        0 => 1,
        s => s,
    }
}

impl Control {
    pub const fn active(&self) -> u32 {
        self.lines[0].active & 1
    }
    pub const fn generation(&self, g: u32) -> &GenControl {
        &self.lines[(g & 1) as usize].generation
    }
    /// Which config generation `g` holds: the loader writes the low 32 bits of the
    /// config's serial (`lvs-loader status`) with the generation's line, 0 = unknown (a
    /// line written before stamps existed). A trace event carries the stamp of the
    /// generation that decided it, so `lvs-loader trace` names it by that config even
    /// when a reload happened before the event was read. Kept in line 1's two words,
    /// which no packet reads on its way.
    pub const fn stamp(&self, g: u32) -> u32 {
        if g & 1 == 0 {
            self.lines[1].active
        } else {
            self.lines[1].trace
        }
    }
    pub fn set_stamp(&mut self, g: u32, stamp: u32) {
        if g & 1 == 0 {
            self.lines[1].active = stamp;
        } else {
            self.lines[1].trace = stamp;
        }
    }
}

// ---------------------------------------------------------------------------------------
// VIP tables: arrays of 64-byte buckets, two candidate buckets per key (cuckoo hashing).

/// One IPv4 VIP: the key word ([`v4_key`]), its mark and its counter slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct V4Entry {
    /// [`v4_key`]; 0 = empty (a real key has a non-zero protocol byte).
    pub key: u64,
    pub mark: u32,
    /// Counter slot (low 24 bits), mask class ([`META_CLASS_SHIFT`]) and, in entry 0
    /// only, [`BUCKET_SPILLED`].
    pub meta: u32,
}

pub const V4_PER_BUCKET: usize = 4;

#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct V4Bucket {
    pub e: [V4Entry; V4_PER_BUCKET],
}

/// One IPv6 VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct V6Entry {
    /// The address as two little-endian words (bytes 0..8, 8..16).
    pub addr: [u64; 2],
    /// `port | proto << 16` ([`v6_tail`]); 0 = empty.
    pub tail: u32,
    /// Counter slot (low 24 bits), mask class ([`META_CLASS_SHIFT`]) and, in entry 0
    /// only, [`BUCKET_SPILLED`].
    pub meta: u32,
    pub mark: u32,
    pub _pad: u32,
}

pub const V6_PER_BUCKET: usize = 2;

#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct V6Bucket {
    pub e: [V6Entry; V6_PER_BUCKET],
}

/// Peer MACs as [`mac_word`]s: `mac[0]` is the bucket header ([`PEER_BUCKET_SPILLED`]),
/// `mac[1..8]` the MACs, [`NO_PEER`] when unused.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerBucket {
    pub mac: [u64; 8],
}

impl Default for PeerBucket {
    fn default() -> Self {
        let mut mac = [NO_PEER; 8];
        mac[0] = 0;
        Self { mac }
    }
}

pub const PEERS_PER_BUCKET: usize = 7;
/// In `mac[0]`: some MAC whose first bucket is this one lives in its second bucket.
pub const PEER_BUCKET_SPILLED: u64 = 1;
/// Buckets per generation of the peer table, and its `max_entries` as compiled.
pub const PEER_GEN_BUCKETS: u32 = 512;
pub const PEER_TABLE_BUCKETS: u32 = 2 * PEER_GEN_BUCKETS;

/// Counter slot bits of an entry's `meta`.
pub const META_SLOT_MASK: u32 = 0x00ff_ffff;
/// In `e[0].meta` of bucket `b`: some key whose first bucket is `b` lives in its second
/// bucket. Without it a lookup that misses in the first bucket is done.
pub const BUCKET_SPILLED: u32 = 1 << 31;

/// Buckets per generation in each table array (2 generations per array).
pub const V4_GEN_BUCKETS: u32 = MAX_VIPS / V4_PER_BUCKET as u32 * 2;
pub const V6_GEN_BUCKETS: u32 = MAX_VIPS / V6_PER_BUCKET as u32 * 2;
/// `max_entries` of the table arrays as compiled (the loader may set others).
pub const V4_TABLE_BUCKETS: u32 = 2 * V4_GEN_BUCKETS;
pub const V6_TABLE_BUCKETS: u32 = 2 * V6_GEN_BUCKETS;

/// The IPv4 key word: address bytes (as a little-endian u32), port, protocol.
#[inline(always)]
pub const fn v4_key(addr: u32, port: u16, proto: u8) -> u64 {
    addr as u64 | (port as u64) << 32 | (proto as u64) << 48
}

/// The IPv6 key tail: port and protocol.
#[inline(always)]
pub const fn v6_tail(port: u16, proto: u8) -> u32 {
    port as u32 | (proto as u32) << 16
}

/// Multiply-shift hash input of an IPv4 key for multiplier `a` (take `>> shift`).
#[inline(always)]
pub const fn v4_hash(key: u64, a: u64) -> u64 {
    key.wrapping_mul(a)
}

/// Polynomial multiply-shift hash of an IPv6 key (Horner with multiplier `a`).
#[inline(always)]
pub const fn v6_hash(w0: u64, w1: u64, tail: u32, a: u64) -> u64 {
    (w0.wrapping_mul(a).wrapping_add(w1))
        .wrapping_mul(a)
        .wrapping_add(tail as u64)
        .wrapping_mul(a)
}

// ---------------------------------------------------------------------------------------
// Counters and verdicts.

/// Per-CPU, per-VIP counters (one cache line update per VIP packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipCounters {
    /// Packets from a non-peer MAC that were marked.
    pub marked_packets: u64,
    pub marked_bytes: u64,
    /// Packets for the VIP from a peer director, left unmarked.
    pub peer_packets: u64,
    pub peer_bytes: u64,
    /// Packets (marked or from a peer) that arrived with `skb->mark != 0`: another
    /// user of the mark got there first. Counted in the same update as the others.
    pub already_marked: u64,
}

/// Why the program did what it did with a packet: the return value of
/// [`EXPLAIN_PROGRAM_NAME`], and (below [`Reason::Marked`]) the index of the global
/// counter the main program counts the packet in.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// TCP/UDP/SCTP with a readable destination port: no VIP (exact or any-port).
    NoVip = 0,
    /// Non-first fragment (no port) and no any-port VIP for its address and protocol.
    Fragment = 1,
    /// Transport header cut short (no port) and no any-port VIP.
    L4Truncated = 2,
    /// IP, but not TCP/UDP/SCTP (ICMP, ESP, ...): no VIP can match.
    OtherProtocol = 3,
    /// Not IPv4/IPv6 (after at most two VLAN tags), or too short for an Ethernet header.
    NotIp = 4,
    /// Bad version/IHL, lengths past the frame, unreadable IPv6 extension chain.
    Malformed = 5,
    /// A header starts more than 16 KiB (the parser's bound on offsets) into the packet:
    /// not read. (Headers outside the linear data are read through copies.)
    Nonlinear = 6,
    /// VIP traffic from a non-peer: `skb->mark` set to the VIP's mark.
    Marked = 7,
    /// VIP traffic from a peer director: left unmarked.
    Peer = 8,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Self::NoVip,
        Self::Fragment,
        Self::L4Truncated,
        Self::OtherProtocol,
        Self::NotIp,
        Self::Malformed,
        Self::Nonlinear,
        Self::Marked,
        Self::Peer,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// Snake-case name, for JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoVip => "no_vip",
            Self::Fragment => "fragment",
            Self::L4Truncated => "l4_truncated",
            Self::OtherProtocol => "other_protocol",
            Self::NotIp => "not_ip",
            Self::Malformed => "malformed",
            Self::Nonlinear => "nonlinear",
            Self::Marked => "marked",
            Self::Peer => "peer",
        }
    }
}

/// Bits of the explain program's detail word (`cb[2]`).
pub mod detail {
    /// Generation 1 decided (the bit is the live-generation selector itself, so the
    /// program sets it with one `or`); clear: generation 0, or no generation consulted.
    pub const GENERATION_1: u32 = 1;
    /// The packet carried no readable port: non-first fragment.
    pub const FRAGMENT: u32 = 2;
    /// The packet carried no readable port: transport header cut short.
    pub const L4_TRUNCATED: u32 = 4;
    /// The VIP matched through its any-port entry.
    pub const ANY_PORT: u32 = 8;
    /// IPv6.
    pub const IPV6: u32 = 16;
    /// The headers were not all in the linear part (read through copies). Reserved: the
    /// program does not set it (carrying it past the parser would double what the
    /// verifier explores).
    pub const PULLED: u32 = 32;
}

/// Per-CPU global counters: the single value of [`map_names::GLOBAL_STATS`]. Packets
/// that hit a VIP are counted in their VIP's slot only; every other packet in exactly
/// one `count[reason]` when it arrived with `skb->mark == 0`, else in
/// `count[global::SLOTS + reason]` (one increment either way). The loader derives the
/// totals users see ([`global::NAMES`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalCounters {
    pub count: [u64; 2 * global::SLOTS],
}

impl Default for GlobalCounters {
    fn default() -> Self {
        Self {
            count: [0; 2 * global::SLOTS],
        }
    }
}

impl GlobalCounters {
    /// Slot `i` whatever the packets' mark on arrival.
    pub const fn total(&self, i: usize) -> u64 {
        self.count[i] + self.count[global::SLOTS + i]
    }
    /// Packets counted here that arrived with a non-zero mark.
    pub fn already_marked(&self) -> u64 {
        self.count[global::SLOTS..].iter().sum()
    }
}

/// Slots of [`GlobalCounters::count`] and the totals `stats` shows.
pub mod global {
    /// `count[r]` for every [`crate::Reason`] `r` below `Marked` (the first 7 slots).
    /// VIP hits that carried no port (any-port VIPs): non-first fragments.
    pub const HIT_FRAGMENT: usize = 7;
    /// VIP hits that carried no port: transport header cut short.
    pub const HIT_L4_TRUNCATED: usize = 8;
    /// Internal errors: a map lookup that cannot fail did, `bpf_skb_pull_data` failed.
    pub const INTERNAL: usize = 9;
    pub const SLOTS: usize = 10;
    /// The total `stats` shows beside [`NAMES`]: packets that arrived with
    /// `skb->mark != 0` (VIP packets and all others), `lvs_ebpf_packets_already_marked_total`.
    pub const ALREADY_MARKED: &str = "already_marked";

    /// Names of the totals `lvs-loader stats` shows (derived by the loader).
    pub const NAMES: [&str; 10] = [
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
/// 4: mark masks (mask classes in `LVS_CONTROL`), already-marked counters.
pub const META_VERSION: u32 = 4;
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

// ---------------------------------------------------------------------------------------
// Trace (`lvs-loader trace`).

/// [`TraceFilter::flags`]: only packets from [`TraceFilter::mac`].
pub const TRACE_MAC: u32 = 1;
/// [`TraceFilter::flags`]: only IPv4 packets to `addr[0..4]`.
pub const TRACE_V4: u32 = 2;
/// [`TraceFilter::flags`]: only IPv6 packets to `addr`.
pub const TRACE_V6: u32 = 4;
/// [`TraceFilter::flags`]: only packets to [`TraceFilter::port`] (when the program can
/// read it in the first [`TRACE_HEADER_BYTES`]; otherwise lvs-loader filters).
pub const TRACE_PORT: u32 = 8;
/// Bytes of each traced frame copied into its event (headers for lvs-loader to name it).
pub const TRACE_HEADER_BYTES: usize = 96;
/// Size of the event ring buffer.
pub const TRACE_RING_BYTES: u32 = 256 * 1024;

/// The only value of [`map_names::TRACE`], written by `lvs-loader trace` only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TraceFilter {
    /// The lease: `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) after which the program emits
    /// nothing and turns the control line's trace switch off. `lvs-loader trace` renews
    /// it; a killed trace stops at the latest this long after its last renewal.
    pub expires_ns: u64,
    /// Token bucket, per CPU: an event costs `cost_ns` of credit; credit accrues with
    /// time up to `burst_ns` (`1e9 / rate` and `burst * cost_ns`).
    pub cost_ns: u64,
    pub burst_ns: u64,
    /// [`mac_word`] of the source MAC with [`TRACE_MAC`].
    pub mac: u64,
    /// Destination address with [`TRACE_V4`] (first 4 bytes) or [`TRACE_V6`].
    pub addr: [u8; 16],
    pub flags: u32,
    /// Destination port with [`TRACE_PORT`] (host order).
    pub port: u32,
    /// pid of the `lvs-loader trace` that owns the lease.
    pub owner: u32,
    pub _pad: u32,
}

/// Per-CPU rate-limit state of the trace (value of [`map_names::TRACE_BUCKET`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TraceBucket {
    pub credit_ns: u64,
    pub last_ns: u64,
    /// Matching packets not emitted since the last event on this CPU.
    pub suppressed: u64,
}

/// One traced packet (a record of [`map_names::TRACE_EVENTS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// `bpf_ktime_get_ns()`.
    pub time_ns: u64,
    /// Matching packets this CPU left out (rate limit) just before this one.
    pub suppressed: u64,
    /// [`Reason`] as u32.
    pub reason: u32,
    /// The VIP's mark when a VIP matched (set on the skb when `reason` is `Marked`).
    pub mark: u32,
    /// The VIP's counter slot, or `u32::MAX`.
    pub slot: u32,
    /// [`detail`] bits.
    pub detail: u32,
    /// `skb->len`.
    pub len: u32,
    /// Bytes of `headers` copied from the frame.
    pub captured: u32,
    /// [`Control::stamp`] of the generation that decided ([`detail::GENERATION_1`]; 0: no
    /// generation consulted).
    pub stamp: u32,
    pub _pad: u32,
    pub headers: [u8; TRACE_HEADER_BYTES],
}

// No implicit padding anywhere: sizes equal the sum of the fields.
const _: () = assert!(core::mem::size_of::<VipKey>() == 20);
const _: () = assert!(
    sized_entries(MAX_VIPS).0 == V4_TABLE_BUCKETS
        && sized_entries(MAX_VIPS).1 == V6_TABLE_BUCKETS
        && sized_entries(MAX_VIPS).2 == VIP_STAT_SLOTS
        && capacity_for(0) == MIN_CAPACITY
        && capacity_for(128) == MIN_CAPACITY
        && capacity_for(129) == 512
        && capacity_for(1000) == 2048
        && capacity_for(65_536) == MAX_VIPS
        && resized_capacity(256, 128).is_none()
        && matches!(resized_capacity(256, 129), Some(512))
        && resized_capacity(2048, 1024).is_none()
        && matches!(resized_capacity(2048, 256), Some(512))
        && resized_capacity(2048, 257).is_none()
        && matches!(resized_capacity(1024, 0), Some(MIN_CAPACITY))
        && resized_capacity(MIN_CAPACITY, 0).is_none()
        && capacity_for(MAX_VIPS as usize) == MAX_VIPS
);
const _: () = assert!(core::mem::size_of::<VipValue>() == 12);
const _: () = assert!(core::mem::size_of::<MacKey>() == 8);
const _: () = assert!(core::mem::size_of::<VipCounters>() == 40);
const _: () = assert!(core::mem::size_of::<GlobalCounters>() == 16 * global::SLOTS);
const _: () = assert!(core::mem::size_of::<KeepLine>() == 64);
const _: () = assert!(core::mem::size_of::<GenControl>() == 56);
const _: () = assert!(core::mem::size_of::<ControlLine>() == 64);
const _: () = assert!(core::mem::size_of::<Control>() == 256);
// The mask class sits between the counter slot and BUCKET_SPILLED.
const _: () = assert!(META_SLOT_MASK < 1 << META_CLASS_SHIFT);
const _: () = assert!((META_CLASS_BITS << META_CLASS_SHIFT) & BUCKET_SPILLED == 0);
const _: () = assert!(core::mem::size_of::<V4Entry>() == 16);
const _: () = assert!(core::mem::size_of::<V4Bucket>() == 64);
const _: () = assert!(core::mem::size_of::<V6Entry>() == 32);
const _: () = assert!(core::mem::size_of::<V6Bucket>() == 64);
const _: () = assert!(core::mem::size_of::<PeerBucket>() == 64);
const _: () = assert!(PEER_GEN_BUCKETS.is_multiple_of(GEOMETRY_BASE_ALIGN));
const _: () = assert!(PEER_GEN_BUCKETS as usize * PEERS_PER_BUCKET >= 2 * MAX_PEERS as usize);
const _: () = assert!(core::mem::size_of::<VipInfo>() == 8 + MAX_NAME_LEN);
const _: () = assert!(core::mem::size_of::<TraceFilter>() == 8 * 4 + 16 + 4 * 4);
const _: () = assert!(core::mem::size_of::<TraceBucket>() == 24);
const _: () = assert!(core::mem::size_of::<TraceEvent>() == 8 * 2 + 4 * 8 + TRACE_HEADER_BYTES);
const _: () = assert!(core::mem::size_of::<GenerationMeta>() == 8 * 2 + 4 * 4 + 32 + META_PATH_LEN);
const _: () = assert!(
    core::mem::size_of::<AttachMeta>()
        == 4 * 4 + 8 * 3 + 4 * 6 + 16 + 2 * core::mem::size_of::<GenerationMeta>()
);
// Counter slots fit the entries' meta bits, and generation regions the geometry word.
const _: () = assert!(VIP_STAT_SLOTS <= META_SLOT_MASK);
const _: () = assert!(V4_GEN_BUCKETS.is_multiple_of(GEOMETRY_BASE_ALIGN));
const _: () = assert!(V6_GEN_BUCKETS.is_multiple_of(GEOMETRY_BASE_ALIGN));
const _: () = assert!(Reason::Marked as usize == global::HIT_FRAGMENT);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for VipValue {}
    unsafe impl aya::Pod for MacKey {}
    unsafe impl aya::Pod for VipCounters {}
    unsafe impl aya::Pod for GlobalCounters {}
    unsafe impl aya::Pod for Control {}
    unsafe impl aya::Pod for V4Bucket {}
    unsafe impl aya::Pod for V6Bucket {}
    unsafe impl aya::Pod for PeerBucket {}
    unsafe impl aya::Pod for VipInfo {}
    unsafe impl aya::Pod for AttachMeta {}
    unsafe impl aya::Pod for GenerationMeta {}
    unsafe impl aya::Pod for TraceFilter {}
    unsafe impl aya::Pod for TraceBucket {}
}

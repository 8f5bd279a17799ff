//! The VIP tables the program reads: a pure function from the VIPs of a config (with
//! their counter slots) to the buckets of one generation.
//!
//! Each family gets a bucketized cuckoo hash: an array of 64-byte buckets (4 IPv4 or 2
//! IPv6 entries), `2^k` buckets sized from the number of VIPs so that at most half the
//! entries are used. A key has two candidate buckets, `h_i(key) >> (64 - k)` for the two
//! multiply-shift hashes of [`lvs_ebpf_common::v4_hash`] / [`lvs_ebpf_common::v6_hash`].
//! Keys go to their first bucket whenever it has room (so most lookups read one bucket);
//! a key placed in its second bucket sets [`BUCKET_SPILLED`] on its first, which tells
//! the program to look further. When a key finds both buckets full, entries are moved to
//! their other bucket (cuckoo kicks, at most [`Params::max_kicks`]); when that fails the
//! table is rebuilt with the next multipliers of a fixed sequence, and after
//! [`Params::reseeds`] failures with twice the buckets. Everything is deterministic: the
//! same VIPs in the same order give the same table.

use lvs_ebpf_common::{
    BUCKET_SPILLED, FAMILY_V4, GEOMETRY_BASE_ALIGN, MASK_CLASSES, META_CLASS_BITS,
    META_CLASS_SHIFT, META_SLOT_MASK, PEER_BUCKET_SPILLED, PEER_GEN_BUCKETS, PEERS_PER_BUCKET,
    PeerBucket, V4_GEN_BUCKETS, V4_PER_BUCKET, V4Bucket, V4Entry, V6_GEN_BUCKETS, V6_PER_BUCKET,
    V6Bucket, V6Entry, VipKey, mac_word, v4_hash, v4_key, v6_hash, v6_tail,
};

/// One VIP to install: its identity, mark, counter slot and mask class (an index into
/// the generation's [`lvs_ebpf_common::KeepLine`]; 0 = the full mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipEntry {
    pub key: VipKey,
    pub mark: u32,
    pub slot: u32,
    pub class: u32,
}

impl VipEntry {
    fn meta(&self) -> u32 {
        self.slot | self.class << META_CLASS_SHIFT
    }
}

fn class_of(meta: u32) -> u32 {
    (meta >> META_CLASS_SHIFT) & META_CLASS_BITS
}

/// The tables of one family for one generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyTable<B> {
    /// `2^log2` buckets.
    pub buckets: Vec<B>,
    pub log2: u32,
    /// Some VIP of this family covers every port.
    pub any_port: bool,
}

impl<B> FamilyTable<B> {
    pub fn len(&self) -> usize {
        self.buckets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Both tables of one generation and the hash multipliers they were built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub hash: [u64; 2],
    pub v4: FamilyTable<V4Bucket>,
    pub v6: FamilyTable<V6Bucket>,
    /// Builds that failed before this one (new multipliers or more buckets).
    pub rebuilds: u32,
}

/// Knobs of [`build_with`]; [`Params::default`] is what the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Largest table per family and generation, in buckets (a power of two).
    pub max_v4_buckets: u32,
    pub max_v6_buckets: u32,
    pub max_peer_buckets: u32,
    /// The table starts with the smallest power of two of buckets that keeps the load
    /// (entries / slots) at or below `1 / headroom`.
    pub headroom: u32,
    /// Cuckoo kicks per insertion before giving up on a set of multipliers.
    pub max_kicks: u32,
    /// Multiplier sets tried per table size before doubling it.
    pub reseeds: u32,
    /// Start of the multiplier sequence.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_v4_buckets: V4_GEN_BUCKETS,
            max_v6_buckets: V6_GEN_BUCKETS,
            max_peer_buckets: PEER_GEN_BUCKETS,
            headroom: 2,
            max_kicks: 500,
            reseeds: 8,
            seed: 0x6c76_732d_6562_7066, // "lvs-ebpf"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{count} IPv{family} VIPs do not fit a table of at most {max_buckets} buckets")]
    TooMany {
        family: u8,
        count: usize,
        max_buckets: u32,
    },
    #[error("VIP {0:?} is listed twice")]
    Duplicate(VipKey),
    #[error("counter slot {0} is out of range")]
    BadSlot(u32),
    #[error("mask class {0} is out of range (at most {MASK_CLASSES} distinct mark masks)")]
    BadClass(u32),
    #[error("{count} peers do not fit a table of at most {max_buckets} buckets")]
    TooManyPeers { count: usize, max_buckets: u32 },
}

/// splitmix64: the multiplier sequence.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `attempt`-th pair of odd multipliers.
pub fn multipliers(seed: u64, attempt: u32) -> [u64; 2] {
    let mut s = seed ^ u64::from(attempt).wrapping_mul(0xd6e8_feb8_6659_fd93);
    [splitmix64(&mut s) | 1, splitmix64(&mut s) | 1]
}

/// Bucket count (log2) for `n` keys of `per_bucket` entries at load `<= 1/headroom`.
pub fn buckets_log2(n: usize, per_bucket: usize, headroom: u32) -> u32 {
    let need = (n * headroom as usize).div_ceil(per_bucket).max(2);
    need.next_power_of_two().trailing_zeros()
}

/// What the cuckoo placement needs to know about a family's keys.
trait Family {
    type Bucket: Copy + Default;
    const PER: usize;
    fn hash(e: &VipEntry, a: u64) -> u64;
    fn write(b: &mut Self::Bucket, i: usize, e: &VipEntry);
    fn set_spilled(b: &mut Self::Bucket);
}

struct V4;
struct V6;

fn v4_words(k: &VipKey) -> u64 {
    v4_key(
        u32::from_le_bytes([k.addr[0], k.addr[1], k.addr[2], k.addr[3]]),
        k.port,
        k.proto,
    )
}

fn v6_words(k: &VipKey) -> (u64, u64, u32) {
    let mut w0 = [0u8; 8];
    let mut w1 = [0u8; 8];
    w0.copy_from_slice(&k.addr[..8]);
    w1.copy_from_slice(&k.addr[8..]);
    (
        u64::from_le_bytes(w0),
        u64::from_le_bytes(w1),
        v6_tail(k.port, k.proto),
    )
}

impl Family for V4 {
    type Bucket = V4Bucket;
    const PER: usize = V4_PER_BUCKET;
    fn hash(e: &VipEntry, a: u64) -> u64 {
        v4_hash(v4_words(&e.key), a)
    }
    fn write(b: &mut V4Bucket, i: usize, e: &VipEntry) {
        let spilled = b.e[i].meta & BUCKET_SPILLED;
        b.e[i] = V4Entry {
            key: v4_words(&e.key),
            mark: e.mark,
            meta: e.meta() | spilled,
        };
    }
    fn set_spilled(b: &mut V4Bucket) {
        b.e[0].meta |= BUCKET_SPILLED;
    }
}

impl Family for V6 {
    type Bucket = V6Bucket;
    const PER: usize = V6_PER_BUCKET;
    fn hash(e: &VipEntry, a: u64) -> u64 {
        let (w0, w1, t) = v6_words(&e.key);
        v6_hash(w0, w1, t, a)
    }
    fn write(b: &mut V6Bucket, i: usize, e: &VipEntry) {
        let (w0, w1, tail) = v6_words(&e.key);
        let spilled = b.e[i].meta & BUCKET_SPILLED;
        b.e[i] = V6Entry {
            addr: [w0, w1],
            tail,
            meta: e.meta() | spilled,
            mark: e.mark,
            _pad: 0,
        };
    }
    fn set_spilled(b: &mut V6Bucket) {
        b.e[0].meta |= BUCKET_SPILLED;
    }
}

/// Cuckoo placement of `n` keys into `2^log2` buckets of `per` entries, where
/// `bucket(key, i)` is key's `i`-th candidate bucket: for every bucket, the indices of
/// the keys in it. `None` when some key could not be placed.
fn place(
    n: usize,
    per: usize,
    log2: u32,
    max_kicks: u32,
    bucket: impl Fn(usize, usize) -> usize,
) -> Option<Vec<Vec<usize>>> {
    let mut slots: Vec<Vec<usize>> = vec![Vec::with_capacity(per); 1 << log2];
    for i in 0..n {
        let (b1, b2) = (bucket(i, 0), bucket(i, 1));
        if slots[b1].len() < per {
            slots[b1].push(i);
            continue;
        }
        if slots[b2].len() < per {
            slots[b2].push(i);
            continue;
        }
        // Kick: take the place of an entry of the bucket and move that entry to its
        // other bucket, until some entry finds room. The victim rotates so that a cycle
        // of full buckets is left after a few steps.
        let mut cur = i;
        let mut b = b1;
        let mut placed = false;
        for step in 0..max_kicks as usize {
            let v = step % per;
            std::mem::swap(&mut slots[b][v], &mut cur);
            let (c1, c2) = (bucket(cur, 0), bucket(cur, 1));
            let alt = if b == c1 { c2 } else { c1 };
            if slots[alt].len() < per {
                slots[alt].push(cur);
                placed = true;
                break;
            }
            b = alt;
        }
        if !placed {
            return None;
        }
    }
    Some(slots)
}

/// Builds one family's table: the smallest size for `entries`, the multiplier sequence,
/// then doubling sizes, up to `max_buckets`.
fn build_family<F: Family>(
    entries: &[&VipEntry],
    family: u8,
    max_buckets: u32,
    p: &Params,
    mut a: [u64; 2],
    attempt: &mut u32,
) -> Result<(FamilyTable<F::Bucket>, [u64; 2]), TableError> {
    let too_many = TableError::TooMany {
        family,
        count: entries.len(),
        max_buckets,
    };
    let max_log2 = max_buckets.checked_ilog2().ok_or(too_many.clone())?;
    let mut log2 = buckets_log2(entries.len(), F::PER, p.headroom);
    while log2 <= max_log2 {
        for _ in 0..=p.reseeds {
            let shift = 64 - log2;
            let bucket = |e: usize, i: usize| (F::hash(entries[e], a[i]) >> shift) as usize;
            if let Some(slots) = place(entries.len(), F::PER, log2, p.max_kicks, bucket) {
                let mut buckets = vec![F::Bucket::default(); 1 << log2];
                for (b, members) in slots.iter().enumerate() {
                    for (i, &e) in members.iter().enumerate() {
                        F::write(&mut buckets[b], i, entries[e]);
                        let first = (F::hash(entries[e], a[0]) >> shift) as usize;
                        if first != b {
                            F::set_spilled(&mut buckets[first]);
                        }
                    }
                }
                let any_port = entries.iter().any(|e| e.key.port == 0);
                return Ok((
                    FamilyTable {
                        buckets,
                        log2,
                        any_port,
                    },
                    a,
                ));
            }
            *attempt += 1;
            a = multipliers(p.seed, *attempt);
        }
        log2 += 1;
    }
    Err(too_many)
}

/// [`build_with`] with the loader's parameters.
pub fn build(entries: &[VipEntry]) -> Result<Tables, TableError> {
    build_with(entries, &Params::default())
}

/// Builds the tables of one generation. Both families share the multipliers: when the
/// IPv6 table needs new ones, the IPv4 table is rebuilt with them.
pub fn build_with(entries: &[VipEntry], p: &Params) -> Result<Tables, TableError> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for e in entries {
        if !seen.insert(e.key) {
            return Err(TableError::Duplicate(e.key));
        }
        if e.slot > META_SLOT_MASK {
            return Err(TableError::BadSlot(e.slot));
        }
        if e.class > META_CLASS_BITS {
            return Err(TableError::BadClass(e.class));
        }
    }
    let v4: Vec<&VipEntry> = entries
        .iter()
        .filter(|e| e.key.family == FAMILY_V4)
        .collect();
    let v6: Vec<&VipEntry> = entries
        .iter()
        .filter(|e| e.key.family != FAMILY_V4)
        .collect();
    let mut attempt = 0;
    let mut a = multipliers(p.seed, 0);
    // Each round either agrees on the multipliers or moves to later ones; a pair of
    // families that keep disagreeing is given up on (never seen in practice).
    for _ in 0..16 {
        let (t4, a4) = build_family::<V4>(&v4, 4, p.max_v4_buckets, p, a, &mut attempt)?;
        let (t6, a6) = build_family::<V6>(&v6, 6, p.max_v6_buckets, p, a4, &mut attempt)?;
        if a6 == a4 {
            return Ok(Tables {
                hash: a4,
                v4: t4,
                v6: t6,
                rebuilds: attempt,
            });
        }
        a = a6;
    }
    Err(TableError::TooMany {
        family: 4,
        count: v4.len(),
        max_buckets: p.max_v4_buckets,
    })
}

/// The peer table of a generation with more than [`lvs_ebpf_common::PEERS_INLINE`]
/// peers, for the multipliers `a` the VIP tables were built with: the smallest size at
/// load `<= 1/headroom`, doubled until every MAC is placed.
pub fn build_peers(
    macs: &[[u8; 6]],
    a: [u64; 2],
    p: &Params,
) -> Result<FamilyTable<PeerBucket>, TableError> {
    let words: Vec<u64> = macs.iter().map(|m| mac_word(*m)).collect();
    let too_many = TableError::TooManyPeers {
        count: macs.len(),
        max_buckets: p.max_peer_buckets,
    };
    let max_log2 = p.max_peer_buckets.checked_ilog2().ok_or(too_many.clone())?;
    let mut log2 = buckets_log2(words.len(), PEERS_PER_BUCKET, p.headroom);
    while log2 <= max_log2 {
        let shift = 64 - log2;
        let bucket = |e: usize, i: usize| (words[e].wrapping_mul(a[i]) >> shift) as usize;
        if let Some(slots) = place(words.len(), PEERS_PER_BUCKET, log2, p.max_kicks, bucket) {
            let mut buckets = vec![PeerBucket::default(); 1 << log2];
            for (b, members) in slots.iter().enumerate() {
                for (i, &e) in members.iter().enumerate() {
                    buckets[b].mac[1 + i] = words[e];
                    let first = bucket(e, 0);
                    if first != b {
                        buckets[first].mac[0] |= PEER_BUCKET_SPILLED;
                    }
                }
            }
            return Ok(FamilyTable {
                buckets,
                log2,
                any_port: false,
            });
        }
        log2 += 1;
    }
    Err(too_many)
}

/// Whether the program finds `mac` in `table` (built with multipliers `a`): a userspace
/// mirror of `lookup.rs`, with the buckets read.
pub fn lookup_peer(table: &FamilyTable<PeerBucket>, a: [u64; 2], mac: [u8; 6]) -> (bool, usize) {
    let w = mac_word(mac);
    let shift = 64 - table.log2;
    let b1 = &table.buckets[(w.wrapping_mul(a[0]) >> shift) as usize];
    if b1.mac[1..].contains(&w) {
        return (true, 1);
    }
    if b1.mac[0] & PEER_BUCKET_SPILLED == 0 {
        return (false, 1);
    }
    let b2 = &table.buckets[(w.wrapping_mul(a[1]) >> shift) as usize];
    (b2.mac[1..].contains(&w), 2)
}

/// What the program finds for `key` in `tables` (a userspace mirror of `lookup.rs`,
/// exact key only: no any-port fallback): `(mark, slot)` and the buckets read.
pub fn lookup(tables: &Tables, key: &VipKey) -> (Option<(u32, u32)>, usize) {
    if key.family == FAMILY_V4 {
        let k = v4_words(key);
        let t = &tables.v4;
        let shift = 64 - t.log2;
        let scan = |b: &V4Bucket| {
            b.e.iter()
                .find(|e| e.key == k)
                .map(|e| (e.mark, e.meta & META_SLOT_MASK))
        };
        let b1 = &t.buckets[(v4_hash(k, tables.hash[0]) >> shift) as usize];
        if let Some(x) = scan(b1) {
            return (Some(x), 1);
        }
        if b1.e[0].meta & BUCKET_SPILLED == 0 {
            return (None, 1);
        }
        let b2 = &t.buckets[(v4_hash(k, tables.hash[1]) >> shift) as usize];
        (scan(b2), 2)
    } else {
        let (w0, w1, tail) = v6_words(key);
        let t = &tables.v6;
        let shift = 64 - t.log2;
        let scan = |b: &V6Bucket| {
            b.e.iter()
                .find(|e| e.addr == [w0, w1] && e.tail == tail)
                .map(|e| (e.mark, e.meta & META_SLOT_MASK))
        };
        let b1 = &t.buckets[(v6_hash(w0, w1, tail, tables.hash[0]) >> shift) as usize];
        if let Some(x) = scan(b1) {
            return (Some(x), 1);
        }
        if b1.e[0].meta & BUCKET_SPILLED == 0 {
            return (None, 1);
        }
        let b2 = &t.buckets[(v6_hash(w0, w1, tail, tables.hash[1]) >> shift) as usize];
        (scan(b2), 2)
    }
}

/// Every entry of a table (for `stats`): key, mark, slot.
pub fn entries_v4(buckets: &[V4Bucket]) -> impl Iterator<Item = VipEntry> + '_ {
    buckets
        .iter()
        .flat_map(|b| b.e.iter())
        .filter(|e| e.key != 0)
        .map(|e| {
            let a = (e.key as u32).to_le_bytes();
            VipEntry {
                key: VipKey::v4(a, (e.key >> 32) as u16, (e.key >> 48) as u8),
                mark: e.mark,
                slot: e.meta & META_SLOT_MASK,
                class: class_of(e.meta),
            }
        })
}

pub fn entries_v6(buckets: &[V6Bucket]) -> impl Iterator<Item = VipEntry> + '_ {
    buckets
        .iter()
        .flat_map(|b| b.e.iter())
        .filter(|e| e.tail != 0)
        .map(|e| {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&e.addr[0].to_le_bytes());
            a[8..].copy_from_slice(&e.addr[1].to_le_bytes());
            VipEntry {
                key: VipKey::v6(a, e.tail as u16, (e.tail >> 16) as u8),
                mark: e.mark,
                slot: e.meta & META_SLOT_MASK,
                class: class_of(e.meta),
            }
        })
}

/// Where generation `g` of a table of `total` buckets starts: each generation owns one
/// half, aligned to [`GEOMETRY_BASE_ALIGN`].
pub fn generation_base(total: u32, g: u32) -> u32 {
    let half = total / 2 / GEOMETRY_BASE_ALIGN * GEOMETRY_BASE_ALIGN;
    half * (g & 1)
}

pub mod region;
#[cfg(test)]
mod tests;

//! The call-free VIP lookup: bucketized cuckoo hash tables in array maps the loader
//! builds (`lvs-loader/src/table.rs`), and peer MACs inline in the control value.
//!
//! A key has two candidate buckets, `base + (h_i(key) >> shift)` for the two
//! multiply-shift hashes of the generation. The loader puts a key in its first bucket
//! whenever it can and flags the first bucket (`BUCKET_SPILLED`) of every key it had to
//! put in its second, so a lookup reads one 64-byte bucket, and a second only when the
//! first is flagged. Array lookups with a computed index are inlined by the verifier: no
//! kernel function is called on the way.

use aya_ebpf::{macros::map, maps::Array};
use lvs_ebpf_common::{
    BUCKET_SPILLED, GenControl, Geometry, KeepLine, META_CLASS_BITS, META_CLASS_SHIFT,
    META_SLOT_MASK, PEER_BUCKET_SPILLED, PEER_TABLE_BUCKETS, PEERS_IN_TABLE, PeerBucket,
    V4_TABLE_BUCKETS, V4Bucket, V6_TABLE_BUCKETS, V6Bucket, global, peer_filter_bit, v4_hash,
    v6_hash,
};

use crate::{
    counters,
    decide::{Backend, Hit},
    maps::BPF_F_MMAPABLE,
};

// The sizes below are the full capacity as compiled; the loader sets each attachment's own
// (`lvs_ebpf_common::sized_entries`), and every access is bounds-checked against the
// map's real `max_entries`, so no access depends on these constants.

/// IPv4 VIPs, both generations (each generation's region is given by its `Geometry`).
#[map]
pub static LVS_V4: Array<V4Bucket> = Array::with_max_entries(V4_TABLE_BUCKETS, BPF_F_MMAPABLE);
/// IPv6 VIPs, both generations.
#[map]
pub static LVS_V6: Array<V6Bucket> = Array::with_max_entries(V6_TABLE_BUCKETS, BPF_F_MMAPABLE);
/// Peer MACs of generations with more peers than fit inline, both generations.
#[map]
pub static LVS_PEER_TABLE: Array<PeerBucket> =
    Array::with_max_entries(PEER_TABLE_BUCKETS, BPF_F_MMAPABLE);

/// The port bits of a [`lvs_ebpf_common::v4_key`].
const V4_PORT_MASK: u64 = 0xffff << 32;
/// The port bits of a [`lvs_ebpf_common::v6_tail`].
const V6_PORT_MASK: u32 = 0xffff;

#[inline(always)]
fn index(geo: Geometry, h: u64) -> u32 {
    geo.base() + h.wrapping_shr(geo.shift()) as u32
}

#[inline(always)]
fn internal<const COUNT: bool>() {
    // A bucket index outside the array: the loader wrote a bad geometry.
    if COUNT {
        counters::global_inc(global::INTERNAL);
    }
}

#[inline(always)]
fn v4_bucket<const COUNT: bool>(geo: Geometry, h: u64) -> Option<*const V4Bucket> {
    let b = LVS_V4.get_ptr(index(geo, h));
    if b.is_none() {
        internal::<COUNT>();
    }
    b
}

#[inline(always)]
fn v6_bucket<const COUNT: bool>(geo: Geometry, h: u64) -> Option<*const V6Bucket> {
    let b = LVS_V6.get_ptr(index(geo, h));
    if b.is_none() {
        internal::<COUNT>();
    }
    b
}

#[inline(always)]
fn scan_v4(b: *const V4Bucket, kl: &KeepLine, key: u64) -> Option<Hit> {
    // SAFETY: a value of the array.
    let e = unsafe { &(*b).e };
    // Compare the four keys first, then read the one entry that matched.
    let i = if e[0].key == key {
        0
    } else if e[1].key == key {
        1
    } else if e[2].key == key {
        2
    } else if e[3].key == key {
        3
    } else {
        return None;
    };
    let e = &e[i];
    Some(hit(kl, e.mark, e.meta))
}

/// An entry that matched: its mark, the keep word of its mask class, its slot.
#[inline(always)]
fn hit(kl: &KeepLine, mark: u32, meta: u32) -> Hit {
    Hit {
        mark,
        keep: kl.keep[((meta >> META_CLASS_SHIFT) & META_CLASS_BITS) as usize],
        slot: meta & META_SLOT_MASK,
        any_port: false,
    }
}

#[inline(always)]
fn scan_v6(b: *const V6Bucket, kl: &KeepLine, w0: u64, w1: u64, tail: u32) -> Option<Hit> {
    // SAFETY: a value of the array.
    let e = unsafe { &(*b).e };
    for e in e {
        if e.addr[0] == w0 && e.addr[1] == w1 && e.tail == tail {
            return Some(hit(kl, e.mark, e.meta));
        }
    }
    None
}

#[inline(always)]
fn probe_v4<const COUNT: bool>(gc: &GenControl, kl: &KeepLine, key: u64) -> Option<Hit> {
    let geo = gc.v4;
    let b1 = v4_bucket::<COUNT>(geo, v4_hash(key, gc.hash[0]))?;
    if let Some(h) = scan_v4(b1, kl, key) {
        return Some(h);
    }
    // SAFETY: a value of the array.
    if unsafe { (*b1).e[0].meta } & BUCKET_SPILLED == 0 {
        return None;
    }
    let b2 = v4_bucket::<COUNT>(geo, v4_hash(key, gc.hash[1]))?;
    scan_v4(b2, kl, key)
}

#[inline(always)]
fn probe_v6<const COUNT: bool>(
    gc: &GenControl,
    kl: &KeepLine,
    w0: u64,
    w1: u64,
    tail: u32,
) -> Option<Hit> {
    let geo = gc.v6;
    let b1 = v6_bucket::<COUNT>(geo, v6_hash(w0, w1, tail, gc.hash[0]))?;
    if let Some(h) = scan_v6(b1, kl, w0, w1, tail) {
        return Some(h);
    }
    // SAFETY: a value of the array.
    if unsafe { (*b1).e[0].meta } & BUCKET_SPILLED == 0 {
        return None;
    }
    let b2 = v6_bucket::<COUNT>(geo, v6_hash(w0, w1, tail, gc.hash[1]))?;
    scan_v6(b2, kl, w0, w1, tail)
}

/// The table datapath.
pub struct Table;

impl Backend for Table {
    #[inline(always)]
    fn find_v4<const COUNT: bool>(
        gc: &GenControl,
        kl: &KeepLine,
        _g: u32,
        key: u64,
        has_port: bool,
    ) -> Option<Hit> {
        if has_port {
            if let Some(h) = probe_v4::<COUNT>(gc, kl, key) {
                return Some(h);
            }
        }
        if !gc.v4.any_port() {
            return None;
        }
        probe_v4::<COUNT>(gc, kl, key & !V4_PORT_MASK).map(|h| Hit {
            any_port: true,
            ..h
        })
    }

    #[inline(always)]
    fn find_v6<const COUNT: bool>(
        gc: &GenControl,
        kl: &KeepLine,
        _g: u32,
        w0: u64,
        w1: u64,
        tail: u32,
        has_port: bool,
    ) -> Option<Hit> {
        if has_port {
            if let Some(h) = probe_v6::<COUNT>(gc, kl, w0, w1, tail) {
                return Some(h);
            }
        }
        if !gc.v6.any_port() {
            return None;
        }
        probe_v6::<COUNT>(gc, kl, w0, w1, tail & !V6_PORT_MASK).map(|h| Hit {
            any_port: true,
            ..h
        })
    }

    #[inline(always)]
    fn is_peer(gc: &GenControl, _g: u32, mac: u64) -> bool {
        let p = &gc.peers;
        if mac == p[0] || mac == p[1] || mac == p[2] || mac == p[3] {
            return true;
        }
        if p[3] & PEERS_IN_TABLE == 0 {
            return false;
        }
        // More peers than fit inline: `p[1..3]` are the peer filter; a MAC whose bit is
        // clear is no peer, without reading the table.
        let b = peer_filter_bit(mac, gc.hash[0]);
        let w = if b & 64 == 0 { p[1] } else { p[2] };
        (w >> (b & 63)) & 1 != 0 && in_peer_table(gc, Geometry(p[3] as u32), mac)
    }
}

#[inline(always)]
fn peer_bucket(geo: Geometry, h: u64) -> Option<*const PeerBucket> {
    LVS_PEER_TABLE.get_ptr(index(geo, h))
}

#[inline(always)]
fn scan_peers(b: *const PeerBucket, mac: u64) -> bool {
    // SAFETY: a value of the array.
    let m = unsafe { &(*b).mac };
    mac == m[1]
        || mac == m[2]
        || mac == m[3]
        || mac == m[4]
        || mac == m[5]
        || mac == m[6]
        || mac == m[7]
}

/// `mac` in the generation's peer table (generations with more peers than fit inline).
/// Same scheme as the VIP tables, with the same multipliers.
#[inline(always)]
fn in_peer_table(gc: &GenControl, geo: Geometry, mac: u64) -> bool {
    let Some(b1) = peer_bucket(geo, mac.wrapping_mul(gc.hash[0])) else {
        return false;
    };
    if scan_peers(b1, mac) {
        return true;
    }
    // SAFETY: a value of the array.
    if unsafe { (*b1).mac[0] } & PEER_BUCKET_SPILLED == 0 {
        return false;
    }
    match peer_bucket(geo, mac.wrapping_mul(gc.hash[1])) {
        Some(b2) => scan_peers(b2, mac),
        None => false,
    }
}

use std::collections::BTreeSet;

use lvs_ebpf_common::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};

use super::*;

fn v4(i: u32, port: u16, proto: u8) -> VipKey {
    VipKey::v4((0x0a00_0000 | i).to_be_bytes(), port, proto)
}

fn v6(i: u32, port: u16) -> VipKey {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[12..].copy_from_slice(&i.to_be_bytes());
    VipKey::v6(a, port, PROTO_TCP)
}

fn entries(keys: &[VipKey]) -> Vec<VipEntry> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| VipEntry {
            key: *k,
            mark: 0x1000 + i as u32,
            slot: i as u32,
            class: i as u32 % 16,
        })
        .collect()
}

/// Every entry is found with its mark and slot, and nothing else is found.
fn check_all_found(t: &Tables, es: &[VipEntry]) {
    for e in es {
        let (found, _) = lookup(t, &e.key);
        assert_eq!(found, Some((e.mark, e.slot)), "{:?} not found", e.key);
    }
    let installed: BTreeSet<VipKey> = es.iter().map(|e| e.key).collect();
    for i in 0..2000u32 {
        for k in [v4(0x80_0000 | i, 80, PROTO_TCP), v6(0x8000_0000 | i, 80)] {
            if !installed.contains(&k) {
                assert_eq!(lookup(t, &k).0, None, "{k:?} found but not installed");
            }
        }
    }
    // The tables hold exactly the entries, each once.
    let mut listed: Vec<VipEntry> = entries_v4(&t.v4.buckets)
        .chain(entries_v6(&t.v6.buckets))
        .collect();
    listed.sort_by_key(|e| e.slot);
    let mut want = es.to_vec();
    want.sort_by_key(|e| e.slot);
    assert_eq!(listed, want);
}

/// Every entry sits in one of its two candidate buckets, and the buckets flagged as
/// spilled are exactly the first buckets of entries placed in their second one.
/// `placed`: (bucket, first-bucket hash, second-bucket hash) of every entry; `flagged`:
/// each bucket's spill flag. Returns how many entries sit in their second bucket.
fn check_spills(log2: u32, placed: &[(usize, u64, u64)], flagged: &[bool]) -> usize {
    let shift = 64 - log2;
    let mut want = vec![false; flagged.len()];
    let mut second = 0;
    for &(b, h1, h2) in placed {
        let (first, other) = ((h1 >> shift) as usize, (h2 >> shift) as usize);
        assert!(
            b == first || b == other,
            "entry in a bucket it does not hash to"
        );
        if b != first {
            want[first] = true;
            second += 1;
        }
    }
    assert_eq!(flagged, want, "spill flags");
    second
}

/// [`check_spills`] for both families of `t`; the flag is only ever on an entry 0.
fn check_spill_flags(t: &Tables) {
    let mut placed = Vec::new();
    for (b, bucket) in t.v4.buckets.iter().enumerate() {
        for e in bucket.e.iter().filter(|e| e.key != 0) {
            placed.push((b, v4_hash(e.key, t.hash[0]), v4_hash(e.key, t.hash[1])));
        }
        assert!(bucket.e[1..].iter().all(|e| e.meta & BUCKET_SPILLED == 0));
    }
    let flagged: Vec<bool> =
        t.v4.buckets
            .iter()
            .map(|b| b.e[0].meta & BUCKET_SPILLED != 0)
            .collect();
    check_spills(t.v4.log2, &placed, &flagged);
    let mut placed = Vec::new();
    for (b, bucket) in t.v6.buckets.iter().enumerate() {
        for e in bucket.e.iter().filter(|e| e.addr != [0, 0] || e.tail != 0) {
            let h = |a| v6_hash(e.addr[0], e.addr[1], e.tail, a);
            placed.push((b, h(t.hash[0]), h(t.hash[1])));
        }
        assert!(bucket.e[1..].iter().all(|e| e.meta & BUCKET_SPILLED == 0));
    }
    let flagged: Vec<bool> =
        t.v6.buckets
            .iter()
            .map(|b| b.e[0].meta & BUCKET_SPILLED != 0)
            .collect();
    check_spills(t.v6.log2, &placed, &flagged);
}

#[test]
fn every_key_is_found_at_every_size() {
    for n in [0usize, 1, 2, 3, 4, 5, 9, 100, 1000, 10_000] {
        let mut keys: Vec<VipKey> = (0..n as u32).map(|i| v4(i, 80, PROTO_TCP)).collect();
        keys.extend((0..n as u32).map(|i| v6(i, 443)));
        let es = entries(&keys);
        let t = build(&es).expect("build");
        check_all_found(&t, &es);
        check_spill_flags(&t);
    }
}

#[test]
fn full_capacity_of_both_families() {
    let n = lvs_ebpf_common::MAX_VIPS;
    for keys in [
        (0..n).map(|i| v4(i, 80, PROTO_TCP)).collect::<Vec<_>>(),
        (0..n).map(|i| v6(i, 80)).collect::<Vec<_>>(),
    ] {
        let es = entries(&keys);
        let t = build(&es).expect("MAX_VIPS VIPs of one family fit");
        for e in es.iter().step_by(97) {
            assert_eq!(lookup(&t, &e.key).0, Some((e.mark, e.slot)));
        }
        assert!(t.v4.len() as u32 <= V4_GEN_BUCKETS && t.v6.len() as u32 <= V6_GEN_BUCKETS);
    }
}

#[test]
fn size_follows_the_vip_count_with_headroom() {
    for n in [1usize, 2, 7, 8, 9, 100, 1000, 4096, 5000] {
        let keys: Vec<VipKey> = (0..n as u32).map(|i| v4(i, 80, PROTO_TCP)).collect();
        let t = build(&entries(&keys)).expect("build");
        assert_eq!(t.rebuilds, 0, "{n} keys needed a rebuild");
        let slots = t.v4.len() * V4_PER_BUCKET;
        // Load at most 1/2, and the table is the smallest power of two that gives it.
        assert!(2 * n <= slots, "{n} keys in {slots} slots");
        assert!(
            t.v4.len() == 2 || 2 * n > slots / 2,
            "{n} keys in {slots} slots: not minimal"
        );
        assert_eq!(t.v4.len(), 1 << t.v4.log2);
        assert_eq!(t.v6.len(), 2, "no IPv6 VIPs: the smallest table");
        assert!(!t.v4.is_empty() && !t.v6.is_empty());
    }
}

/// Cuckoo placement step by step: a key goes to its first bucket while it has room,
/// else to its second bucket without displacing anyone, else it kicks an entry of its
/// first bucket to that entry's other bucket; `None` when nothing frees a place.
#[test]
fn placement_order() {
    // Candidates per key: (first, second).
    let cands = |c: &'static [(usize, usize)]| {
        move |i: usize, j: usize| if j == 0 { c[i].0 } else { c[i].1 }
    };
    assert_eq!(
        place(1, 1, 1, 8, cands(&[(0, 1)])),
        Some(vec![vec![0], vec![]])
    );
    assert_eq!(
        place(1, 1, 1, 8, cands(&[(1, 0)])),
        Some(vec![vec![], vec![0]])
    );
    // Second key: first bucket full, second free.
    assert_eq!(
        place(2, 1, 1, 8, cands(&[(0, 1), (0, 1)])),
        Some(vec![vec![0], vec![1]])
    );
    // Two entries per bucket: both keys share their first bucket.
    assert_eq!(
        place(2, 2, 1, 8, cands(&[(0, 1), (0, 1)])),
        Some(vec![vec![0, 1], vec![]])
    );
    // Third key: both candidates full; it takes key 0's place in bucket 0 and key 0
    // moves to bucket 2 (its other candidate).
    assert_eq!(
        place(3, 1, 2, 8, cands(&[(0, 2), (1, 0), (0, 1)])),
        Some(vec![vec![2], vec![1], vec![0], vec![]])
    );
    // Three keys for two one-entry buckets: no placement.
    assert_eq!(place(3, 1, 1, 8, cands(&[(0, 1), (0, 1), (0, 1)])), None);
}

#[test]
fn most_v6_lookups_read_one_bucket() {
    let keys: Vec<VipKey> = (0..5_000).map(|i| v6(i * 7919, 80)).collect();
    let t = build(&entries(&keys)).expect("build");
    let one = keys.iter().filter(|k| lookup(&t, k).1 == 1).count();
    assert!(
        one * 100 >= keys.len() * 95,
        "{one} of {} in one bucket",
        keys.len()
    );
    let misses = (0..2_000u32)
        .map(|i| v6(0x4000_0000 + i, 81))
        .filter(|k| lookup(&t, k).1 == 1)
        .count();
    assert!(misses >= 1_800, "{misses} of 2000 misses in one bucket");
}

#[test]
fn most_lookups_read_one_bucket() {
    let keys: Vec<VipKey> = (0..50_000).map(|i| v4(i * 7919, 80, PROTO_TCP)).collect();
    let t = build(&entries(&keys)).expect("build");
    let one = keys.iter().filter(|k| lookup(&t, k).1 == 1).count();
    assert!(
        one * 100 >= keys.len() * 95,
        "{one} of {} in one bucket",
        keys.len()
    );
    // A miss usually reads one bucket too.
    let misses = (0..10_000u32)
        .map(|i| v4(0x40_0000 + i, 81, PROTO_TCP))
        .filter(|k| lookup(&t, k).1 == 1)
        .count();
    assert!(misses >= 9_000, "{misses} of 10000 misses in one bucket");
}

#[test]
fn deterministic() {
    let keys: Vec<VipKey> = (0..3000)
        .map(|i| v4(i, (i % 7) as u16, PROTO_UDP))
        .collect();
    let es = entries(&keys);
    assert_eq!(build(&es), build(&es));
}

#[test]
fn many_ports_on_one_address_and_every_protocol() {
    let mut keys = Vec::new();
    for port in 0..3000u16 {
        for proto in [PROTO_TCP, PROTO_UDP, PROTO_SCTP] {
            keys.push(v4(1, port, proto));
        }
    }
    keys.extend((0..3000u16).map(|p| v6(1, p)));
    let es = entries(&keys);
    let t = build(&es).expect("build");
    check_all_found(&t, &es);
    assert!(
        t.v4.any_port && t.v6.any_port,
        "port 0 entries are any-port VIPs"
    );
}

#[test]
fn any_port_flag_per_family() {
    let t = build(&entries(&[v4(1, 0, PROTO_TCP), v6(1, 80)])).expect("build");
    assert!(t.v4.any_port && !t.v6.any_port);
    let t = build(&entries(&[v4(1, 80, PROTO_TCP), v6(1, 0)])).expect("build");
    assert!(!t.v4.any_port && t.v6.any_port);
}

#[test]
fn failed_placement_rebuilds_with_new_multipliers_then_more_buckets() {
    let keys: Vec<VipKey> = (0..1024).map(|i| v4(i, 80, PROTO_TCP)).collect();
    let es = entries(&keys);
    // No kicks and a full load: the first multipliers fail, later ones or a larger
    // table succeed; the result is still exact.
    let p = Params {
        headroom: 1,
        max_kicks: 0,
        reseeds: 2,
        ..Params::default()
    };
    let t = build_with(&es, &p).expect("build");
    assert!(t.rebuilds > 0, "expected a rebuild");
    assert!(
        t.v4.log2 > buckets_log2(1024, V4_PER_BUCKET, 1),
        "expected growth"
    );
    check_all_found(&t, &es);
    check_spill_flags(&t);
    // With kicks a 95% load is reachable at the minimal size.
    let p = Params {
        headroom: 1,
        ..Params::default()
    };
    let es = &es[..972];
    let t = build_with(es, &p).expect("build");
    assert_eq!(t.v4.log2, 8, "972 keys in 256 buckets of 4");
    check_all_found(&t, es);
    check_spill_flags(&t);
}

#[test]
fn too_many_for_the_limit_is_an_error() {
    let keys: Vec<VipKey> = (0..9).map(|i| v4(i, 80, PROTO_TCP)).collect();
    let p = Params {
        max_v4_buckets: 2,
        headroom: 1,
        ..Params::default()
    };
    assert_eq!(
        build_with(&entries(&keys), &p),
        Err(TableError::TooMany {
            family: 4,
            count: 9,
            max_buckets: 2
        })
    );
    // Eight fit two buckets of four at full load.
    let t = build_with(&entries(&keys[..8]), &p).expect("8 fit");
    check_all_found(&t, &entries(&keys[..8]));
}

/// The largest slot and class fit the entry's meta word; one more does not.
#[test]
fn slot_and_class_bounds() {
    let mut es = entries(&[v4(1, 80, PROTO_TCP)]);
    es[0].slot = META_SLOT_MASK;
    es[0].class = META_CLASS_BITS;
    let t = build(&es).expect("the largest slot and class");
    assert_eq!(lookup(&t, &es[0].key).0, Some((es[0].mark, META_SLOT_MASK)));
    es[0].slot = META_SLOT_MASK + 1;
    assert_eq!(build(&es), Err(TableError::BadSlot(META_SLOT_MASK + 1)));
    es[0].slot = 0;
    es[0].class = META_CLASS_BITS + 1;
    assert_eq!(build(&es), Err(TableError::BadClass(META_CLASS_BITS + 1)));
}

#[test]
fn duplicates_and_bad_slots_are_rejected() {
    let mut es = entries(&[v4(1, 80, PROTO_TCP), v4(1, 80, PROTO_TCP)]);
    assert!(matches!(build(&es), Err(TableError::Duplicate(_))));
    es.pop();
    es[0].slot = META_SLOT_MASK + 1;
    assert!(matches!(build(&es), Err(TableError::BadSlot(_))));
}

#[test]
fn multipliers_are_odd_and_distinct() {
    let mut seen = BTreeSet::new();
    for attempt in 0..100 {
        let [a, b] = multipliers(Params::default().seed, attempt);
        assert!(a & 1 == 1 && b & 1 == 1 && a != b);
        assert!(seen.insert(a) && seen.insert(b));
    }
}

/// The multipliers come from splitmix64 (Vigna's reference: seed 0 gives
/// 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f, ...), made odd.
#[test]
fn multipliers_are_splitmix64() {
    assert_eq!(
        multipliers(0, 0),
        [0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f5]
    );
    // The attempt-th pair starts from the seed XOR attempt x 0xd6e8feb86659fd93.
    let seed = Params::default().seed;
    let mut s = seed;
    assert_eq!(
        multipliers(seed, 0),
        [splitmix64(&mut s) | 1, splitmix64(&mut s) | 1]
    );
    let mut s = seed ^ 0xd6e8_feb8_6659_fd93;
    assert_eq!(
        multipliers(seed, 1),
        [splitmix64(&mut s) | 1, splitmix64(&mut s) | 1]
    );
    let mut s = 0u64;
    let seq: Vec<u64> = (0..3).map(|_| splitmix64(&mut s)).collect();
    assert_eq!(
        seq,
        [
            0xe220_a839_7b1d_cdaf,
            0x6e78_9e6a_a1b9_65f4,
            0x06c4_5d18_8009_454f
        ]
    );
}

#[test]
fn generations_take_aligned_halves() {
    assert_eq!(generation_base(V4_GEN_BUCKETS * 2, 0), 0);
    assert_eq!(generation_base(V4_GEN_BUCKETS * 2, 1), V4_GEN_BUCKETS);
    assert_eq!(generation_base(1000, 1) % GEOMETRY_BASE_ALIGN, 0);
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x50, b[0], b[1], b[2], b[3]]
}

/// Every MAC of `macs` is found, reading one bucket when it sits in its first one; the
/// MACs `mac(from..from + 5000)` are not found (one bucket unless their first bucket
/// spilled); the spill flags are exactly the first buckets of MACs placed in their
/// second bucket. Returns how many MACs sit in their second bucket.
fn check_peers(t: &FamilyTable<PeerBucket>, a: [u64; 2], macs: &[[u8; 6]], from: u32) -> usize {
    let shift = 64 - t.log2;
    let first_of = |w: u64| (w.wrapping_mul(a[0]) >> shift) as usize;
    let spilled = |b: usize| t.buckets[b].mac[0] & PEER_BUCKET_SPILLED != 0;
    for m in macs {
        let (found, read) = lookup_peer(t, a, *m);
        assert!(found, "{m:02x?} not found");
        let first = first_of(mac_word(*m));
        let in_first = t.buckets[first].mac[1..].contains(&mac_word(*m));
        assert_eq!(read, if in_first { 1 } else { 2 }, "{m:02x?}");
    }
    for i in from..from + 5000 {
        let (found, read) = lookup_peer(t, a, mac(i));
        assert!(!found, "non-peer found");
        let first = first_of(mac_word(mac(i)));
        assert_eq!(read, if spilled(first) { 2 } else { 1 });
    }
    let mut placed = Vec::new();
    for (b, bucket) in t.buckets.iter().enumerate() {
        for &w in bucket.mac[1..]
            .iter()
            .filter(|&&w| w != lvs_ebpf_common::NO_PEER)
        {
            placed.push((b, w.wrapping_mul(a[0]), w.wrapping_mul(a[1])));
        }
    }
    let flagged: Vec<bool> = t
        .buckets
        .iter()
        .map(|b| b.mac[0] & PEER_BUCKET_SPILLED != 0)
        .collect();
    check_spills(t.log2, &placed, &flagged)
}

#[test]
fn every_peer_is_found_and_no_other_mac() {
    let a = multipliers(Params::default().seed, 0);
    for n in [5u32, 8, 50, 1024] {
        let macs: Vec<[u8; 6]> = (0..n).map(mac).collect();
        let t = build_peers(&macs, a, &Params::default()).expect("peers fit");
        assert!(t.buckets.len() as u32 <= PEER_GEN_BUCKETS);
        check_peers(&t, a, &macs, n);
    }
}

/// At full load (headroom 1) MACs spill to their second bucket and are still found; with
/// no kicks allowed the table grows until every MAC has a place.
#[test]
fn crowded_peer_tables_spill_and_grow() {
    let a = multipliers(Params::default().seed, 0);
    let n = PEERS_PER_BUCKET as u32 * 64;
    let macs: Vec<[u8; 6]> = (0..n).map(mac).collect();
    let full = Params {
        headroom: 1,
        ..Params::default()
    };
    let t = build_peers(&macs, a, &full).expect("peers fit");
    assert_eq!(t.log2, buckets_log2(macs.len(), PEERS_PER_BUCKET, 1));
    assert!(
        check_peers(&t, a, &macs, n) > 0,
        "no MAC in its second bucket"
    );
    let no_kicks = Params {
        headroom: 1,
        max_kicks: 0,
        ..Params::default()
    };
    let t = build_peers(&macs, a, &no_kicks).expect("peers fit a larger table");
    assert!(t.log2 > buckets_log2(macs.len(), PEERS_PER_BUCKET, 1));
    check_peers(&t, a, &macs, n);
}

#[test]
fn too_many_peers_is_an_error() {
    let a = multipliers(Params::default().seed, 0);
    let macs: Vec<[u8; 6]> = (0..15).map(mac).collect();
    let p = Params {
        max_peer_buckets: 2,
        ..Params::default()
    };
    assert_eq!(
        build_peers(&macs, a, &p),
        Err(TableError::TooManyPeers {
            count: 15,
            max_buckets: 2
        })
    );
}

/// A bijection on u32 that scatters sequential numbers (lowbias32).
fn scatter(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Sequential addresses spread evenly under multiply-shift hashing (no bucket overflows);
/// scattered ones overflow some first buckets, so keys live in their second bucket and
/// buckets are flagged.
#[test]
fn scattered_keys_use_second_buckets_and_are_all_found() {
    let mut keys: Vec<VipKey> = (1..30_000u32)
        .map(|i| VipKey::v4(scatter(i).to_be_bytes(), 80, PROTO_TCP))
        .collect();
    keys.extend((1..30_000u32).map(|i| v6(scatter(i), 443)));
    let es = entries(&keys);
    let t = build(&es).expect("build");
    check_all_found(&t, &es);
    check_spill_flags(&t);
    let second = keys.iter().filter(|k| lookup(&t, k).1 == 2).count();
    let spilled4 =
        t.v4.buckets
            .iter()
            .filter(|b| b.e[0].meta & BUCKET_SPILLED != 0)
            .count();
    let spilled6 =
        t.v6.buckets
            .iter()
            .filter(|b| b.e[0].meta & BUCKET_SPILLED != 0)
            .count();
    assert!(
        second > 0 && spilled4 > 0 && spilled6 > 0,
        "{second} {spilled4} {spilled6}"
    );
}

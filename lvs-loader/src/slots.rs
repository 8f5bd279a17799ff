//! Counter-slot planning for a config change: which per-VIP counter slot each VIP of the
//! new config uses. Pure (no maps), so every rule is unit-tested here.
//!
//! Rules: a VIP that stays keeps its slot (its counters carry over); a new VIP takes the
//! lowest slot that no live VIP uses; only when those run out (a reload replacing most of
//! a huge config) does it take over a slot of a VIP this change removes, lowest first.
//! Such a slot can only be reset after the flip, when its old VIP is no longer live.

use std::collections::HashMap;

use lvs_ebpf_common::VipKey;

/// The hash of the maps keyed by VIP (a config has up to 131,072): foldhash, seeded per
/// process.
pub type VipHasher = foldhash::fast::RandomState;
/// A set of VIP keys with [`VipHasher`].
pub type VipKeySet<'a> = std::collections::HashSet<&'a VipKey, VipHasher>;

/// Where a VIP's counter slot comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The VIP was live before: same slot, counters carry over.
    Kept,
    /// A slot no live VIP uses.
    Fresh,
    /// The slot of a VIP this change removes (only when fresh slots run out).
    Reused,
}

/// One VIP of the new config and its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub key: VipKey,
    pub index: u32,
    pub slot: Slot,
}

/// The slots of a new config, in config order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    pub vips: Vec<Planned>,
    /// Live VIPs that the new config no longer has.
    pub removed: usize,
    /// Their slots, ascending.
    pub removed_slots: Vec<u32>,
}

impl SlotPlan {
    pub fn count(&self, slot: Slot) -> usize {
        self.vips.iter().filter(|p| p.slot == slot).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("no free counter slot: {wanted} VIPs, {capacity} slots")]
    Exhausted { wanted: usize, capacity: u32 },
}

/// Plans the slots of `wanted` (the new config's VIPs, without duplicates) given the
/// live VIPs and their slots, with `capacity` slots in all.
pub fn plan<S: std::hash::BuildHasher>(
    live: &HashMap<VipKey, u32, S>,
    wanted: &[VipKey],
    capacity: u32,
) -> Result<SlotPlan, SlotError> {
    // Slots below `capacity` that a live VIP uses (the others are never handed out fresh).
    let mut used = vec![false; capacity as usize];
    for &i in live.values() {
        if let Some(u) = used.get_mut(i as usize) {
            *u = true;
        }
    }
    let mut wanted_set = VipKeySet::with_capacity_and_hasher(wanted.len(), VipHasher::default());
    wanted_set.extend(wanted);
    let mut removed: Vec<u32> = live
        .iter()
        .filter(|(k, _)| !wanted_set.contains(k))
        .map(|(_, &i)| i)
        .collect();
    removed.sort_unstable();
    removed.dedup();
    let mut fresh = (0..capacity).filter(|&i| !used[i as usize]);
    let mut reusable = removed.iter().copied();
    let mut vips = Vec::with_capacity(wanted.len());
    for key in wanted {
        let (index, slot) = match live.get(key) {
            Some(&i) => (i, Slot::Kept),
            None => match fresh.next() {
                Some(i) => (i, Slot::Fresh),
                None => match reusable.next() {
                    Some(i) => (i, Slot::Reused),
                    None => {
                        return Err(SlotError::Exhausted {
                            wanted: wanted.len(),
                            capacity,
                        });
                    }
                },
            },
        };
        vips.push(Planned {
            key: *key,
            index,
            slot,
        });
    }
    Ok(SlotPlan {
        vips,
        removed: removed.len(),
        removed_slots: removed,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn k(n: u8) -> VipKey {
        VipKey::v4([10, 0, 0, n], 80, 6)
    }

    fn live(pairs: &[(u8, u32)]) -> HashMap<VipKey, u32> {
        pairs.iter().map(|&(n, i)| (k(n), i)).collect()
    }

    fn slots(p: &SlotPlan) -> Vec<(u32, Slot)> {
        p.vips.iter().map(|v| (v.index, v.slot)).collect()
    }

    #[test]
    fn first_config_takes_the_lowest_slots_in_order() {
        let p = plan(&HashMap::new(), &[k(1), k(2), k(3)], 8).unwrap();
        assert_eq!(
            slots(&p),
            vec![(0, Slot::Fresh), (1, Slot::Fresh), (2, Slot::Fresh)]
        );
        assert_eq!(p.removed, 0);
        assert_eq!(p.vips[1].key, k(2));
    }

    #[test]
    fn kept_vips_keep_their_slot_and_new_ones_skip_used_slots() {
        // Live: 1 -> 0, 2 -> 1, 3 -> 2. New: 3, 4, 1 (2 removed).
        let p = plan(&live(&[(1, 0), (2, 1), (3, 2)]), &[k(3), k(4), k(1)], 8).unwrap();
        assert_eq!(
            slots(&p),
            vec![(2, Slot::Kept), (3, Slot::Fresh), (0, Slot::Kept)]
        );
        assert_eq!(p.removed, 1);
        assert_eq!(p.removed_slots, vec![1]);
        assert_eq!((p.count(Slot::Kept), p.count(Slot::Fresh)), (2, 1));
    }

    #[test]
    fn removed_slots_are_reused_only_when_fresh_ones_run_out() {
        // Capacity 4; live 1 -> 0, 2 -> 3. New: 5, 6, 7 (both live ones removed).
        let p = plan(&live(&[(1, 0), (2, 3)]), &[k(5), k(6), k(7)], 4).unwrap();
        assert_eq!(
            slots(&p),
            vec![(1, Slot::Fresh), (2, Slot::Fresh), (0, Slot::Reused)]
        );
        assert_eq!(p.removed, 2);
        assert_eq!(
            p.removed_slots,
            vec![0, 3],
            "the removed VIPs' slots, ascending"
        );
        // Reused lowest first.
        let p = plan(&live(&[(1, 3), (2, 0)]), &[k(5), k(6), k(7), k(8)], 4).unwrap();
        assert_eq!(
            slots(&p),
            vec![
                (1, Slot::Fresh),
                (2, Slot::Fresh),
                (0, Slot::Reused),
                (3, Slot::Reused)
            ]
        );
    }

    #[test]
    fn a_kept_vips_slot_is_never_reused() {
        // Capacity 2, live 1 -> 0, 2 -> 1; new 1, 3: 3 can only take 2's slot.
        let p = plan(&live(&[(1, 0), (2, 1)]), &[k(1), k(3)], 2).unwrap();
        assert_eq!(slots(&p), vec![(0, Slot::Kept), (1, Slot::Reused)]);
        // New 1, 3, 4: no slot for 4.
        assert_eq!(
            plan(&live(&[(1, 0), (2, 1)]), &[k(1), k(3), k(4)], 2),
            Err(SlotError::Exhausted {
                wanted: 3,
                capacity: 2
            })
        );
    }

    #[test]
    fn exactly_full_is_fine_and_one_more_is_not() {
        let keys: Vec<VipKey> = (0..4).map(k).collect();
        assert!(plan(&HashMap::new(), &keys, 4).is_ok());
        let keys: Vec<VipKey> = (0..5).map(k).collect();
        assert!(plan(&HashMap::new(), &keys, 4).is_err());
        assert_eq!(plan(&HashMap::new(), &[], 0).map(|p| p.vips.len()), Ok(0));
    }

    #[test]
    fn every_slot_is_distinct() {
        let l: HashMap<VipKey, u32> = (0..50u8).map(|n| (k(n), u32::from(n) * 2)).collect();
        let wanted: Vec<VipKey> = (25..100u8).map(k).collect();
        let p = plan(&l, &wanted, 100).unwrap();
        let distinct: BTreeSet<u32> = p.vips.iter().map(|v| v.index).collect();
        assert_eq!(distinct.len(), wanted.len());
        assert!(p.vips.iter().all(|v| v.index < 100));
    }
}

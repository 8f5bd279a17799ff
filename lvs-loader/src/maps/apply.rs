//! The atomic generation switch used by attach and reload: [`MapSet::apply_with`] empties
//! and fills the standby generation, describes it, flips `LVS_CONTROL`, then does the
//! post-flip work; also the table building and mask classes it needs.

use std::collections::HashMap as StdHashMap;

use aya::maps::{HashMap, MapData, MapError};
use lvs_ebpf_common::{
    GenControl, Geometry, KeepLine, MASK_CLASSES, MAX_NAME_LEN, MAX_PEERS, NO_PEER, PEERS_IN_TABLE,
    PEERS_INLINE, VipInfo, VipKey, VipValue, mac_word, map_names, peer_filter,
};

use super::{MapSet, MappedTables, VipMaps, batched};
use crate::{
    config::Config,
    error::{Error, Result},
    failpoint,
    slots::{self, Slot},
    table::{self, VipEntry},
};

/// Counter slots to reset after a flip: (slot, the name and order of its new VIP).
pub type PostFlip = Vec<(u32, VipInfo)>;

/// What `apply` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub generation: u32,
    pub vips: usize,
    pub peers: usize,
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
}

impl MapSet {
    /// Installs `config` atomically (see [`MapSet::apply_with`]).
    /// The generation gets the stamp after the highest one in the control value.
    pub fn apply(&mut self, config: &Config) -> Result<ApplyReport> {
        let c = self.read_control()?;
        let serial = u64::from(c.stamp(0).max(c.stamp(1))) + 1;
        self.apply_with(config, serial, |_, _, _| Ok(()))
    }

    /// Installs `config` atomically.
    ///
    /// The standby generation is emptied and filled, counters of new VIPs are zeroed,
    /// `before_flip` runs (the caller records what the standby generation now holds, and
    /// the post-flip work, so that a crash anywhere leaves a truthful record), then one
    /// write to `LVS_CONTROL` makes it live. A VIP present before and after keeps its
    /// counter slot and is matched by every packet throughout; any failure before the flip
    /// leaves the live datapath untouched. `serial` is the config's serial in the
    /// attachment's record: its low 32 bits become the generation's stamp
    /// ([`Control::stamp`](lvs_ebpf_common::Control::stamp)), which trace events carry.
    pub fn apply_with(
        &mut self,
        config: &Config,
        serial: u64,
        before_flip: impl FnOnce(&mut Self, &ApplyReport, &PostFlip) -> Result<()>,
    ) -> Result<ApplyReport> {
        let capacity = self.capacity()?;
        if config.vips.len() > capacity as usize || config.peers.len() > MAX_PEERS as usize {
            return Err(Error::Map {
                map: map_names::VIPS[0],
                what: format!(
                    "{} VIPs / {} peers exceed the maps' capacity ({capacity} / {MAX_PEERS})",
                    config.vips.len(),
                    config.peers.len()
                ),
                source: None,
            });
        }
        let live = self.active_generation()?;
        let standby = live ^ 1;

        let live_entries = self.vip_entries(live)?;
        let mut live_vips: StdHashMap<VipKey, u32, slots::VipHasher> =
            StdHashMap::with_capacity_and_hasher(live_entries.len(), Default::default());
        live_vips.extend(live_entries.into_iter().map(|(k, v)| (k, v.index)));
        let new_keys: Vec<VipKey> = config.vips.iter().map(|v| v.key()).collect();
        let plan = slots::plan(&live_vips, &new_keys, capacity).map_err(|e| Error::Map {
            map: map_names::VIP_STATS,
            what: e.to_string(),
            source: None,
        })?;
        let assignment: Vec<(VipKey, VipValue, Slot)> = plan
            .vips
            .iter()
            .zip(&config.vips)
            .map(|(p, vip)| {
                (
                    p.key,
                    VipValue {
                        mark: vip.mark,
                        index: p.index,
                        mask: vip.mark_mask,
                    },
                    p.slot,
                )
            })
            .collect();

        // 1. Empty the standby generation (the tables' region is overwritten whole).
        if !self.has_tables() {
            let stale = self.vip_entries(standby)?;
            let name = map_names::VIPS[standby as usize];
            let mut m = self.vips_map(standby)?;
            for (k, _) in stale {
                remove_ignoring_missing(&mut m, &k).map_err(|e| Error::map(name, "delete", e))?;
            }
        }
        {
            let stale = self.peer_entries(standby)?;
            let name = map_names::PEERS[standby as usize];
            let mut m = self.peers_map(standby)?;
            for k in stale {
                match m.remove(&k) {
                    Ok(()) | Err(MapError::KeyNotFound) => {}
                    Err(e) => return Err(Error::map(name, "delete", e)),
                }
            }
        }

        failpoint::hit("apply:standby-emptied");

        // 2. Counters of fresh slots start at zero; names and order of every slot that no
        // live VIP uses.
        self.reset_slots(config, &assignment)?;
        failpoint::hit("apply:slots-reset");

        // 3. Fill the standby generation.
        let mut standby_control = GenControl::default();
        let (standby_keep, classes) = mask_classes(config)?;
        if self.has_tables() {
            let entries: Vec<VipEntry> = assignment
                .iter()
                .zip(&classes)
                .map(|((key, v, _), class)| VipEntry {
                    key: *key,
                    mark: v.mark,
                    slot: v.index,
                    class: *class,
                })
                .collect();
            self.fill_tables(standby, &entries, config, &mut standby_control)?;
        } else {
            let any_port = |family| {
                config
                    .vips
                    .iter()
                    .any(|v| v.port.is_none() && v.key().family == family)
            };
            standby_control.v4 = Geometry::new(0, 1, any_port(lvs_ebpf_common::FAMILY_V4));
            standby_control.v6 = Geometry::new(0, 1, any_port(lvs_ebpf_common::FAMILY_V6));
            let name = map_names::VIPS[standby as usize];
            let keys: Vec<VipKey> = assignment.iter().map(|(k, _, _)| *k).collect();
            let values: Vec<VipValue> = assignment.iter().map(|(_, v, _)| *v).collect();
            let VipMaps::Htab(maps) = &self.vips else {
                unreachable!("checked by has_tables")
            };
            if !batched(&maps[standby as usize], name, &keys, &values, 1)? {
                let mut m = self.vips_map(standby)?;
                for (k, v) in keys.iter().zip(&values) {
                    m.insert(k, v, 0)
                        .map_err(|e| Error::map(name, "insert", e))?;
                }
            }
        }
        {
            let name = map_names::PEERS[standby as usize];
            let mut m = self.peers_map(standby)?;
            for (i, p) in config.peers.iter().enumerate() {
                m.insert(p.key(), i as u32, 0)
                    .map_err(|e| Error::map(name, "insert", e))?;
            }
        }

        failpoint::hit("apply:standby-filled");

        // 4. Describe the standby generation in its control line (the live line and the
        // selector are rewritten with the bytes they hold; no packet reads this line).
        let mut control = self.read_control()?;
        control.lines[standby as usize].generation = standby_control;
        control.keep[standby as usize] = standby_keep;
        control.set_stamp(standby, lvs_ebpf_common::stamp_of(serial));
        self.write_control(&control, "write")?;

        let kept = plan.count(Slot::Kept);
        let report = ApplyReport {
            generation: standby,
            vips: assignment.len(),
            peers: config.peers.len(),
            added: assignment.len() - kept,
            removed: plan.removed,
            kept,
        };
        let post_flip = self.post_flip_work(config, &assignment);
        before_flip(self, &report, &post_flip)?;
        failpoint::hit("apply:described");

        // 5. Flip: a second update of the control value that changes the selector alone,
        // atomic for every packet. The tables written through the mapping are visible
        // before it.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        control.lines[0].active = standby;
        self.write_control(&control, "switch generation")?;
        failpoint::hit("apply:flipped");

        // 6. The counts of removed VIPs move to the retired slot (so totals never go
        // backwards), then slots taken over from removed VIPs start counting for their
        // new VIP.
        self.retire_slots(&plan.removed_slots)?;
        self.finish_post_flip(&post_flip)?;
        self.fresh = false;
        Ok(report)
    }

    /// The reused slots of `assignment` with their new VIP's name and order.
    fn post_flip_work(&self, config: &Config, assignment: &[(VipKey, VipValue, Slot)]) -> PostFlip {
        config
            .vips
            .iter()
            .zip(assignment)
            .enumerate()
            .filter(|(_, (_, (_, _, slot)))| *slot == Slot::Reused)
            .map(|(order, (vip, (_, v, _)))| (v.index, vip_info(order, vip.name.as_deref())))
            .collect()
    }

    /// Zeroes the counters of `work`'s slots and writes their names: the part of an apply
    /// that comes after the flip (also run by recovery after a crash right after a flip).
    pub fn finish_post_flip(&mut self, work: &PostFlip) -> Result<()> {
        if work.is_empty() {
            return Ok(());
        }
        let slots: Vec<u32> = work.iter().map(|(i, _)| *i).collect();
        let infos: Vec<VipInfo> = work.iter().map(|(_, v)| *v).collect();
        self.zero_counters(&slots)?;
        self.write_infos(&slots, &infos)
    }

    /// Zeroes the counters of the fresh slots (fresh maps are zero already) and writes
    /// name and order of every new or kept VIP. Reused slots are left to
    /// [`MapSet::finish_post_flip`]: their old VIP is still live.
    fn reset_slots(
        &mut self,
        config: &Config,
        assignment: &[(VipKey, VipValue, Slot)],
    ) -> Result<()> {
        let mut zero_slots: Vec<u32> = Vec::new();
        let mut info_slots: Vec<u32> = Vec::new();
        let mut infos: Vec<VipInfo> = Vec::new();
        for (order, (vip, (_, v, slot))) in config.vips.iter().zip(assignment).enumerate() {
            if *slot == Slot::Reused {
                continue;
            }
            if *slot == Slot::Fresh && !self.fresh {
                zero_slots.push(v.index);
            }
            info_slots.push(v.index);
            infos.push(vip_info(order, vip.name.as_deref()));
        }
        self.zero_counters(&zero_slots)?;
        self.write_infos(&info_slots, &infos)
    }

    /// Builds the tables of `entries` and of the peers of `config`, writes them into
    /// generation `g`'s regions of the table arrays and describes them in `gc`.
    fn fill_tables(
        &mut self,
        g: u32,
        entries: &[VipEntry],
        config: &Config,
        gc: &mut GenControl,
    ) -> Result<()> {
        let MappedTables { v4, v6, peers } = self.mapped()?;
        let (n4, n6, np) = (v4.len() as u32, v6.len() as u32, peers.len() as u32);
        let params = table::Params {
            max_v4_buckets: table_half(n4),
            max_v6_buckets: table_half(n6),
            max_peer_buckets: table_half(np),
            ..table::Params::default()
        };
        let failed = |map: &'static str| {
            move |e: table::TableError| Error::Map {
                map,
                what: e.to_string(),
                source: None,
            }
        };
        let t = table::build_with(entries, &params).map_err(failed(map_names::V4_TABLE))?;
        let (b4, b6) = (table::generation_base(n4, g), table::generation_base(n6, g));
        let past = |name: &'static str| {
            move |r: std::ops::Range<usize>| Error::Map {
                map: name,
                what: format!("buckets {r:?} past the array"),
                source: None,
            }
        };
        v4.write(b4 as usize, &t.v4.buckets)
            .map_err(past(map_names::V4_TABLE))?;
        v6.write(b6 as usize, &t.v6.buckets)
            .map_err(past(map_names::V6_TABLE))?;
        gc.hash = t.hash;
        gc.v4 = Geometry::new(b4, t.v4.log2, t.v4.any_port);
        gc.v6 = Geometry::new(b6, t.v6.log2, t.v6.any_port);
        let macs: Vec<[u8; 6]> = config.peers.iter().map(|p| p.mac).collect();
        gc.peers = [NO_PEER; PEERS_INLINE];
        if macs.len() <= PEERS_INLINE {
            for (w, m) in gc.peers.iter_mut().zip(&macs) {
                *w = mac_word(*m);
            }
        } else {
            // The first inline, the filter of all of them, all of them in the peer table.
            let pt = table::build_peers(&macs, t.hash, &params)
                .map_err(failed(map_names::PEER_TABLE))?;
            let bp = table::generation_base(np, g);
            peers
                .write(bp as usize, &pt.buckets)
                .map_err(past(map_names::PEER_TABLE))?;
            gc.peers[0] = mac_word(macs[0]);
            let [f0, f1] = peer_filter(macs.iter().map(|m| mac_word(*m)), t.hash[0]);
            gc.peers[1] = f0;
            gc.peers[2] = f1;
            gc.peers[PEERS_INLINE - 1] =
                PEERS_IN_TABLE | u64::from(Geometry::new(bp, pt.log2, false).0);
        }
        Ok(())
    }
}

/// The largest power of two of buckets that fits one generation's half of `total`.
fn table_half(total: u32) -> u32 {
    let half = table::generation_base(total, 1);
    if half == 0 { 0 } else { 1 << half.ilog2() }
}

/// The mask classes of `config`: the keep words (`!mask`) of a generation's
/// [`KeepLine`] and each VIP's class. Class 0 is the full mask (keep 0); the other
/// masks get classes 1.. in config order.
pub fn mask_classes(config: &Config) -> Result<(KeepLine, Vec<u32>)> {
    let mut line = KeepLine::default();
    let mut used = 1usize;
    let mut classes = Vec::with_capacity(config.vips.len());
    for v in &config.vips {
        let keep = !v.mark_mask;
        let class = if keep == 0 {
            0
        } else if let Some(c) = line.keep[1..used].iter().position(|&k| k == keep) {
            c + 1
        } else if used < MASK_CLASSES {
            line.keep[used] = keep;
            used += 1;
            used - 1
        } else {
            return Err(Error::Map {
                map: map_names::CONTROL,
                what: format!(
                    "more than {} distinct mark masks besides 0xffffffff",
                    MASK_CLASSES - 1
                ),
                source: None,
            });
        };
        classes.push(class as u32);
    }
    Ok((line, classes))
}

/// What `stats` shows for a slot: the VIP's position in its config and its name.
fn vip_info(order: usize, name: Option<&str>) -> VipInfo {
    let mut i = VipInfo {
        order: order as u32,
        ..VipInfo::default()
    };
    if let Some(name) = name {
        let b = name.as_bytes();
        let n = b.len().min(MAX_NAME_LEN);
        i.name[..n].copy_from_slice(&b[..n]);
        i.name_len = n as u32;
    }
    i
}

fn remove_ignoring_missing(
    m: &mut HashMap<&mut MapData, VipKey, VipValue>,
    k: &VipKey,
) -> Result<(), MapError> {
    match m.remove(k) {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

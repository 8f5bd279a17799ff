//! The program's maps, opened either from a freshly loaded object or from pins, and the
//! atomic generation switch used by attach and reload.

use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    path::Path,
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues},
};
use lvs_ebpf_common::{
    AttachMeta, Control, GLOBAL_BASE, GenControl, Geometry, GlobalCounters, KeepLine, MASK_CLASSES,
    MAX_NAME_LEN, MAX_PEERS, MAX_VIPS, MacKey, NO_PEER, PEERS_IN_TABLE, PEERS_INLINE, PeerBucket,
    Reason, V4Bucket, V6Bucket, VipCounters, VipInfo, VipKey, VipValue, global, mac_word,
    map_names,
};

use crate::{
    batch,
    config::Config,
    error::{Error, Result},
    failpoint,
    slots::{self, Slot},
    table::{self, VipEntry, region::Mapped},
};

/// Counter slots to reset after a flip: (slot, the name and order of its new VIP).
pub type PostFlip = Vec<(u32, VipInfo)>;

/// Where the VIPs live: the call-free tables of the attached program, or the kernel hash
/// maps of the `htab` benchmark variant.
enum VipMaps {
    Tables {
        v4: Map,
        v6: Map,
        peers: Map,
        /// The tables mapped into memory (on first use).
        mapped: Option<Box<MappedTables>>,
    },
    Htab([Map; 2]),
}

/// The table arrays, mapped into memory.
struct MappedTables {
    v4: Mapped<V4Bucket>,
    v6: Mapped<V6Bucket>,
    peers: Mapped<PeerBucket>,
}

/// Every map of one attachment.
pub struct MapSet {
    /// Maps just created by the kernel (all counters zero): no need to reset slots.
    fresh: bool,
    vips: VipMaps,
    peers: [Map; 2],
    control: Map,
    vip_stats: Map,
    global: Map,
    info: Map,
    meta: Map,
    /// Counts carried over by a growing reload (absent in pins of older lvs-loaders),
    /// mapped into memory.
    base: Option<(Map, Mapped<VipCounters>)>,
}

/// Names of all maps either variant has, which are also their pin file names.
pub const ALL_MAPS: [&str; 13] = [
    map_names::V4_TABLE,
    map_names::V6_TABLE,
    map_names::PEER_TABLE,
    map_names::VIPS[0],
    map_names::VIPS[1],
    map_names::PEERS[0],
    map_names::PEERS[1],
    map_names::CONTROL,
    map_names::VIP_STATS,
    map_names::GLOBAL_STATS,
    map_names::VIP_INFO,
    map_names::META,
    map_names::VIP_BASE,
];

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

/// One VIP as the live maps describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVip {
    pub key: VipKey,
    pub value: VipValue,
    pub info: VipInfo,
    pub counters: VipCounters,
}

fn nr_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(what, e)| Error::io(format!("reading {what}"), e))
}

impl MapSet {
    /// Takes the maps out of a just-loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let names: Vec<String> = ebpf.maps().map(|(n, _)| n.to_owned()).collect();
        let take = |name: &'static str| {
            ebpf.take_map(name).ok_or(Error::Map {
                map: name,
                what: "missing from the eBPF object".into(),
                source: None,
            })
        };
        Self::build(true, take, |n| names.iter().any(|x| x == n))
    }

    /// Opens the maps pinned in `dir`.
    pub fn from_pins(dir: &Path) -> Result<Self> {
        Self::build(false, |name| open_pin(dir, name), |n| dir.join(n).exists())
    }

    /// The `LVS_META` record pinned in `dir` (without opening the other maps).
    pub fn read_meta_pin(dir: &Path) -> Result<AttachMeta> {
        let m = open_pin(dir, map_names::META)?;
        let a = Array::<&MapData, AttachMeta>::try_from(&m)
            .map_err(|e| Error::map(map_names::META, "open", e))?;
        a.get(&0, 0)
            .map_err(|e| Error::map(map_names::META, "read", e))
    }

    /// Every map, fetched by name; `has` tells which VIP maps this variant has.
    fn build(
        fresh: bool,
        mut get: impl FnMut(&'static str) -> Result<Map>,
        has: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let vips = if has(map_names::V4_TABLE) || !has(map_names::VIPS[0]) {
            VipMaps::Tables {
                v4: get(map_names::V4_TABLE)?,
                v6: get(map_names::V6_TABLE)?,
                peers: get(map_names::PEER_TABLE)?,
                mapped: None,
            }
        } else {
            VipMaps::Htab([get(map_names::VIPS[0])?, get(map_names::VIPS[1])?])
        };
        Ok(Self {
            fresh,
            vips,
            peers: [get(map_names::PEERS[0])?, get(map_names::PEERS[1])?],
            control: get(map_names::CONTROL)?,
            vip_stats: get(map_names::VIP_STATS)?,
            global: get(map_names::GLOBAL_STATS)?,
            info: get(map_names::VIP_INFO)?,
            meta: get(map_names::META)?,
            base: if has(map_names::VIP_BASE) {
                let m = get(map_names::VIP_BASE)?;
                let mapped = Mapped::new(
                    map_data(&m).ok_or(Error::Map {
                        map: map_names::VIP_BASE,
                        what: "unexpected map type".into(),
                        source: None,
                    })?,
                    map_names::VIP_BASE,
                )?;
                Some((m, mapped))
            } else {
                None
            },
        })
    }

    fn all(&self) -> Vec<(&'static str, &Map)> {
        let mut v = match &self.vips {
            VipMaps::Tables { v4, v6, peers, .. } => vec![
                (map_names::V4_TABLE, v4),
                (map_names::V6_TABLE, v6),
                (map_names::PEER_TABLE, peers),
            ],
            VipMaps::Htab(m) => vec![(map_names::VIPS[0], &m[0]), (map_names::VIPS[1], &m[1])],
        };
        v.extend([
            (map_names::PEERS[0], &self.peers[0]),
            (map_names::PEERS[1], &self.peers[1]),
            (map_names::CONTROL, &self.control),
            (map_names::VIP_STATS, &self.vip_stats),
            (map_names::GLOBAL_STATS, &self.global),
            (map_names::VIP_INFO, &self.info),
            (map_names::META, &self.meta),
        ]);
        if let Some((m, _)) = &self.base {
            v.push((map_names::VIP_BASE, m));
        }
        v
    }

    /// The carried-over counts of every slot (empty without a base map).
    fn base_all(&self) -> Vec<VipCounters> {
        self.base
            .as_ref()
            .and_then(|(_, m)| m.read(0, m.len()).ok())
            .unwrap_or_default()
    }

    /// The carried-over counts of `slots`, summed.
    fn base_sum(&self, slots: &[u32]) -> VipCounters {
        let all = self.base_all();
        let mut sum = VipCounters::default();
        for s in slots {
            if let Some(v) = all.get(*s as usize) {
                add(&mut sum, v);
            }
        }
        sum
    }

    /// Sets the carried-over counts of slots.
    fn base_set(&mut self, values: &[(u32, VipCounters)]) -> Result<()> {
        let Some((_, m)) = &mut self.base else {
            return Ok(());
        };
        for (slot, v) in values {
            m.write(*slot as usize, std::slice::from_ref(v))
                .map_err(|r| Error::Map {
                    map: map_names::VIP_BASE,
                    what: format!("slot {r:?} past the array"),
                    source: None,
                })?;
        }
        Ok(())
    }

    /// The global counters summed over CPUs, the carried-over ones included.
    fn global_sums(&self) -> Result<GlobalCounters> {
        let g = PerCpuArray::<&MapData, GlobalCounters>::try_from(&self.global)
            .map_err(|e| Error::map(map_names::GLOBAL_STATS, "open", e))?;
        let mut sums = GlobalCounters::default();
        for index in [0, GLOBAL_BASE] {
            let per_cpu = match g.get(&index, 0) {
                Ok(v) => v,
                // Pins of an older lvs-loader: no base entry.
                Err(_) if index == GLOBAL_BASE => continue,
                Err(e) => return Err(Error::map(map_names::GLOBAL_STATS, "read", e)),
            };
            for v in per_cpu.iter() {
                for (sum, x) in sums.count.iter_mut().zip(v.count) {
                    *sum += x;
                }
            }
        }
        Ok(sums)
    }

    /// Pins every map into `dir` (which must exist, on bpffs).
    pub fn pin(&self, dir: &Path) -> Result<()> {
        for (name, map) in self.all() {
            let path = dir.join(name);
            map.pin(&path).map_err(|e| Error::Pin {
                path,
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    /// Kernel ids of the maps, by name.
    pub fn ids(&self) -> Vec<(&'static str, u32)> {
        self.all()
            .into_iter()
            .filter_map(|(n, m)| map_data(m).and_then(|d| d.info().ok()).map(|i| (n, i.id())))
            .collect()
    }

    /// VIP slots of these maps (their retired counter slot has this index): the counter
    /// map's `max_entries` less one, [`MAX_VIPS`] for maps of the compiled size.
    pub fn capacity(&self) -> Result<u32> {
        let info = map_data(&self.vip_stats)
            .ok_or(Error::Map {
                map: map_names::VIP_STATS,
                what: "unexpected map type".into(),
                source: None,
            })?
            .info()
            .map_err(|e| Error::map(map_names::VIP_STATS, "reading map info", e))?;
        Ok(info.max_entries().saturating_sub(1).min(MAX_VIPS))
    }

    /// Whether the VIPs live in the call-free tables (else in kernel hash maps).
    pub fn has_tables(&self) -> bool {
        matches!(self.vips, VipMaps::Tables { .. })
    }

    fn read_control(&self) -> Result<Control> {
        let c = Array::<&MapData, Control>::try_from(&self.control)
            .map_err(|e| Error::map(map_names::CONTROL, "open", e))?;
        c.get(&0, 0)
            .map_err(|e| Error::map(map_names::CONTROL, "read", e))
    }

    fn write_control(&mut self, value: &Control, what: &'static str) -> Result<()> {
        let mut c = Array::<&mut MapData, Control>::try_from(&mut self.control)
            .map_err(|e| Error::map(map_names::CONTROL, "open", e))?;
        c.set(0, value, 0)
            .map_err(|e| Error::map(map_names::CONTROL, what, e))
    }

    /// The control line's trace switch (`lvs-loader trace`; 0 = off).
    pub fn trace_switch(&self) -> Result<u32> {
        Ok(self.read_control()?.lines[0].trace)
    }

    /// Sets the trace switch: a read-modify-write of the control value, so only under the
    /// attachment's lock (as every other control write).
    pub(crate) fn set_trace_switch(&mut self, value: u32) -> Result<()> {
        let mut c = self.read_control()?;
        c.lines[0].trace = value;
        self.write_control(&c, "write the trace switch")
    }

    /// The live generation (0 or 1).
    pub fn active_generation(&mut self) -> Result<u32> {
        Ok(self.read_control()?.active())
    }

    /// The live generation and its stamp ([`Control::stamp`]).
    pub fn live_stamp(&self) -> Result<(u32, u32)> {
        let c = self.read_control()?;
        Ok((c.active(), c.stamp(c.active())))
    }

    fn vips_map(&mut self, generation: u32) -> Result<HashMap<&mut MapData, VipKey, VipValue>> {
        let name = map_names::VIPS[generation as usize & 1];
        let VipMaps::Htab(m) = &mut self.vips else {
            return Err(Error::Map {
                map: name,
                what: "not in this variant of the program".into(),
                source: None,
            });
        };
        HashMap::try_from(&mut m[generation as usize & 1]).map_err(|e| Error::map(name, "open", e))
    }

    /// The table arrays, mapped into memory.
    fn mapped(&mut self) -> Result<&mut MappedTables> {
        let VipMaps::Tables {
            v4,
            v6,
            peers,
            mapped,
        } = &mut self.vips
        else {
            return Err(Error::Map {
                map: map_names::V4_TABLE,
                what: "not in this variant of the program".into(),
                source: None,
            });
        };
        if mapped.is_none() {
            fn data<'m>(m: &'m Map, name: &'static str) -> Result<&'m MapData> {
                map_data(m).ok_or(Error::Map {
                    map: name,
                    what: "unexpected map type".into(),
                    source: None,
                })
            }
            *mapped = Some(Box::new(MappedTables {
                v4: Mapped::new(data(v4, map_names::V4_TABLE)?, map_names::V4_TABLE)?,
                v6: Mapped::new(data(v6, map_names::V6_TABLE)?, map_names::V6_TABLE)?,
                peers: Mapped::new(data(peers, map_names::PEER_TABLE)?, map_names::PEER_TABLE)?,
            }));
        }
        Ok(mapped.as_mut().expect("just set"))
    }

    fn peers_map(&mut self, generation: u32) -> Result<HashMap<&mut MapData, MacKey, u32>> {
        let name = map_names::PEERS[generation as usize & 1];
        HashMap::try_from(&mut self.peers[generation as usize & 1])
            .map_err(|e| Error::map(name, "open", e))
    }

    /// VIPs of generation `g`, as (key, value) pairs.
    fn vip_entries(&mut self, generation: u32) -> Result<Vec<(VipKey, VipValue)>> {
        if self.has_tables() {
            let control = self.read_control()?;
            let gc = *control.generation(generation);
            let kl = control.keep[generation as usize & 1];
            let MappedTables { v4, v6, .. } = self.mapped()?;
            let region = |geo: Geometry| (geo.base() as usize, geo.buckets() as usize);
            let bad = |name: &'static str| {
                move |r: std::ops::Range<usize>| Error::Map {
                    map: name,
                    what: format!("generation {generation} claims buckets {r:?}, past the array"),
                    source: None,
                }
            };
            let (b4, n4) = region(gc.v4);
            let (b6, n6) = region(gc.v6);
            let t4 = v4.read(b4, n4).map_err(bad(map_names::V4_TABLE))?;
            let t6 = v6.read(b6, n6).map_err(bad(map_names::V6_TABLE))?;
            return Ok(table::entries_v4(&t4)
                .chain(table::entries_v6(&t6))
                .map(|e| {
                    (
                        e.key,
                        VipValue {
                            mark: e.mark,
                            index: e.slot,
                            mask: !kl.keep[e.class as usize & (MASK_CLASSES - 1)],
                        },
                    )
                })
                .collect());
        }
        let name = map_names::VIPS[generation as usize & 1];
        let m = self.vips_map(generation)?;
        m.iter()
            .collect::<Result<Vec<_>, MapError>>()
            .map_err(|e| Error::map(name, "iterate", e))
    }

    fn peer_entries(&mut self, generation: u32) -> Result<Vec<MacKey>> {
        let name = map_names::PEERS[generation as usize & 1];
        let m = self.peers_map(generation)?;
        m.keys()
            .collect::<Result<Vec<_>, MapError>>()
            .map_err(|e| Error::map(name, "iterate", e))
    }

    /// Peer MACs of the live generation.
    pub fn live_peers(&mut self) -> Result<Vec<[u8; 6]>> {
        let g = self.active_generation()?;
        let mut v: Vec<[u8; 6]> = self.peer_entries(g)?.into_iter().map(|k| k.addr).collect();
        v.sort();
        Ok(v)
    }

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
    /// ([`Control::stamp`]), which trace events carry.
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

        let live_vips: StdHashMap<VipKey, u32> = self
            .vip_entries(live)?
            .into_iter()
            .map(|(k, v)| (k, v.index))
            .collect();
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
        let wanted: std::collections::HashSet<&VipKey> = new_keys.iter().collect();
        let removed: Vec<u32> = live_vips
            .iter()
            .filter(|(k, _)| !wanted.contains(k))
            .map(|(_, &i)| i)
            .collect();
        self.retire_slots(&removed)?;
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

    fn zero_counters(&mut self, slots: &[u32]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let cpus = nr_cpus()?;
        let zeros = vec![VipCounters::default(); slots.len() * cpus];
        if !batched(&self.vip_stats, map_names::VIP_STATS, slots, &zeros, cpus)? {
            let mut stats = PerCpuArray::<&mut MapData, VipCounters>::try_from(&mut self.vip_stats)
                .map_err(|e| Error::map(map_names::VIP_STATS, "open", e))?;
            for i in slots {
                let z = PerCpuValues::try_from(vec![VipCounters::default(); cpus])
                    .map_err(|e| Error::io("per-CPU values", e))?;
                stats
                    .set(*i, z, 0)
                    .map_err(|e| Error::map(map_names::VIP_STATS, "reset", e))?;
            }
        }
        let zeros: Vec<(u32, VipCounters)> =
            slots.iter().map(|&i| (i, VipCounters::default())).collect();
        self.base_set(&zeros)
    }

    fn write_infos(&mut self, slots: &[u32], infos: &[VipInfo]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        if !batched(&self.info, map_names::VIP_INFO, slots, infos, 1)? {
            let mut info = Array::<&mut MapData, VipInfo>::try_from(&mut self.info)
                .map_err(|e| Error::map(map_names::VIP_INFO, "open", e))?;
            for (i, v) in slots.iter().zip(infos) {
                info.set(*i, v, 0)
                    .map_err(|e| Error::map(map_names::VIP_INFO, "write", e))?;
            }
        }
        Ok(())
    }

    /// The live VIPs with their names and counters (summed over CPUs), in config order.
    pub fn live_vips(&mut self) -> Result<Vec<LiveVip>> {
        let g = self.active_generation()?;
        let entries = self.vip_entries(g)?;
        let stats = PerCpuArray::<&MapData, VipCounters>::try_from(&self.vip_stats)
            .map_err(|e| Error::map(map_names::VIP_STATS, "open", e))?;
        let info = Array::<&MapData, VipInfo>::try_from(&self.info)
            .map_err(|e| Error::map(map_names::VIP_INFO, "open", e))?;
        let base = self.base_all();
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let per_cpu = stats
                .get(&value.index, 0)
                .map_err(|e| Error::map(map_names::VIP_STATS, "read", e))?;
            let mut c = VipCounters::default();
            for v in per_cpu.iter() {
                c.marked_packets += v.marked_packets;
                c.marked_bytes += v.marked_bytes;
                c.peer_packets += v.peer_packets;
                c.peer_bytes += v.peer_bytes;
                c.already_marked += v.already_marked;
            }
            if let Some(b) = base.get(value.index as usize) {
                add(&mut c, b);
            }
            let i = info
                .get(&value.index, 0)
                .map_err(|e| Error::map(map_names::VIP_INFO, "read", e))?;
            out.push(LiveVip {
                key,
                value,
                info: i,
                counters: c,
            });
        }
        out.sort_by_key(|v| (v.info.order, v.key));
        Ok(out)
    }

    /// Global counters summed over CPUs, by name ([`global::NAMES`]).
    ///
    /// The program counts a VIP packet only in its VIP's slot and every other packet once
    /// under its [`Reason`]; the totals are derived here: `marked`/`peer` from the live
    /// VIPs' slots plus the retired slot (the counts of removed VIPs), `packets_seen` as
    /// the sum of every outcome.
    pub fn global_counters(&mut self) -> Result<BTreeMap<&'static str, u64>> {
        let sums = self.global_sums()?;
        let c: [u64; global::SLOTS] = std::array::from_fn(|i| sums.total(i));
        let live = self.active_generation()?;
        let mut slots: Vec<u32> = self
            .vip_entries(live)?
            .into_iter()
            .map(|(_, v)| v.index)
            .collect();
        slots.push(self.capacity()?);
        let (mut vips, _) = self.vip_sums(&slots)?;
        add(&mut vips, &self.base_sum(&slots));
        let r = |reason: Reason| c[reason as usize];
        let no_vip = r(Reason::NoVip)
            + r(Reason::Fragment)
            + r(Reason::L4Truncated)
            + r(Reason::OtherProtocol);
        let out = BTreeMap::from([
            ("not_ip", r(Reason::NotIp)),
            ("malformed", r(Reason::Malformed)),
            ("no_vip", no_vip),
            ("marked", vips.marked_packets),
            ("peer", vips.peer_packets),
            ("fragments", r(Reason::Fragment) + c[global::HIT_FRAGMENT]),
            (
                "l4_truncated",
                r(Reason::L4Truncated) + c[global::HIT_L4_TRUNCATED],
            ),
            ("internal_errors", c[global::INTERNAL]),
            (
                global::ALREADY_MARKED,
                sums.already_marked() + vips.already_marked,
            ),
            ("nonlinear", r(Reason::Nonlinear)),
            (
                "packets_seen",
                vips.marked_packets
                    + vips.peer_packets
                    + no_vip
                    + r(Reason::NotIp)
                    + r(Reason::Malformed)
                    + r(Reason::Nonlinear),
            ),
        ]);
        debug_assert!(global::NAMES.iter().all(|n| out.contains_key(n)));
        Ok(out)
    }

    /// The per-CPU counters of every slot, one batch syscall per 16k slots (`None`:
    /// this kernel has no batch lookup for per-CPU arrays).
    fn all_vip_counters(&self) -> Result<Option<(Vec<VipCounters>, usize)>> {
        let cpus = nr_cpus()?;
        match batch::lookup_array::<VipCounters>(
            map_fd(&self.vip_stats, map_names::VIP_STATS)?,
            self.capacity()? as usize + 1,
            cpus,
        ) {
            Ok(v) => Ok(Some((v, cpus))),
            Err(e) if batch::unsupported(&e) => Ok(None),
            Err(e) => Err(Error::io(
                format!("map {}: batch lookup", map_names::VIP_STATS),
                e,
            )),
        }
    }

    /// The counters of `slots`: summed over slots and CPUs, and summed over slots per
    /// CPU.
    fn vip_sums(&self, slots: &[u32]) -> Result<(VipCounters, Vec<VipCounters>)> {
        let mut sum = VipCounters::default();
        let mut per_cpu_sum: Vec<VipCounters> = Vec::new();
        let mut add_cpus = |per_cpu: &[VipCounters]| {
            if per_cpu_sum.len() < per_cpu.len() {
                per_cpu_sum.resize(per_cpu.len(), VipCounters::default());
            }
            for (acc, v) in per_cpu_sum.iter_mut().zip(per_cpu) {
                add(acc, v);
                add(&mut sum, v);
            }
        };
        // Many slots: one pass over the whole array beats a syscall per slot.
        if slots.len() > 256
            && let Some((all, cpus)) = self.all_vip_counters()?
        {
            for &s in slots {
                let i = s as usize * cpus;
                if let Some(per_cpu) = all.get(i..i + cpus) {
                    add_cpus(per_cpu);
                }
            }
            return Ok((sum, per_cpu_sum));
        }
        let stats = PerCpuArray::<&MapData, VipCounters>::try_from(&self.vip_stats)
            .map_err(|e| Error::map(map_names::VIP_STATS, "open", e))?;
        for s in slots {
            let per_cpu = stats
                .get(s, 0)
                .map_err(|e| Error::map(map_names::VIP_STATS, "read", e))?;
            let v: Vec<VipCounters> = per_cpu.iter().copied().collect();
            add_cpus(&v);
        }
        Ok((sum, per_cpu_sum))
    }

    /// Adds the counts of `removed` slots (per CPU) to the retired slot ([`MapSet::capacity`]). (The slots
    /// themselves are zeroed when a new VIP takes them: [`MapSet::finish_post_flip`] or
    /// the fresh-slot reset. A crash between the flip and this step loses the removed
    /// VIPs' counts from the totals; nothing else.)
    fn retire_slots(&mut self, removed: &[u32]) -> Result<()> {
        if removed.is_empty() {
            return Ok(());
        }
        let cpus = nr_cpus()?;
        let retired_slot = self.capacity()?;
        let mut slots = removed.to_vec();
        slots.push(retired_slot);
        let (_, mut retired) = self.vip_sums(&slots)?;
        retired.resize(cpus, VipCounters::default());
        // The removed slots' carried-over counts too (the retired slot's own stay in its
        // base entry).
        if let Some(first) = retired.first_mut() {
            add(first, &self.base_sum(removed));
        }
        let mut stats = PerCpuArray::<&mut MapData, VipCounters>::try_from(&mut self.vip_stats)
            .map_err(|e| Error::map(map_names::VIP_STATS, "open", e))?;
        let values = PerCpuValues::try_from(retired).map_err(|e| Error::io("per-CPU values", e))?;
        stats
            .set(retired_slot, values, 0)
            .map_err(|e| Error::map(map_names::VIP_STATS, "write", e))
    }

    /// Carries the counts of `old` (the maps a growing reload replaces; their program no
    /// longer runs) into these maps' carried-over counts: a VIP in both configs keeps its
    /// counts, the counts of VIPs only `old` had go to the retired slot (with `old`'s
    /// retired counts), the global counters whole. The program never writes what this
    /// writes, so nothing it counts meanwhile is lost; and it sets values (no additions),
    /// so running it again (recovery) gives the same result.
    pub fn carry_counters_from(&mut self, old: &mut MapSet) -> Result<()> {
        let old_live = old.active_generation()?;
        let old_slots: StdHashMap<VipKey, u32> = old
            .vip_entries(old_live)?
            .into_iter()
            .map(|(k, v)| (k, v.index))
            .collect();
        let new_live = self.active_generation()?;
        let new_slots: Vec<(VipKey, u32)> = self
            .vip_entries(new_live)?
            .into_iter()
            .map(|(k, v)| (k, v.index))
            .collect();
        let kept: std::collections::HashSet<VipKey> = new_slots.iter().map(|(k, _)| *k).collect();
        let mut retired: Vec<u32> = old_slots
            .iter()
            .filter(|(k, _)| !kept.contains(k))
            .map(|(_, &i)| i)
            .collect();
        retired.push(old.capacity()?);
        let total = |slots: &[u32]| -> Result<VipCounters> {
            let (mut sum, _) = old.vip_sums(slots)?;
            add(&mut sum, &old.base_sum(slots));
            Ok(sum)
        };
        let mut writes: Vec<(u32, VipCounters)> = vec![(self.capacity()?, total(&retired)?)];
        for (key, new_slot) in &new_slots {
            let v = match old_slots.get(key) {
                Some(&old_slot) => total(&[old_slot])?,
                None => VipCounters::default(),
            };
            writes.push((*new_slot, v));
        }
        self.base_set(&writes)?;
        // Global counters: the old ones, summed over CPUs, in the base entry of CPU 0.
        let cpus = nr_cpus()?;
        let mut values = vec![GlobalCounters::default(); cpus];
        values[0] = old.global_sums()?;
        let mut g = PerCpuArray::<&mut MapData, GlobalCounters>::try_from(&mut self.global)
            .map_err(|e| Error::map(map_names::GLOBAL_STATS, "open", e))?;
        let values = PerCpuValues::try_from(values).map_err(|e| Error::io("per-CPU values", e))?;
        g.set(GLOBAL_BASE, values, 0)
            .map_err(|e| Error::map(map_names::GLOBAL_STATS, "write", e))
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
            // The first three inline, all of them in the peer table.
            let pt = table::build_peers(&macs, t.hash, &params)
                .map_err(failed(map_names::PEER_TABLE))?;
            let bp = table::generation_base(np, g);
            peers
                .write(bp as usize, &pt.buckets)
                .map_err(past(map_names::PEER_TABLE))?;
            for (w, m) in gc.peers.iter_mut().zip(&macs[..PEERS_INLINE - 1]) {
                *w = mac_word(*m);
            }
            gc.peers[PEERS_INLINE - 1] =
                PEERS_IN_TABLE | u64::from(Geometry::new(bp, pt.log2, false).0);
        }
        Ok(())
    }

    pub fn read_meta(&self) -> Result<AttachMeta> {
        let m = Array::<&MapData, AttachMeta>::try_from(&self.meta)
            .map_err(|e| Error::map(map_names::META, "open", e))?;
        m.get(&0, 0)
            .map_err(|e| Error::map(map_names::META, "read", e))
    }

    pub fn write_meta(&mut self, meta: &AttachMeta) -> Result<()> {
        let mut m = Array::<&mut MapData, AttachMeta>::try_from(&mut self.meta)
            .map_err(|e| Error::map(map_names::META, "open", e))?;
        m.set(0, meta, 0)
            .map_err(|e| Error::map(map_names::META, "write", e))
    }
}

/// The largest power of two of buckets that fits one generation's half of `total`.
fn table_half(total: u32) -> u32 {
    let half = table::generation_base(total, 1);
    if half == 0 { 0 } else { 1 << half.ilog2() }
}

fn add(sum: &mut VipCounters, v: &VipCounters) {
    sum.marked_packets += v.marked_packets;
    sum.marked_bytes += v.marked_bytes;
    sum.peer_packets += v.peer_packets;
    sum.peer_bytes += v.peer_bytes;
    sum.already_marked += v.already_marked;
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

/// The OS error inside a map error, if any.
fn os_error(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = x.source();
    }
    None
}

/// Opens the pin of map `name` in `dir`; EACCES/EPERM become "permission denied".
fn open_pin(dir: &Path, name: &'static str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|e| {
        let what = format!("opening {}", crate::text::escape_path(&path));
        match os_error(&e) {
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied { what },
            _ => Error::map(name, what, e),
        }
    })?;
    Map::from_map_data(data).map_err(|e| Error::map(name, "unexpected map type", e))
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

/// One `BPF_MAP_UPDATE_BATCH` of `keys`/`values` into `map`. `Ok(false)`: this kernel or
/// map type has no batch support, the caller updates element by element.
fn batched<K: Copy, V: Copy>(
    map: &Map,
    name: &'static str,
    keys: &[K],
    values: &[V],
    per_key: usize,
) -> Result<bool> {
    match batch::update(map_fd(map, name)?, keys, values, per_key) {
        Ok(()) => Ok(true),
        Err(e) if batch::unsupported(&e) => Ok(false),
        Err(e) => Err(Error::io(format!("map {name}: batch update"), e)),
    }
}

fn map_fd<'a>(m: &'a Map, name: &'static str) -> Result<std::os::fd::BorrowedFd<'a>> {
    use std::os::fd::AsFd as _;
    map_data(m).map(|d| d.fd().as_fd()).ok_or(Error::Map {
        map: name,
        what: "unexpected map type".into(),
        source: None,
    })
}

fn map_data(m: &Map) -> Option<&MapData> {
    match m {
        Map::Array(d) | Map::HashMap(d) | Map::PerCpuArray(d) => Some(d),
        _ => None,
    }
}

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
    AttachMeta, CONTROL_ACTIVE, CONTROL_ANY_PORT_COUNT, MAX_NAME_LEN, MAX_PEERS, MAX_VIPS, MacKey,
    VipCounters, VipInfo, VipKey, VipValue, global, map_names,
};

use crate::{
    batch,
    config::Config,
    error::{Error, Result},
    failpoint,
    slots::{self, Slot},
};

/// Counter slots to reset after a flip: (slot, the name and order of its new VIP).
pub type PostFlip = Vec<(u32, VipInfo)>;

/// Every map of one attachment.
pub struct MapSet {
    /// Maps just created by the kernel (all counters zero): no need to reset slots.
    fresh: bool,
    vips: [Map; 2],
    peers: [Map; 2],
    control: Map,
    vip_stats: Map,
    global: Map,
    info: Map,
    meta: Map,
}

/// Names of all maps, which are also their pin file names.
pub const ALL_MAPS: [&str; 9] = [
    map_names::VIPS[0],
    map_names::VIPS[1],
    map_names::PEERS[0],
    map_names::PEERS[1],
    map_names::CONTROL,
    map_names::VIP_STATS,
    map_names::GLOBAL_STATS,
    map_names::VIP_INFO,
    map_names::META,
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
        let take = |name: &'static str| {
            ebpf.take_map(name).ok_or(Error::Map {
                map: name,
                what: "missing from the eBPF object".into(),
                source: None,
            })
        };
        Self::build(true, take)
    }

    /// Opens the maps pinned in `dir`.
    pub fn from_pins(dir: &Path) -> Result<Self> {
        Self::build(false, |name| open_pin(dir, name))
    }

    /// The `LVS_META` record pinned in `dir` (without opening the other maps).
    pub fn read_meta_pin(dir: &Path) -> Result<AttachMeta> {
        let m = open_pin(dir, map_names::META)?;
        let a = Array::<&MapData, AttachMeta>::try_from(&m)
            .map_err(|e| Error::map(map_names::META, "open", e))?;
        a.get(&0, 0)
            .map_err(|e| Error::map(map_names::META, "read", e))
    }

    /// Every map, fetched by name.
    fn build(fresh: bool, mut get: impl FnMut(&'static str) -> Result<Map>) -> Result<Self> {
        Ok(Self {
            fresh,
            vips: [get(map_names::VIPS[0])?, get(map_names::VIPS[1])?],
            peers: [get(map_names::PEERS[0])?, get(map_names::PEERS[1])?],
            control: get(map_names::CONTROL)?,
            vip_stats: get(map_names::VIP_STATS)?,
            global: get(map_names::GLOBAL_STATS)?,
            info: get(map_names::VIP_INFO)?,
            meta: get(map_names::META)?,
        })
    }

    fn all(&self) -> [(&'static str, &Map); 9] {
        [
            (map_names::VIPS[0], &self.vips[0]),
            (map_names::VIPS[1], &self.vips[1]),
            (map_names::PEERS[0], &self.peers[0]),
            (map_names::PEERS[1], &self.peers[1]),
            (map_names::CONTROL, &self.control),
            (map_names::VIP_STATS, &self.vip_stats),
            (map_names::GLOBAL_STATS, &self.global),
            (map_names::VIP_INFO, &self.info),
            (map_names::META, &self.meta),
        ]
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

    fn control(&mut self) -> Result<Array<&mut MapData, u32>> {
        Array::try_from(&mut self.control).map_err(|e| Error::map(map_names::CONTROL, "open", e))
    }

    /// The live generation (0 or 1).
    pub fn active_generation(&mut self) -> Result<u32> {
        let c = self.control()?;
        c.get(&CONTROL_ACTIVE, 0)
            .map(|g| g & 1)
            .map_err(|e| Error::map(map_names::CONTROL, "read", e))
    }

    fn vips_map(&mut self, generation: u32) -> Result<HashMap<&mut MapData, VipKey, VipValue>> {
        let name = map_names::VIPS[generation as usize & 1];
        HashMap::try_from(&mut self.vips[generation as usize & 1])
            .map_err(|e| Error::map(name, "open", e))
    }

    fn peers_map(&mut self, generation: u32) -> Result<HashMap<&mut MapData, MacKey, u32>> {
        let name = map_names::PEERS[generation as usize & 1];
        HashMap::try_from(&mut self.peers[generation as usize & 1])
            .map_err(|e| Error::map(name, "open", e))
    }

    /// VIPs of generation `g`, as (key, value) pairs.
    fn vip_entries(&mut self, generation: u32) -> Result<Vec<(VipKey, VipValue)>> {
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
    pub fn apply(&mut self, config: &Config) -> Result<ApplyReport> {
        self.apply_with(config, |_, _, _| Ok(()))
    }

    /// Installs `config` atomically.
    ///
    /// The standby generation is emptied and filled, counters of new VIPs are zeroed,
    /// `before_flip` runs (the caller records what the standby generation now holds, and
    /// the post-flip work, so that a crash anywhere leaves a truthful record), then one
    /// write to `LVS_CONTROL` makes it live. A VIP present before and after keeps its
    /// counter slot and is matched by every packet throughout; any failure before the flip
    /// leaves the live datapath untouched.
    pub fn apply_with(
        &mut self,
        config: &Config,
        before_flip: impl FnOnce(&mut Self, &ApplyReport, &PostFlip) -> Result<()>,
    ) -> Result<ApplyReport> {
        if config.vips.len() > MAX_VIPS as usize || config.peers.len() > MAX_PEERS as usize {
            return Err(Error::Map {
                map: map_names::VIPS[0],
                what: format!(
                    "{} VIPs / {} peers exceed the maps' capacity ({MAX_VIPS} / {MAX_PEERS})",
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
        let plan = slots::plan(&live_vips, &new_keys, MAX_VIPS).map_err(|e| Error::Map {
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
                    },
                    p.slot,
                )
            })
            .collect();

        // 1. Empty the standby generation.
        {
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
        {
            let name = map_names::VIPS[standby as usize];
            let keys: Vec<VipKey> = assignment.iter().map(|(k, _, _)| *k).collect();
            let values: Vec<VipValue> = assignment.iter().map(|(_, v, _)| *v).collect();
            if !batched(&self.vips[standby as usize], name, &keys, &values, 1)? {
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

        // 4. Tell the program whether the standby generation has any-port VIPs.
        let any_port = config.vips.iter().filter(|v| v.port.is_none()).count() as u32;
        self.control()?
            .set(CONTROL_ANY_PORT_COUNT + standby, any_port, 0)
            .map_err(|e| Error::map(map_names::CONTROL, "write", e))?;

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

        // 5. Flip: one array update, atomic for every packet.
        self.control()?
            .set(CONTROL_ACTIVE, standby, 0)
            .map_err(|e| Error::map(map_names::CONTROL, "switch generation", e))?;
        failpoint::hit("apply:flipped");

        // 6. Slots taken over from removed VIPs start counting for their new VIP now.
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
        Ok(())
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

    /// Global counters summed over CPUs, by name.
    pub fn global_counters(&self) -> Result<BTreeMap<&'static str, u64>> {
        let g = PerCpuArray::<&MapData, u64>::try_from(&self.global)
            .map_err(|e| Error::map(map_names::GLOBAL_STATS, "open", e))?;
        let mut out = BTreeMap::new();
        for (i, name) in global::NAMES.iter().enumerate() {
            let v = g
                .get(&(i as u32), 0)
                .map_err(|e| Error::map(map_names::GLOBAL_STATS, "read", e))?;
            out.insert(*name, v.iter().sum());
        }
        Ok(out)
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

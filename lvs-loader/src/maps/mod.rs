//! The program's maps: the [`MapSet`] of one attachment, opened either from a freshly
//! loaded object or from pins, its pins and ids, the control value (trace switch, live
//! generation and stamp) and the metadata record, and the helpers the child modules share.
//! The atomic generation switch used by attach and reload is in `apply`, the counters in
//! `counters`, reading a generation's VIPs and peers back in `entries`.

mod apply;
mod counters;
mod entries;

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, Map, MapData},
};
use lvs_ebpf_common::{
    AttachMeta, Control, MAX_VIPS, PeerBucket, V4Bucket, V6Bucket, VipCounters, map_names,
};

pub use self::{
    apply::{ApplyReport, PostFlip, mask_classes},
    entries::LiveVip,
};
use crate::{
    batch,
    error::{Error, Result},
    table::region::Mapped,
};

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

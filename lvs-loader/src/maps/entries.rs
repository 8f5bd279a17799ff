//! Reading a generation's VIPs and peers back from the maps (the call-free tables or the
//! `htab` variant's hash maps), and the live VIPs with their names and counters.

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray};
use lvs_ebpf_common::{
    Geometry, MASK_CLASSES, MacKey, VipCounters, VipInfo, VipKey, VipValue, map_names,
};

use super::{MapSet, MappedTables, VipMaps, counters::add, map_data};
use crate::{
    error::{Error, Result},
    table::{self, region::Mapped},
};

/// One VIP as the live maps describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVip {
    pub key: VipKey,
    pub value: VipValue,
    pub info: VipInfo,
    pub counters: VipCounters,
}

impl MapSet {
    pub(super) fn vips_map(
        &mut self,
        generation: u32,
    ) -> Result<HashMap<&mut MapData, VipKey, VipValue>> {
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
    pub(super) fn mapped(&mut self) -> Result<&mut MappedTables> {
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

    pub(super) fn peers_map(
        &mut self,
        generation: u32,
    ) -> Result<HashMap<&mut MapData, MacKey, u32>> {
        let name = map_names::PEERS[generation as usize & 1];
        HashMap::try_from(&mut self.peers[generation as usize & 1])
            .map_err(|e| Error::map(name, "open", e))
    }

    /// VIPs of generation `g`, as (key, value) pairs.
    pub(super) fn vip_entries(&mut self, generation: u32) -> Result<Vec<(VipKey, VipValue)>> {
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

    pub(super) fn peer_entries(&mut self, generation: u32) -> Result<Vec<MacKey>> {
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
}

//! The counters: per-VIP and global counts summed over CPUs and with the counts a growing
//! reload carried over, zeroing and naming slots, retiring removed VIPs' counts and
//! carrying counts into a new set of maps.

use std::collections::{BTreeMap, HashMap as StdHashMap};

use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use lvs_ebpf_common::{
    GLOBAL_BASE, GlobalCounters, Reason, VipCounters, VipInfo, VipKey, global, map_names,
};

use super::{MapSet, batched, map_fd};
use crate::{
    batch,
    error::{Error, Result},
};

fn nr_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(what, e)| Error::io(format!("reading {what}"), e))
}

impl MapSet {
    /// The carried-over counts of every slot (empty without a base map).
    pub(super) fn base_all(&self) -> Vec<VipCounters> {
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

    pub(super) fn zero_counters(&mut self, slots: &[u32]) -> Result<()> {
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

    pub(super) fn write_infos(&mut self, slots: &[u32], infos: &[VipInfo]) -> Result<()> {
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
        // Many slots: one pass over the whole array beats a syscall per slot. Chunk by
        // chunk (`batch::fold_array`): the whole array is capacity x CPUs x 40 B.
        if slots.len() > 256 {
            let len = self.capacity()? as usize + 1;
            let mut wanted = vec![0u32; len];
            for &s in slots {
                if let Some(w) = wanted.get_mut(s as usize) {
                    *w += 1;
                }
            }
            let cpus = nr_cpus()?;
            let mut seen = false;
            let folded = batch::fold_array::<VipCounters>(
                map_fd(&self.vip_stats, map_names::VIP_STATS)?,
                len,
                cpus,
                |first, values| {
                    seen = true;
                    for (i, per_cpu) in values.chunks(cpus).enumerate() {
                        for _ in 0..wanted.get(first + i).copied().unwrap_or(0) {
                            add_cpus(per_cpu);
                        }
                    }
                },
            );
            match folded {
                Ok(()) => return Ok((sum, per_cpu_sum)),
                // No batch lookup for per-CPU arrays on this kernel (before 5.13): one
                // syscall per slot below.
                Err(e) if batch::unsupported(&e) && !seen => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("map {}: batch lookup", map_names::VIP_STATS),
                        e,
                    ));
                }
            }
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
    pub(super) fn retire_slots(&mut self, removed: &[u32]) -> Result<()> {
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
}

pub(super) fn add(sum: &mut VipCounters, v: &VipCounters) {
    sum.marked_packets += v.marked_packets;
    sum.marked_bytes += v.marked_bytes;
    sum.peer_packets += v.peer_packets;
    sum.peer_bytes += v.peer_bytes;
    sum.already_marked += v.already_marked;
}

//! Instructions per path: what each scenario of the program-cost benchmark executes.
//!
//! The program's own object code (the ELF the loader embeds) runs in a small BPF
//! interpreter here, on the scenario's frame, with every map lookup answered by the real
//! kernel maps of a loaded datapath (BPF_MAP_LOOKUP_ELEM on the same maps, same config).
//! It counts the BPF instructions executed and records the map lookups on the way, so a
//! path reads like `31 > LVS_CONTROL > 12 > LVS_V4 > 18 > LVS_VIP_STATS > 9`: 31
//! instructions of parsing, the control lookup, 12 instructions, and so on. The verifier
//! turns each array lookup into about 8 inline instructions (per-CPU arrays too, from
//! Linux 6.10); a hash-map lookup stays a call into the kernel (`__htab_map_lookup_elem`,
//! hashing and a return). The interpreter checks the mark it computes against the
//! scenario's expected mark, so a wrong interpretation cannot post a count.
//!
//! The loaded programs' sizes come from the kernel: xlated instructions, JIT bytes, and
//! how many instructions the verifier processed.
//!
//! Here: the results, the loaded program's relocated instructions, [`PathProbe`], [`run`]
//! and [`table`]. `kmap`: the kernel maps the lookups read; `vm`: the interpreter.

mod kmap;
mod vm;

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    os::fd::{AsRawFd as _, RawFd},
};

use anyhow::{Context as _, Result, bail};
use aya_obj::generated::bpf_insn;
use lvs_loader::{datapath::Datapath, testrun};
use serde::Serialize;

use super::{
    progcost::{Dp, Scenario},
    workload,
};
use kmap::{BPF_MAP_TYPE_HASH, KMap};
use vm::interpret;

/// One scenario's path through one datapath.
#[derive(Debug, Clone, Serialize)]
pub struct Path {
    pub scenario: Scenario,
    pub datapath: Dp,
    /// BPF instructions executed (object code; a map lookup counts as its call).
    pub insns: u64,
    /// Map lookups on the way, in order (map name).
    pub lookups: Vec<String>,
    /// Of those, lookups the verifier inlines (arrays; per-CPU arrays on Linux >= 6.10).
    pub inlined: usize,
    /// Of those, calls into the kernel (hash maps).
    pub kernel_calls: usize,
    /// Instructions between lookups: `31 > LVS_CONTROL > 12 > ...`.
    pub trace: String,
}

/// A loaded program's size as the kernel reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub program: String,
    pub xlated_insns: usize,
    pub jited_bytes: u32,
    pub verified_insns: u32,
    pub kernel_calls: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub vips: usize,
    pub peers: usize,
    pub paths: Vec<Path>,
    pub sizes: Vec<Size>,
}

/// The instructions of `program` in `object`, with map references relocated to the fds
/// of `maps` (opened from the loaded datapath's maps, by name).
fn program_insns(object: &[u8], program: &str, maps: &[KMap]) -> Result<Vec<bpf_insn>> {
    let mut obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    let by_name: HashMap<&str, RawFd> = maps
        .iter()
        .map(|m| (m.name.as_str(), m.fd.as_raw_fd()))
        .collect();
    let objmaps: Vec<(String, RawFd, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| {
            (
                n.clone(),
                by_name.get(n.as_str()).copied().unwrap_or(-1),
                m.clone(),
            )
        })
        .collect();
    obj.relocate_maps(
        objmaps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .context("relocating map references")?;
    let p = obj
        .programs
        .get(program)
        .context("program not in the object")?;
    let f = obj
        .functions
        .get(&(p.section_index, p.address))
        .context("program function not found")?;
    Ok(f.instructions.clone())
}

/// The kernel maps of a loaded datapath and its program's object code, relocated to them
/// (what the interpreter runs).
fn maps_and_program(d: &Datapath, dp: Dp) -> Result<(Vec<KMap>, Vec<bpf_insn>)> {
    let maps: Vec<KMap> = d
        .maps
        .ids()
        .into_iter()
        .map(|(n, id)| KMap::open(n, id))
        .collect::<Result<_>>()?;
    let prog = program_insns(dp.variant().object(), lvs_ebpf_common::PROGRAM_NAME, &maps)?;
    Ok((maps, prog))
}

/// The table datapath loaded with a config, for asking which maps its program reads on
/// a frame: what a test asserts a path reads or skips.
pub struct PathProbe {
    _datapath: Datapath,
    maps: Vec<KMap>,
    prog: Vec<bpf_insn>,
}

impl PathProbe {
    pub fn new(config: &lvs_loader::config::Config) -> Result<Self> {
        let mut d = Datapath::load_variant(Dp::Table.variant()).context("loading")?;
        d.maps.apply(config).context("installing the config")?;
        let (maps, prog) = maps_and_program(&d, Dp::Table)?;
        Ok(Self {
            _datapath: d,
            maps,
            prog,
        })
    }

    /// The map lookups (by name, in order) the program makes on `frame`, and the mark it
    /// leaves.
    pub fn lookups(&self, frame: &[u8]) -> Result<(Vec<String>, u32)> {
        let vm = interpret(&self.prog, frame, &self.maps, 0)?;
        let names = vm
            .lookups
            .iter()
            .map(|&m| self.maps[m].name.clone())
            .collect();
        Ok((names, vm.mark))
    }
}

/// Counts every scenario's path on both datapaths with `vips` VIPs and `peers` peers.
pub fn run(vips: usize, peers: usize) -> Result<Results> {
    let mut paths = Vec::new();
    let mut sizes = Vec::new();
    for dp in Dp::ALL {
        let mut d = Datapath::load_variant(dp.variant()).context("loading")?;
        let fd = d.program_fd()?;
        let img = testrun::prog_image(fd)?;
        sizes.push(Size {
            program: format!("{} (lvs_ingress)", dp.label()),
            xlated_insns: img.xlated.len(),
            jited_bytes: img.jited_len,
            verified_insns: img.verified_insns,
            kernel_calls: img.kernel_calls(),
        });
        if dp == Dp::Table {
            let efd = d.explain_fd()?;
            let img = testrun::prog_image(efd)?;
            sizes.push(Size {
                program: "lvs-ebpf (lvs_explain)".into(),
                xlated_insns: img.xlated.len(),
                jited_bytes: img.jited_len,
                verified_insns: img.verified_insns,
                kernel_calls: img.kernel_calls(),
            });
        }
        let (maps, prog) = maps_and_program(&d, dp)?;
        for target in [
            workload::Target::V4,
            workload::Target::V6,
            workload::Target::AnyPort,
        ] {
            d.maps
                .apply(&workload::config(vips, target, peers))
                .context("installing the VIPs")?;
            for sc in Scenario::LVS.into_iter().filter(|s| s.target() == target) {
                let (frame, want) = sc.frame(peers);
                let vm = interpret(&prog, &frame, &maps, 0)
                    .with_context(|| format!("interpreting {} on {}", sc.key(), dp.label()))?;
                if vm.mark != want {
                    bail!(
                        "{} on {}: the interpreter left mark {:#x}, the scenario wants {want:#x}",
                        sc.key(),
                        dp.label(),
                        vm.mark
                    );
                }
                let inlined = vm
                    .lookups
                    .iter()
                    .filter(|&&m| maps[m].map_type != BPF_MAP_TYPE_HASH)
                    .count();
                paths.push(Path {
                    scenario: sc,
                    datapath: dp,
                    insns: vm.insns,
                    lookups: vm.lookups.iter().map(|&m| maps[m].name.clone()).collect(),
                    inlined,
                    kernel_calls: vm.lookups.len() - inlined,
                    trace: vm.trace.clone(),
                });
            }
        }
    }
    Ok(Results {
        vips,
        peers,
        paths,
        sizes,
    })
}

pub fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "BPF instructions each path executes ({} VIPs, {} peer(s); the object code run by an interpreter against the loaded maps). A lookup of an array map becomes ~8 inline instructions after the verifier; a hash-map lookup is a call into the kernel. Trace: instructions between map lookups.\n",
        r.vips, r.peers
    );
    s.push_str("| path | datapath | BPF insns | inlined lookups | kernel calls | trace |\n|---|---|---:|---:|---:|---|\n");
    for p in &r.paths {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | `{}` |",
            p.scenario.label(),
            p.datapath.label(),
            p.insns,
            p.inlined,
            p.kernel_calls,
            p.trace
        );
    }
    s.push_str("\n| program | xlated insns | JIT bytes | verifier processed | kernel calls left in the image |\n|---|---:|---:|---:|---:|\n");
    for z in &r.sizes {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            z.program, z.xlated_insns, z.jited_bytes, z.verified_insns, z.kernel_calls
        );
    }
    s
}

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

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

use anyhow::{Context as _, Result, bail};
use aya_obj::generated::bpf_insn;
use lvs_loader::{datapath::Datapath, testrun};
use serde::Serialize;

use super::{
    progcost::{Dp, Scenario},
    workload,
};

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

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const FUNC_SKB_PULL_DATA: i32 = 39;

/// A kernel map, opened by id.
struct KMap {
    name: String,
    fd: OwnedFd,
    map_type: u32,
    key_size: usize,
    value_size: usize,
}

impl KMap {
    fn open(name: &str, id: u32) -> Result<Self> {
        #[repr(C)]
        struct Attr {
            id: u32,
            next_id: u32,
            open_flags: u32,
        }
        let mut attr = Attr {
            id,
            next_id: 0,
            open_flags: 0,
        };
        // SAFETY: a valid bpf_attr prefix for BPF_MAP_GET_FD_BY_ID.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_FD_BY_ID,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>() as u32,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("map {name}"));
        }
        // SAFETY: the kernel just gave us this fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
        let field = |k: &str| -> Result<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("no {k} in fdinfo of map {name}"))
        };
        Ok(Self {
            name: name.to_owned(),
            map_type: field("map_type")? as u32,
            key_size: field("key_size")? as usize,
            value_size: field("value_size")? as usize,
            fd,
        })
    }

    /// The value under `key` (CPU 0's for per-CPU maps), if any.
    fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        let cpus = if self.map_type == BPF_MAP_TYPE_PERCPU_ARRAY {
            aya::util::nr_cpus().unwrap_or(1)
        } else {
            1
        };
        let stride = self.value_size.next_multiple_of(8);
        let mut value = vec![0u8; stride * cpus];
        #[repr(C)]
        struct Attr {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let mut attr = Attr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: key and value point at buffers of the map's sizes.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_ELEM,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>() as u32,
            )
        };
        (rc == 0).then(|| {
            value.truncate(self.value_size);
            value
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Stack,
    Ctx,
    Packet,
    /// A map value returned by a lookup (index into `Vm::values`).
    Value(usize),
    /// A map itself (ld_imm64 of a map fd).
    Map(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Scalar(u64),
    Ptr(Region, i64),
}

impl Val {
    fn scalar(self) -> Result<u64> {
        match self {
            Val::Scalar(v) => Ok(v),
            Val::Ptr(..) => bail!("pointer used as a number"),
        }
    }
}

struct Vm<'a> {
    regs: [Val; 11],
    stack: [u8; 512],
    stack_ptrs: HashMap<i64, Val>,
    frame: &'a [u8],
    maps: &'a [KMap],
    values: Vec<Vec<u8>>,
    mark: u32,
    insns: u64,
    lookups: Vec<usize>,
    trace: String,
    since: u64,
    done: bool,
}

const SKB_LEN: i64 = 0;
const SKB_MARK: i64 = 8;
const SKB_DATA: i64 = 76;
const SKB_DATA_END: i64 = 80;

impl Vm<'_> {
    fn load(&self, p: Val, size: usize) -> Result<Val> {
        let Val::Ptr(region, off) = p else {
            bail!("load through a number")
        };
        let bytes = |b: &[u8]| -> Result<Val> {
            let off = usize::try_from(off).context("negative offset")?;
            let s = b.get(off..off + size).context("load out of bounds")?;
            let mut w = [0u8; 8];
            w[..size].copy_from_slice(s);
            Ok(Val::Scalar(u64::from_le_bytes(w)))
        };
        match region {
            Region::Stack => {
                if let Some(v) = self.stack_ptrs.get(&off) {
                    return Ok(*v);
                }
                bytes(&self.stack[..]).map_err(|e| e.context(format!("stack offset {off}")))
            }
            Region::Packet => bytes(self.frame),
            Region::Value(i) => bytes(&self.values[i]),
            Region::Ctx => Ok(match off {
                SKB_LEN => Val::Scalar(self.frame.len() as u64),
                SKB_MARK => Val::Scalar(u64::from(self.mark)),
                SKB_DATA => Val::Ptr(Region::Packet, 0),
                SKB_DATA_END => Val::Ptr(Region::Packet, self.frame.len() as i64),
                _ => bail!("read of __sk_buff offset {off}"),
            }),
            Region::Map(_) => bail!("load through a map pointer"),
        }
    }

    fn store(&mut self, p: Val, size: usize, v: Val) -> Result<()> {
        let Val::Ptr(region, off) = p else {
            bail!("store through a number")
        };
        match region {
            Region::Stack => {
                for o in off - 7..off + size as i64 {
                    self.stack_ptrs.remove(&o);
                }
                match v {
                    Val::Ptr(..) if size == 8 => {
                        self.stack_ptrs.insert(off, v);
                    }
                    Val::Ptr(..) => bail!("partial pointer spill"),
                    Val::Scalar(x) => {
                        let o = usize::try_from(off).context("negative stack offset")?;
                        self.stack[o..o + size].copy_from_slice(&x.to_le_bytes()[..size]);
                    }
                }
            }
            Region::Value(i) => {
                let o = usize::try_from(off).context("negative offset")?;
                let x = v.scalar()?;
                self.values[i][o..o + size].copy_from_slice(&x.to_le_bytes()[..size]);
            }
            Region::Ctx if off == SKB_MARK => self.mark = v.scalar()? as u32,
            Region::Ctx if (48..68).contains(&off) => {} // cb[]
            _ => bail!("store to {region:?} offset {off}"),
        }
        Ok(())
    }

    fn call(&mut self, func: i32) -> Result<Val> {
        match func {
            FUNC_MAP_LOOKUP_ELEM => {
                let Val::Ptr(Region::Map(m), _) = self.regs[1] else {
                    bail!("lookup without a map")
                };
                let Val::Ptr(Region::Stack, k) = self.regs[2] else {
                    bail!("lookup key not on the stack")
                };
                let map = &self.maps[m];
                let k = usize::try_from(k).context("key offset")?;
                let key = self.stack[k..k + map.key_size].to_vec();
                let _ = write!(self.trace, "{} > {} > ", self.since, map.name);
                self.since = 0;
                self.lookups.push(m);
                Ok(match map.lookup(&key) {
                    Some(v) => {
                        self.values.push(v);
                        Val::Ptr(Region::Value(self.values.len() - 1), 0)
                    }
                    None => Val::Scalar(0),
                })
            }
            // Test frames are linear: nothing to pull.
            FUNC_SKB_PULL_DATA => Ok(Val::Scalar(0)),
            f => bail!("helper {f} not emulated"),
        }
    }
}

fn alu(op: u8, a: u64, b: u64, wide: bool) -> Result<u64> {
    let (a, b) = if wide {
        (a, b)
    } else {
        (a & 0xffff_ffff, b & 0xffff_ffff)
    };
    let bits = if wide { 64 } else { 32 };
    let r = match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a.wrapping_shl((b % bits) as u32),
        0x70 => a.wrapping_shr((b % bits) as u32),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        0xb0 => b,
        0xc0 if wide => ((a as i64) >> (b % 64)) as u64,
        0xc0 => ((a as u32 as i32) >> (b % 32)) as u32 as u64,
        op => bail!("ALU op {op:#x}"),
    };
    Ok(if wide { r } else { r & 0xffff_ffff })
}

fn jump_taken(op: u8, a: u64, b: u64, wide: bool) -> Result<bool> {
    let (a, b, sa, sb) = if wide {
        (a, b, a as i64, b as i64)
    } else {
        let (a, b) = (a & 0xffff_ffff, b & 0xffff_ffff);
        (a, b, a as u32 as i32 as i64, b as u32 as i32 as i64)
    };
    Ok(match op {
        0x10 => a == b,
        0x20 => a > b,
        0x30 => a >= b,
        0x40 => a & b != 0,
        0x50 => a != b,
        0x60 => sa > sb,
        0x70 => sa >= sb,
        0xa0 => a < b,
        0xb0 => a <= b,
        0xc0 => sa < sb,
        0xd0 => sa <= sb,
        op => bail!("jump op {op:#x}"),
    })
}

/// Runs `prog` on `frame`; the instruction count, lookups and the mark it left.
fn interpret<'a>(
    prog: &[bpf_insn],
    frame: &'a [u8],
    maps: &'a [KMap],
    mark_in: u32,
) -> Result<Vm<'a>> {
    let mut vm = Vm {
        regs: [Val::Scalar(0); 11],
        stack: [0; 512],
        stack_ptrs: HashMap::new(),
        frame,
        maps,
        values: Vec::new(),
        mark: mark_in,
        insns: 0,
        lookups: Vec::new(),
        trace: String::new(),
        since: 0,
        done: false,
    };
    vm.regs[1] = Val::Ptr(Region::Ctx, 0);
    vm.regs[10] = Val::Ptr(Region::Stack, 512);
    let mut pc = 0usize;
    loop {
        step(&mut vm, prog, &mut pc)
            .with_context(|| format!("at instruction {pc} ({:#04x})", prog[pc].code))?;
        if vm.done {
            return Ok(vm);
        }
    }
}

/// Executes the instruction at `pc`.
fn step(vm: &mut Vm<'_>, prog: &[bpf_insn], pc: &mut usize) -> Result<()> {
    {
        let i = prog.get(*pc).context("jumped out of the program")?;
        vm.insns += 1;
        vm.since += 1;
        if vm.insns > 100_000 {
            bail!("no exit after 100000 instructions");
        }
        let class = i.code & 0x07;
        let (dst, src) = (i.dst_reg() as usize, i.src_reg() as usize);
        let imm = i.imm as i64 as u64;
        match class {
            // ALU, ALU64
            0x04 | 0x07 => {
                let wide = class == 0x07;
                let op = i.code & 0xf0;
                if op == 0xd0 {
                    // BPF_END: byte swap (to_be on a little-endian machine).
                    let v = vm.regs[dst].scalar()?;
                    let r = match (i.imm, i.code & 0x08 != 0) {
                        (16, true) => u64::from((v as u16).swap_bytes()),
                        (32, true) => u64::from((v as u32).swap_bytes()),
                        (64, true) => v.swap_bytes(),
                        (16, false) => v & 0xffff,
                        (32, false) => v & 0xffff_ffff,
                        _ => v,
                    };
                    vm.regs[dst] = Val::Scalar(r);
                } else {
                    let b = if i.code & 0x08 != 0 {
                        vm.regs[src]
                    } else {
                        Val::Scalar(if wide { imm } else { imm & 0xffff_ffff })
                    };
                    vm.regs[dst] = match (vm.regs[dst], b, op) {
                        (_, b, 0xb0) => match b {
                            Val::Scalar(x) if !wide => Val::Scalar(x & 0xffff_ffff),
                            b => b,
                        },
                        (Val::Ptr(r, o), Val::Scalar(x), 0x00) if wide => {
                            Val::Ptr(r, o.wrapping_add(x as i64))
                        }
                        (Val::Scalar(x), Val::Ptr(r, o), 0x00) if wide => {
                            Val::Ptr(r, o.wrapping_add(x as i64))
                        }
                        (Val::Ptr(r, o), Val::Scalar(x), 0x10) if wide => {
                            Val::Ptr(r, o.wrapping_sub(x as i64))
                        }
                        (Val::Ptr(r1, o1), Val::Ptr(r2, o2), 0x10) if r1 == r2 => {
                            Val::Scalar(o1.wrapping_sub(o2) as u64)
                        }
                        (a, b, op) => Val::Scalar(alu(op, a.scalar()?, b.scalar()?, wide)?),
                    };
                }
                *pc += 1;
            }
            // JMP, JMP32
            0x05 | 0x06 => {
                let op = i.code & 0xf0;
                match op {
                    0x00 => *pc = (*pc as i64 + 1 + i64::from(i.off)) as usize,
                    0x80 => {
                        vm.regs[0] = vm.call(i.imm)?;
                        for r in 1..=5 {
                            vm.regs[r] = Val::Scalar(0xdead);
                        }
                        *pc += 1;
                    }
                    0x90 => {
                        let _ = write!(vm.trace, "{}", vm.since);
                        vm.done = true;
                    }
                    op => {
                        let wide = class == 0x05;
                        let a = vm.regs[dst];
                        let b = if i.code & 0x08 != 0 {
                            vm.regs[src]
                        } else {
                            Val::Scalar(imm)
                        };
                        let taken = match (a, b) {
                            (Val::Ptr(r1, o1), Val::Ptr(r2, o2)) if r1 == r2 => {
                                jump_taken(op, o1 as u64, o2 as u64, true)?
                            }
                            // A pointer compared with 0: a lookup's NULL check.
                            (Val::Ptr(..), Val::Scalar(0)) => jump_taken(op, 1, 0, wide)?,
                            (a, b) => jump_taken(op, a.scalar()?, b.scalar()?, wide)?,
                        };
                        *pc = if taken {
                            (*pc as i64 + 1 + i64::from(i.off)) as usize
                        } else {
                            *pc + 1
                        };
                    }
                }
            }
            // LDX, STX, ST
            0x01..=0x03 => {
                let size = match i.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let off = i64::from(i.off);
                match class {
                    0x01 => {
                        let Val::Ptr(r, o) = vm.regs[src] else {
                            bail!("load through a number")
                        };
                        vm.regs[dst] = vm.load(Val::Ptr(r, o + off), size)?;
                    }
                    _ => {
                        let Val::Ptr(r, o) = vm.regs[dst] else {
                            bail!("store through a number")
                        };
                        let v = if class == 0x03 {
                            vm.regs[src]
                        } else {
                            Val::Scalar(imm)
                        };
                        vm.store(Val::Ptr(r, o + off), size, v)?;
                    }
                }
                *pc += 1;
            }
            // LD (ld_imm64 only)
            0x00 if i.code == 0x18 => {
                let hi = prog.get(*pc + 1).context("truncated ld_imm64")?;
                vm.regs[dst] = if src as u8 == BPF_PSEUDO_MAP_FD {
                    let m = vm
                        .maps
                        .iter()
                        .position(|m| m.fd.as_raw_fd() == i.imm)
                        .with_context(|| format!("ld_imm64 of unknown map fd {}", i.imm))?;
                    Val::Ptr(Region::Map(m), 0)
                } else {
                    Val::Scalar((i.imm as u32 as u64) | (u64::from(hi.imm as u32) << 32))
                };
                *pc += 2;
            }
            _ => bail!("opcode {:#x} not emulated", i.code),
        }
    }
    Ok(())
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
        let maps: Vec<KMap> = d
            .maps
            .ids()
            .into_iter()
            .map(|(n, id)| KMap::open(n, id))
            .collect::<Result<_>>()?;
        let prog = program_insns(
            Dp::Table.variant().object(),
            lvs_ebpf_common::PROGRAM_NAME,
            &maps,
        )?;
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
        let maps: Vec<KMap> = d
            .maps
            .ids()
            .into_iter()
            .map(|(n, id)| KMap::open(n, id))
            .collect::<Result<_>>()?;
        let prog = program_insns(dp.variant().object(), lvs_ebpf_common::PROGRAM_NAME, &maps)?;
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

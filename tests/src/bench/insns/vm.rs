//! The interpreter's machine: registers and values (numbers or pointers into a region),
//! the stack, the `__sk_buff` fields the program reads, map lookups through [`KMap`], and
//! [`interpret`], which runs a program to its exit. `exec`: what each instruction does.

mod exec;

use std::{collections::HashMap, fmt::Write as _};

use anyhow::{Context as _, Result, bail};
use aya_obj::generated::bpf_insn;

use super::kmap::KMap;
use exec::step;

const FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const FUNC_SKB_PULL_DATA: i32 = 39;

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

pub(super) struct Vm<'a> {
    regs: [Val; 11],
    stack: [u8; 512],
    stack_ptrs: HashMap<i64, Val>,
    frame: &'a [u8],
    maps: &'a [KMap],
    values: Vec<Vec<u8>>,
    pub(super) mark: u32,
    pub(super) insns: u64,
    pub(super) lookups: Vec<usize>,
    pub(super) trace: String,
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

/// Runs `prog` on `frame`; the instruction count, lookups and the mark it left.
pub(super) fn interpret<'a>(
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

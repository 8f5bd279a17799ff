//! What each BPF instruction does to the machine: ALU (with pointer arithmetic), jumps and
//! calls, loads and stores, and ld_imm64 of a map.

use std::{fmt::Write as _, os::fd::AsRawFd as _};

use anyhow::{Context as _, Result, bail};
use aya_obj::generated::bpf_insn;

use super::{Region, Val, Vm};

const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Executes the instruction at `pc`.
pub(super) fn step(vm: &mut Vm<'_>, prog: &[bpf_insn], pc: &mut usize) -> Result<()> {
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

//! BPF_PROG_TEST_RUN for TC programs: run a frame through the loaded program in the
//! kernel and read back the `__sk_buff` it left (ctx_out), in particular `skb->mark`;
//! [`explain`] runs the program's explaining twin; [`prog_image`] reads what the kernel
//! made of a loaded program (its xlated instructions).
//!
//! Why not aya's own `TestRun`: aya 0.14 has `aya::programs::TestRun`
//! (`SchedClassifier::test_run(TestRunOptions { data_in, data_out, ctx_in, ctx_out,
//! repeat, .. })` returning `return_value` and `duration`), which covers every field we
//! use, but only as a method of a `SchedClassifier` that owns its program. Our callers
//! hold a program only by fd (a datapath's program, its `lvs_explain` twin, the programs
//! `import --verify` and the benchmark load), and aya 0.14 cannot run a test on a bare
//! fd: `ProgramFd` has no public constructor from a raw fd, `sys::bpf_prog_test_run` is
//! `pub(crate)`, and `SchedClassifier::from_pin` needs a bpffs pin. So the syscall stays
//! hand-written here, on the same `union bpf_attr` layout aya uses. Likewise
//! `BPF_OBJ_GET_INFO_BY_FD` below: aya's `ProgramInfo` (0.14) exposes no xlated
//! instructions.

use std::os::fd::RawFd;

use lvs_ebpf_common::{Reason, detail};

use crate::{
    bpf::bpf_cmd,
    error::{Error, Result},
};

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `struct __sk_buff` as of Linux 5.16+ (192 bytes); only the fields the kernel lets
/// test runs set or that we read are named.
#[repr(C)]
#[derive(Clone, Copy)]
struct SkBuff {
    len: u32,
    pkt_type: u32,
    mark: u32,
    /// queue_mapping .. tc_index.
    _mid: [u32; 9],
    cb: [u32; 5],
    rest: [u32; 31],
}
const _: () = assert!(std::mem::size_of::<SkBuff>() == 192);

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Result of one test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (`-1` = TC_ACT_UNSPEC / TCX_NEXT).
    pub retval: i32,
    /// `skb->mark` after the program.
    pub mark: u32,
    /// Mean run time per repetition in ns, as the kernel measured it.
    pub duration_ns: u32,
}

/// Runs `frame` (starting at the Ethernet header) through the TC program `prog_fd`
/// `repeat` times with `skb->mark = mark_in`.
pub fn run_skb(prog_fd: RawFd, frame: &[u8], mark_in: u32, repeat: u32) -> Result<TestRunOutput> {
    run(prog_fd, frame, mark_in, repeat).map(|(out, _)| out)
}

const ZERO_SKB: SkBuff = SkBuff {
    len: 0,
    pkt_type: 0,
    mark: 0,
    _mid: [0; 9],
    cb: [0; 5],
    rest: [0; 31],
};

fn run(prog_fd: RawFd, frame: &[u8], mark_in: u32, repeat: u32) -> Result<(TestRunOutput, SkBuff)> {
    let ctx_in = SkBuff {
        mark: mark_in,
        ..ZERO_SKB
    };
    let mut ctx_out = ZERO_SKB;
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_size_out: data_out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<SkBuff>() as u32,
        ctx_size_out: std::mem::size_of::<SkBuff>() as u32,
        ctx_in: &ctx_in as *const SkBuff as u64,
        ctx_out: &mut ctx_out as *mut SkBuff as u64,
        ..TestAttr::default()
    };
    // SAFETY: attr points at valid buffers of the sizes it states for the duration of
    // the call.
    unsafe { bpf_cmd(BPF_PROG_TEST_RUN, &mut attr) }.map_err(Error::TestRun)?;
    Ok((
        TestRunOutput {
            retval: attr.retval as i32,
            mark: ctx_out.mark,
            duration_ns: attr.duration,
        },
        ctx_out,
    ))
}

/// The VIP a frame matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedVip {
    /// Its mark (set on the frame unless it came from a peer).
    pub mark: u32,
    /// Its counter slot (index into the VIP info and counter maps).
    pub slot: u32,
    /// Matched through its any-port entry.
    pub any_port: bool,
}

/// What the datapath does with a frame, and why, from the program's own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub reason: Reason,
    /// The mark the program sets (`Some` exactly when `reason` is `Marked`).
    pub mark: Option<u32>,
    /// The VIP that matched (`Marked` and `Peer`).
    pub vip: Option<MatchedVip>,
    /// The frame carried no readable port: `Some(Reason::Fragment)` or
    /// `Some(Reason::L4Truncated)`.
    pub no_port: Option<Reason>,
    pub ipv6: bool,
    /// Headers were not all in the linear part ([`detail::PULLED`]; a test run's frame is
    /// always linear).
    pub pulled: bool,
}

/// Runs `frame` through the explaining twin of the program (`lvs_explain`, fd from
/// [`crate::datapath::Datapath::explain_fd`]): the same decision code as the attached
/// program, on the same maps, without touching any counter.
pub fn explain(explain_fd: RawFd, frame: &[u8]) -> Result<Explanation> {
    const UNMARKED: u32 = 0;
    let (out, ctx) = run(explain_fd, frame, UNMARKED, 1)?;
    let reason = Reason::from_u32(out.retval as u32).ok_or_else(|| {
        Error::TestRun(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the explain program returned {}, not a reason code",
                out.retval
            ),
        ))
    })?;
    let [vip_mark, slot, bits, _, _] = ctx.cb;
    let vip = matches!(reason, Reason::Marked | Reason::Peer).then_some(MatchedVip {
        mark: vip_mark,
        slot,
        any_port: bits & detail::ANY_PORT != 0,
    });
    let no_port = if bits & detail::FRAGMENT != 0 {
        Some(Reason::Fragment)
    } else if bits & detail::L4_TRUNCATED != 0 {
        Some(Reason::L4Truncated)
    } else {
        None
    };
    Ok(Explanation {
        reason,
        mark: (reason == Reason::Marked).then_some(out.mark),
        vip,
        no_port,
        ipv6: bits & detail::IPV6 != 0,
        pulled: bits & detail::PULLED != 0,
    })
}

/// One BPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_JMP_CALL: u8 = 0x85;
const BPF_PSEUDO_CALL: u8 = 1;
const BPF_EXIT: u8 = 0x95;

impl Insn {
    /// A call of another BPF function of the program (a subprogram, e.g. a `memset`
    /// compiler_builtins left in): a real call and return on the hot path.
    pub fn is_subprogram_call(&self) -> bool {
        self.code == BPF_JMP_CALL && self.src == BPF_PSEUDO_CALL
    }
    /// A call of a kernel helper or function the verifier did not inline.
    pub fn is_kernel_call(&self) -> bool {
        self.code == BPF_JMP_CALL && self.src != BPF_PSEUDO_CALL
    }
    pub fn is_exit(&self) -> bool {
        self.code == BPF_EXIT
    }
}

/// What the kernel made of a loaded program.
#[derive(Debug, Clone)]
pub struct ProgImage {
    /// The instructions after the verifier's rewrites (inlined map lookups and helpers).
    pub xlated: Vec<Insn>,
    /// Bytes of machine code the JIT emitted.
    pub jited_len: u32,
    /// Functions the JIT emitted (1 when the program has no subprograms).
    pub functions: u32,
    /// Instructions the verifier processed (its complexity measure; 0 before Linux 5.16).
    pub verified_insns: u32,
}

impl ProgImage {
    pub fn subprogram_calls(&self) -> usize {
        self.xlated
            .iter()
            .filter(|i| i.is_subprogram_call())
            .count()
    }
    pub fn kernel_calls(&self) -> usize {
        self.xlated.iter().filter(|i| i.is_kernel_call()).count()
    }
}

/// The prefix of `struct bpf_prog_info` up to `attach_btf_obj_id` (older kernels fill
/// what they know and leave the rest zero).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    run_time_ns: u64,
    run_cnt: u64,
    recursion_misses: u64,
    verified_insns: u32,
    attach_btf_obj_id: u32,
}
const _: () = assert!(std::mem::size_of::<ProgInfo>() == 224);

fn prog_info(fd: RawFd, info: &mut ProgInfo) -> Result<()> {
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: info as *mut ProgInfo as u64,
    };
    // SAFETY: attr points at a ProgInfo of info_len bytes and at buffers its lengths
    // describe.
    unsafe { bpf_cmd(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .map(drop)
        .map_err(|e| Error::io("reading the program's info (BPF_OBJ_GET_INFO_BY_FD)", e))
}

/// The xlated instructions and JIT facts of the loaded program `fd` (needs
/// CAP_SYS_ADMIN or CAP_BPF + CAP_PERFMON for the instructions).
pub fn prog_image(fd: RawFd) -> Result<ProgImage> {
    let mut info = ProgInfo::default();
    prog_info(fd, &mut info)?;
    let n = info.xlated_prog_len as usize / 8;
    let mut raw = vec![0u64; n];
    let mut info2 = ProgInfo {
        xlated_prog_len: (n * 8) as u32,
        xlated_prog_insns: raw.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    prog_info(fd, &mut info2)?;
    let xlated = raw
        .iter()
        .map(|w| {
            let b = w.to_le_bytes();
            Insn {
                code: b[0],
                dst: b[1] & 0xf,
                src: b[1] >> 4,
                off: i16::from_le_bytes([b[2], b[3]]),
                imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            }
        })
        .collect();
    Ok(ProgImage {
        xlated,
        jited_len: info.jited_prog_len,
        functions: info.nr_jited_ksyms.max(1),
        verified_insns: info.verified_insns,
    })
}

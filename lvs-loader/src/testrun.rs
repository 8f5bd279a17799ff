//! BPF_PROG_TEST_RUN for TC programs: run a frame through the loaded program in the
//! kernel and read back the `__sk_buff` it left (ctx_out), in particular `skb->mark`.

use std::os::fd::RawFd;

use crate::error::{Error, Result};

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// `struct __sk_buff` as of Linux 5.16+ (192 bytes); only the fields the kernel lets
/// test runs set or that we read are named.
#[repr(C)]
#[derive(Clone, Copy)]
struct SkBuff {
    len: u32,
    pkt_type: u32,
    mark: u32,
    rest: [u32; 45],
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
    let ctx_in = SkBuff {
        len: 0,
        pkt_type: 0,
        mark: mark_in,
        rest: [0; 45],
    };
    let mut ctx_out = SkBuff {
        len: 0,
        pkt_type: 0,
        mark: 0,
        rest: [0; 45],
    };
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
    // SAFETY: attr points at valid buffers for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc != 0 {
        return Err(Error::TestRun(std::io::Error::last_os_error()));
    }
    Ok(TestRunOutput {
        retval: attr.retval as i32,
        mark: ctx_out.mark,
        duration_ns: attr.duration,
    })
}

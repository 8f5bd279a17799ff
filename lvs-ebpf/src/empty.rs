//! The benchmark floor: a TC classifier that only returns `TC_ACT_UNSPEC`.
//!
//! Not part of the datapath: `lvs-bench` runs it through BPF_PROG_TEST_RUN to measure
//! what running *any* program costs, so lvs-ebpf's own cost can be read against it.
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn lvs_empty(_ctx: TcContext) -> i32 {
    -1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

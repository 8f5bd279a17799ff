//! `lvs-htab`: the benchmark contender "lvs-ebpf (htab)", the same classifier with the
//! VIPs and peers in kernel hash maps (`lookup_htab.rs`). Never attached by the loader;
//! `lvs-bench` runs it side by side with the table datapath.
#![no_std]
#![no_main]
// `asm!` on bpf: the bounding `&` in parse.rs (`Pkt::ptr_at_walked`).
#![feature(asm_experimental_arch)]

mod counters;
mod decide;
mod lookup_htab;
mod maps;
mod parse;

use aya_ebpf::{macros::classifier, programs::TcContext};

use crate::{decide::decide, lookup_htab::Htab};

const TC_ACT_UNSPEC: i32 = -1;

#[classifier]
pub fn lvs_ingress(ctx: TcContext) -> i32 {
    let _ = decide::<true, Htab>(&ctx);
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

//! lvs-ebpf: TC ingress classifier replacing the LVS-HOWTO two-box active-active rule
//!
//! ```text
//! iptables -t mangle -I PREROUTING -d $VIP -p tcp -m tcp --dport $PORT \
//!          -m mac ! --mac-source $PEER_MAC -j MARK --set-mark $MARK
//! ```
//!
//! For every packet to a VIP whose source MAC is not a peer director, `skb->mark` is set to
//! the VIP's mark. Nothing is ever dropped or redirected, and the program always returns
//! `TC_ACT_UNSPEC` (= `TCX_NEXT`) so later TC programs still run.
//!
//! The object holds a second classifier, `lvs_explain`, never attached: the same decision
//! code without counters, which returns the [`lvs_ebpf_common::Reason`] so that
//! BPF_PROG_TEST_RUN can explain a frame with the code the kernel runs.
#![no_std]
#![no_main]
// `asm!` on bpf: the bounding `&` in parse.rs (`Pkt::ptr_at_walked`).
#![feature(asm_experimental_arch)]

mod counters;
mod decide;
mod lookup;
mod maps;
mod parse;
mod trace;

use aya_ebpf::{macros::classifier, programs::TcContext};

use crate::{decide::decide, lookup::Table};

/// `TC_ACT_UNSPEC` for cls_bpf direct-action, `TCX_NEXT` for TCX: continue with the next
/// program/filter, then the default action (pass).
const TC_ACT_UNSPEC: i32 = -1;

#[classifier]
pub fn lvs_ingress(ctx: TcContext) -> i32 {
    let d = decide::<true, Table>(&ctx);
    trace::maybe_emit(&ctx, &d);
    TC_ACT_UNSPEC
}

/// Explains one frame: returns the reason code, leaves `skb->mark` as the main program
/// would, and puts the VIP's mark, its counter slot (or `u32::MAX`) and the detail bits
/// in `cb[0..3]`. Touches no counter.
#[classifier]
pub fn lvs_explain(mut ctx: TcContext) -> i32 {
    let d = decide::<false, Table>(&ctx);
    let cb = ctx.cb_mut();
    cb[0] = d.mark;
    cb[1] = d.slot;
    cb[2] = d.detail;
    d.reason as i32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

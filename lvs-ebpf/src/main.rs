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
#![no_std]
#![no_main]

mod counters;
mod lookup;
mod maps;
mod parse;

use aya_ebpf::{macros::classifier, programs::TcContext};
use lvs_ebpf_common::global;

use crate::parse::Verdict;

/// `TC_ACT_UNSPEC` for cls_bpf direct-action, `TCX_NEXT` for TCX: continue with the next
/// program/filter, then the default action (pass).
const TC_ACT_UNSPEC: i32 = -1;

#[classifier]
pub fn lvs_ingress(ctx: TcContext) -> i32 {
    classify(&ctx);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn classify(ctx: &TcContext) {
    counters::global_inc(global::SEEN);
    match parse::parse(ctx) {
        Verdict::Candidate(pkt) => lookup::mark_if_vip(ctx, &pkt),
        Verdict::OtherProtocol => counters::global_inc(global::NO_VIP),
        Verdict::NotIp => counters::global_inc(global::NOT_IP),
        Verdict::Malformed => counters::global_inc(global::MALFORMED),
        Verdict::Nonlinear => counters::global_inc(global::NONLINEAR),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

//! The packet fixtures' shared part (`tests/tests/fixtures_*.rs`, one file per theme):
//! the frames' addresses, and the three checks every fixture table goes through. A
//! fixture is `(description, frame, expected skb->mark, expected reason)`, Katran-style;
//! the config is [`conf::MARKERS`].

use std::net::{Ipv4Addr, Ipv6Addr};

pub use lvs_ebpf_common::Reason;

use crate::{
    conf,
    frames::{Frame, IPPROTO_TCP},
    harness::{Loaded, hex},
    model,
    netns::PinRoot,
};

/// `(description, frame, expected mark, expected reason)`.
pub type Case = (&'static str, Vec<u8>, u32, Reason);

pub const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The two peers of [`conf::MARKERS`] (the second written with dashes there).
pub const PEER1: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
pub const PEER2: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xd8];
pub const SRC4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// web (:80/tcp, 0x3), :53/udp (0x13), :9/sctp (0x23).
pub const VIP4: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
/// Any TCP port (0x40), :443/tcp (0x41).
pub const ANY4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 7);
/// :80/tcp (0x6).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56);
/// Any UDP port (0x60).
pub const ANY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x57);

/// The mark a frame arrives with; "untouched" means it is still this afterwards.
pub const PRE: u32 = 0x77;
pub const UNTOUCHED: u32 = PRE;

/// A client's TCP SYN to VIP4:`dport`.
pub fn tcp4(dport: u16) -> Frame {
    Frame::v4(CLIENT, SRC4, VIP4, IPPROTO_TCP, 40000, dport)
}

/// A client's TCP SYN to VIP6:`dport`.
pub fn tcp6(dport: u16) -> Frame {
    Frame::v6(CLIENT, SRC6, VIP6, IPPROTO_TCP, 40000, dport)
}

/// The program loaded with [`conf::MARKERS`].
pub fn loaded() -> Loaded {
    Loaded::new(conf::MARKERS)
}

fn fail_if_any(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} {what} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every case through the program (arriving with mark [`PRE`]): TC_ACT_UNSPEC and the
/// expected mark; and the reference model agrees with the fixture, so the model and the
/// fixtures can't drift apart.
pub fn assert_marks(cases: &[Case]) {
    let dp = loaded();
    let mut failures = Vec::new();
    for (name, frame, expected, _) in cases {
        let out = dp.run(frame, PRE);
        if out.retval != -1 {
            failures.push(format!(
                "{name}: program returned {} instead of TC_ACT_UNSPEC (-1)",
                out.retval
            ));
        }
        if out.mark != *expected {
            failures.push(format!(
                "{name}: mark {:#x}, expected {expected:#x}\n    frame {}",
                out.mark,
                hex(frame)
            ));
        }
        let m = model::evaluate(&dp.config, frame);
        let model_mark = m.bpf_mark(PRE);
        if model_mark != *expected {
            failures.push(format!(
                "{name}: reference model says {model_mark:#x}, fixture says {expected:#x}"
            ));
        }
    }
    fail_if_any("fixture", failures);
}

/// The explaining twin (`lvs_explain`, the same decision code without counters) gives
/// every case's reason, the mark the main program sets and the VIP that matched; and
/// explaining touches no counter.
pub fn assert_explained(cases: &[Case]) {
    let mut dp = loaded();
    let fd = dp.dp.explain_fd().expect("loading lvs_explain");
    let mut failures = Vec::new();
    for (name, frame, expected, reason) in cases {
        let e = lvs_loader::testrun::explain(fd, frame).expect("explain");
        if e.reason != *reason {
            failures.push(format!(
                "{name}: reason {:?}, expected {reason:?}",
                e.reason
            ));
        }
        let want_mark = (*expected != UNTOUCHED).then_some(*expected);
        if e.mark != want_mark {
            failures.push(format!("{name}: mark {:?}, expected {want_mark:?}", e.mark));
        }
        if matches!(reason, Reason::Marked | Reason::Peer) != e.vip.is_some() {
            failures.push(format!("{name}: matched VIP {:?}", e.vip));
        }
        if let (Some(vip), Some(m)) = (e.vip, want_mark)
            && vip.mark != m
        {
            failures.push(format!("{name}: VIP mark {:#x}, expected {m:#x}", vip.mark));
        }
    }
    fail_if_any("explain", failures);
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert!(
        s.totals.values().all(|&v| v == 0),
        "explain counted: {:?}",
        s.totals
    );
}

/// Like [`assert_explained`], against the maps pinned by another loader (what
/// `lvs-loader explain` does with an attachment).
pub fn assert_explained_from_pins(cases: &[Case]) {
    let dp = loaded();
    let pins = PinRoot::new("fixpins");
    std::fs::create_dir_all(&pins.path).expect("pin dir");
    dp.dp.maps.pin(&pins.path).expect("pinning the maps");
    let mut pinned = lvs_loader::datapath::Datapath::load_pinned(&pins.path).expect("load_pinned");
    let fd = pinned.explain_fd().expect("lvs_explain");
    let mut failures = Vec::new();
    for (name, frame, expected, reason) in cases {
        let e = lvs_loader::testrun::explain(fd, frame).expect("explain");
        let want_mark = (*expected != UNTOUCHED).then_some(*expected);
        if (e.reason, e.mark) != (*reason, want_mark) {
            failures.push(format!(
                "{name}: {:?} {:?}, expected {reason:?} {want_mark:?}",
                e.reason, e.mark
            ));
        }
    }
    fail_if_any("pinned explain", failures);
}

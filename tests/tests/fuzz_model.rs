//! Property test: random and mutated frames, arriving with random marks, through the real
//! program (BPF_PROG_TEST_RUN) must leave with exactly the mark the userspace reference
//! model predicts; with [`CONFIG`] (full masks) and with random `mark_mask`s
//! ([`framegen::masked_config`]).

use std::cell::RefCell;

use lvs_ebpf_common::Reason;
use lvs_loader::config::Config;
use lvs_tests::{
    framegen::{self, CONFIG, frame, premark},
    harness::{Loaded, hex},
    model::{self, MarkOp},
};
use proptest::prelude::*;

/// Flip a few bytes of an otherwise structured frame.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        frame(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(mut f, flips)| {
            for (i, b) in flips {
                let i = i.index(f.len());
                f[i] = b;
            }
            f
        })
}

/// The VIPs' `(mark, mark_mask)`, for failure messages.
fn masks(config: &Config) -> String {
    config
        .vips
        .iter()
        .map(|v| {
            format!(
                "{}:{:?} {:#x}/{:#x}",
                v.address, v.port, v.mark, v.mark_mask
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check(dp: &Loaded, frame: &[u8], pre: u32) -> Result<(), TestCaseError> {
    let out = match dp.try_run(frame, pre) {
        Ok(o) => o,
        // The kernel refuses IP frames shorter than the IP header: nothing to compare.
        Err(lvs_loader::Error::TestRun(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("test run failed: {e}"))),
    };
    let exp = model::evaluate(&dp.config, frame);
    prop_assert_eq!(out.retval, -1);
    prop_assert_eq!(
        out.mark,
        exp.bpf_mark(pre),
        "frame {} arriving with mark {:#x}, model {:?}, VIPs {}",
        hex(frame),
        pre,
        exp.bpf,
        masks(&dp.config)
    );
    // The explaining twin runs the same decision code on the frame arriving unmarked:
    // the mark the model gives an unmarked frame, a reason that agrees with it, and the
    // matched VIP's mark.
    let e = lvs_loader::testrun::explain(dp.explain_fd, frame)
        .map_err(|e| TestCaseError::fail(format!("explain failed: {e}")))?;
    prop_assert_eq!(
        e.mark,
        exp.bpf.map(|op| op.apply(0)),
        "explain, frame {}",
        hex(frame)
    );
    prop_assert_eq!(
        e.reason == Reason::Marked,
        exp.bpf.is_some(),
        "explain reason {:?}, frame {}",
        e.reason,
        hex(frame)
    );
    if let (Some(op), Some(vip)) = (exp.bpf, e.vip) {
        prop_assert_eq!(vip.mark, op.value, "explain VIP, frame {}", hex(frame));
    }
    Ok(())
}

/// Frames for the masked configs: structured, some mutated.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => frame(), 1 => mutated()]
}

/// Frames sent per random config (each config is installed with one reload).
const FRAMES_PER_CONFIG: usize = 24;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn structured_frames_match_the_model(f in frame(), pre in premark()) {
        thread_local!(static DP: Loaded = Loaded::new(CONFIG));
        DP.with(|dp| check(dp, &f, pre))?;
    }

    #[test]
    fn mutated_frames_match_the_model(f in mutated(), pre in premark()) {
        thread_local!(static DP: Loaded = Loaded::new(CONFIG));
        DP.with(|dp| check(dp, &f, pre))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, failure_persistence: None, .. ProptestConfig::default() })]

    /// Random `mark_mask`s (global, per VIP, shared and distinct, up to 9 classes) and
    /// frames arriving with random marks: `skb->mark` leaves as xt_MARK would leave it.
    #[test]
    fn masked_configs_match_the_model(
        config in framegen::masked_config(),
        frames in prop::collection::vec((any_frame(), premark()), FRAMES_PER_CONFIG),
    ) {
        thread_local!(static DP: RefCell<Loaded> = RefCell::new(Loaded::new(CONFIG)));
        DP.with_borrow_mut(|dp| {
            dp.apply_config(config);
            frames.iter().try_for_each(|(f, pre)| check(dp, f, *pre))
        })?;
    }
}

/// The generator must actually reach the interesting outcomes, or the properties above
/// prove little: marked, peer/unmarked, and every mark of the config.
#[test]
fn generator_covers_every_outcome() {
    use proptest::strategy::ValueTree as _;
    let dp = Loaded::new(CONFIG);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut marks = std::collections::BTreeMap::<u32, usize>::new();
    let strategy = frame();
    for _ in 0..5000 {
        let f = strategy.new_tree(&mut runner).expect("tree").current();
        let e = model::evaluate(&dp.config, &f);
        *marks.entry(e.bpf.map_or(0, |op| op.value)).or_default() += 1;
    }
    for m in [0, 0x3, 0x13, 0x23, 0x40, 0x41, 0x42, 0x6, 0x60, 0x61] {
        assert!(
            marks.get(&m).copied().unwrap_or(0) >= 50,
            "mark {m:#x} reached too rarely (mark: count) {marks:?}"
        );
    }
}

/// The masked configs reach what tells a correct xt_MARK from a wrong one: every VIP
/// masked (a global mask, or one each),
/// partial masks marking frames whose arriving mark has bits outside the mask (kept) and
/// inside it (replaced), 8 or more partial mask classes (the class index's top bit),
/// marks with bits outside their mask (`^` vs `|`), and an any-port VIP whose mask the
/// exact-port one lacks (iptables composes both rules, lvs-ebpf applies one).
#[test]
fn masked_generator_covers_the_mask_cases() {
    use proptest::strategy::ValueTree as _;
    const CONFIGS: usize = 400;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let configs = framegen::masked_config();
    let frames = (frame(), premark());
    let (mut all_partial, mut many_classes, mut outside, mut overlapping) = (0, 0, 0, 0);
    let (mut kept, mut replaced, mut composed) = (0, 0, 0);
    for _ in 0..CONFIGS {
        let c = configs.new_tree(&mut runner).expect("tree").current();
        let partial: std::collections::BTreeSet<u32> = c
            .vips
            .iter()
            .map(|v| v.mark_mask)
            .filter(|&m| m != MarkOp::FULL_MASK)
            .collect();
        all_partial += usize::from(c.vips.iter().all(|v| v.mark_mask != MarkOp::FULL_MASK));
        many_classes += usize::from(partial.len() >= 8);
        outside += usize::from(c.vips.iter().any(|v| v.mark & !v.mark_mask != 0));
        overlapping += usize::from(!lvs_loader::export::overlapping_masks(&c).is_empty());
        for _ in 0..FRAMES_PER_CONFIG {
            let (f, pre) = frames.new_tree(&mut runner).expect("tree").current();
            let e = model::evaluate(&c, &f);
            if let Some(op) = e.bpf.filter(|op| op.mask != MarkOp::FULL_MASK) {
                kept += usize::from(pre & !op.mask != 0);
                replaced += usize::from(pre & op.mask != 0);
            }
            if let model::Netfilter::Mark(Some(nf)) = e.netfilter {
                composed += usize::from(e.bpf.is_some_and(|b| b != nf));
            }
        }
    }
    let counts = format!(
        "all VIPs partial {all_partial}, >=8 classes {many_classes}, outside bits {outside}, overlapping {overlapping}; frames: kept {kept}, replaced {replaced}, composed {composed}"
    );
    eprintln!("{CONFIGS} masked configs: {counts}");
    for (what, n, min) in [
        ("all VIPs partial", all_partial, CONFIGS / 10),
        ("8+ classes", many_classes, CONFIGS / 40),
        ("mark bits outside the mask", outside, CONFIGS / 10),
        ("overlapping any-port masks", overlapping, CONFIGS / 10),
        ("bits kept", kept, CONFIGS),
        ("bits replaced", replaced, CONFIGS),
        ("iptables composing two rules", composed, CONFIGS / 10),
    ] {
        assert!(n >= min, "{what}: {n} < {min} ({counts})");
    }
}

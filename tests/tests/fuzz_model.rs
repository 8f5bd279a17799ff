//! Property test: random and mutated frames through the real program (BPF_PROG_TEST_RUN)
//! must get exactly the mark the userspace reference model predicts.

use lvs_tests::{
    framegen::{CONFIG, frame},
    harness::{Loaded, hex},
    model,
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

fn check(dp: &Loaded, frame: &[u8]) -> Result<(), TestCaseError> {
    let pre = 0x5a5a_0000;
    let out = match dp.try_run(frame, pre) {
        Ok(o) => o,
        // The kernel refuses IP frames shorter than the IP header: nothing to compare.
        Err(lvs_loader::Error::TestRun(e)) if e.raw_os_error() == Some(libc_einval()) => {
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("test run failed: {e}"))),
    };
    let expected = model::evaluate(&dp.config, frame).bpf_mark.unwrap_or(pre);
    prop_assert_eq!(out.retval, -1);
    prop_assert_eq!(out.mark, expected, "frame {}", hex(frame));
    // The explaining twin runs the same decision code: same mark, and a reason that
    // agrees with it.
    let e = lvs_loader::testrun::explain(dp.explain_fd, frame)
        .map_err(|e| TestCaseError::fail(format!("explain failed: {e}")))?;
    prop_assert_eq!(
        e.mark.unwrap_or(pre),
        expected,
        "explain, frame {}",
        hex(frame)
    );
    prop_assert_eq!(
        e.reason == lvs_ebpf_common::Reason::Marked,
        expected != pre,
        "explain reason {:?}, frame {}",
        e.reason,
        hex(frame)
    );
    Ok(())
}

fn libc_einval() -> i32 {
    22
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn structured_frames_match_the_model(f in frame()) {
        thread_local!(static DP: Loaded = Loaded::new(CONFIG));
        DP.with(|dp| check(dp, &f))?;
    }

    #[test]
    fn mutated_frames_match_the_model(f in mutated()) {
        thread_local!(static DP: Loaded = Loaded::new(CONFIG));
        DP.with(|dp| check(dp, &f))?;
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
        *marks.entry(e.bpf_mark.unwrap_or(0)).or_default() += 1;
    }
    for m in [0, 0x3, 0x13, 0x23, 0x40, 0x41, 0x42, 0x6, 0x60, 0x61] {
        assert!(
            marks.get(&m).copied().unwrap_or(0) >= 50,
            "mark {m:#x} reached too rarely (mark: count) {marks:?}"
        );
    }
}

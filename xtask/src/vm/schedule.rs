//! Which guest runs in which of the parallel lanes, from what each guest is expected to
//! take under TCG on the 2-core CI machine.
//!
//! The guests run two at a time. Handing them out longest first to whichever lane is free
//! (longest-processing-time) left one lane idle for 175 s at the end of `vm-test --ci` on
//! 2026-11-27 (lanes of 1,215 s and 1,053 s). The set is small (5 guests with `--ci`, 6 with
//! `--all`), so the lanes are planned exhaustively: the assignment with the shortest
//! longest lane, each lane's guests longest first.

/// What one LVS scenario took in a guest under TCG (`vm-test --ci`, 2026-11-27; two-box
/// is the mean of the three kernels).
fn scenario_secs(scenario: &str) -> u32 {
    match scenario {
        "two-box" => 83,
        "failover" => 250,
        "two-nic" => 63,
        "udp" => 67,
        "three-box" => 50,
        "ipv6" => 39,
        _ => 100,
    }
}

/// Booting a guest and its report, beyond the scenarios it runs.
const BOOT_SECS: u32 = 10;

/// The tests job on `kernel` (the 6.12 guest also runs the TCX paths).
pub fn tests_secs(kernel: &str) -> u32 {
    match kernel {
        "6.12" => 813,
        _ => 706,
    }
}

/// The LVS job running `scenarios` (empty: every scenario, the guest's default).
pub fn lvs_secs(scenarios: &[&str]) -> u32 {
    let all = super::SCENARIOS;
    let list = if scenarios.is_empty() { all } else { scenarios };
    BOOT_SECS + list.iter().map(|s| scenario_secs(s)).sum::<u32>()
}

/// Assignments searched exhaustively up to this many (lanes ^ guests).
const EXHAUSTIVE: usize = 1 << 16;

/// The guests (indices into `secs`) each of `lanes` lanes runs, in order.
pub fn plan(secs: &[u32], lanes: usize) -> Vec<Vec<usize>> {
    let lanes = lanes.max(1);
    let n = secs.len();
    let mut best: Option<(u64, Vec<usize>)> = None;
    let exhaustive = (lanes as u128)
        .checked_pow(n as u32)
        .is_some_and(|c| c <= EXHAUSTIVE as u128);
    if exhaustive && n > 0 {
        // Guest 0 in lane 0 (the lanes are interchangeable), every other guest anywhere.
        let mut lane_of = vec![0usize; n];
        loop {
            let span = makespan(secs, &lane_of, lanes);
            if best.as_ref().is_none_or(|(b, _)| span < *b) {
                best = Some((span, lane_of.clone()));
            }
            // Next assignment (odometer over guests 1..n).
            let mut i = 1;
            while i < n {
                lane_of[i] += 1;
                if lane_of[i] < lanes {
                    break;
                }
                lane_of[i] = 0;
                i += 1;
            }
            if i >= n {
                break;
            }
        }
    }
    let lane_of = match best {
        Some((_, lane_of)) => lane_of,
        None => longest_first(secs, lanes),
    };
    let mut plan = vec![Vec::new(); lanes];
    for (guest, &lane) in lane_of.iter().enumerate() {
        plan[lane].push(guest);
    }
    for lane in &mut plan {
        lane.sort_by_key(|&g| (std::cmp::Reverse(secs[g]), g));
    }
    plan.retain(|lane| !lane.is_empty());
    plan
}

fn makespan(secs: &[u32], lane_of: &[usize], lanes: usize) -> u64 {
    let mut load = vec![0u64; lanes];
    for (guest, &lane) in lane_of.iter().enumerate() {
        load[lane] += u64::from(secs[guest]);
    }
    load.into_iter().max().unwrap_or(0)
}

/// Longest-processing-time: each guest, longest first, to the least loaded lane.
fn longest_first(secs: &[u32], lanes: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..secs.len()).collect();
    order.sort_by_key(|&g| (std::cmp::Reverse(secs[g]), g));
    let mut load = vec![0u64; lanes];
    let mut lane_of = vec![0usize; secs.len()];
    for g in order {
        let lane = (0..lanes).min_by_key(|&l| (load[l], l)).unwrap_or(0);
        load[lane] += u64::from(secs[g]);
        lane_of[g] = lane;
    }
    lane_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(secs: &[u32], plan: &[Vec<usize>]) -> u32 {
        plan.iter()
            .map(|lane| lane.iter().map(|&g| secs[g]).sum())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_ci_guests_split_into_even_lanes() {
        // 6.12 tests, 5.10 tests, 5.10 lvs, 6.1 lvs, 6.12 lvs as measured on 2026-11-27:
        // longest first to the free lane gave 1,215 s; the best split is 1,160 s.
        let secs = [813, 706, 347, 227, 175];
        let plan = plan(&secs, 2);
        assert_eq!(span(&secs, &plan), 1160, "{plan:?}");
        let lpt = longest_first(&secs, 2);
        let mut lanes = vec![Vec::new(); 2];
        for (g, &l) in lpt.iter().enumerate() {
            lanes[l].push(g);
        }
        assert!(span(&secs, &lanes) > 1160);
        // Every guest exactly once, each lane longest first.
        let mut all: Vec<usize> = plan.concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        for lane in &plan {
            assert!(
                lane.windows(2).all(|w| secs[w[0]] >= secs[w[1]]),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn one_lane_runs_everything_longest_first() {
        let plan = plan(&[5, 9, 7], 1);
        assert_eq!(plan, vec![vec![1, 2, 0]]);
    }

    #[test]
    fn more_lanes_than_guests_leaves_no_empty_lane() {
        let plan = plan(&[5, 9], 4);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan.concat().len(), 2);
    }

    #[test]
    fn large_sets_fall_back_to_longest_first() {
        // 2^20 assignments: past the exhaustive bound.
        let secs: Vec<u32> = (1..=20).collect();
        let plan = plan(&secs, 2);
        let sum: u32 = secs.iter().sum();
        assert!(span(&secs, &plan) <= sum / 2 + 20);
        assert_eq!(plan.concat().len(), 20);
    }

    #[test]
    fn the_estimates_follow_the_scenarios() {
        assert_eq!(lvs_secs(&["two-box", "failover"]), BOOT_SECS + 83 + 250);
        assert!(lvs_secs(&[]) > lvs_secs(&["two-box", "failover"]));
    }
}

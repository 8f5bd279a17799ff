//! Reading a guest's console: the scenario reports, the failing steps, one note per row and
//! the closing summary table (one row per kernel and job, one per LVS scenario).
//!
//! The guest speaks in tagged lines (`xtask/vm/*.sh`):
//! * `LVS-VM-TEST: <step> PASS|FAIL rc=N (S s)` per test step, after `----- LVS-VM: running <step>`;
//! * `=== LVS-SCENARIO-REPORT BEGIN <scenario>` ... `END <scenario>` around a scenario's table;
//! * `LVS-SCENARIO-VERDICT: <scenario>/<phase>: <verdict>` per phase;
//! * `LVS-SCENARIO-RESULT: <scenario> PASS|FAIL <secs>` per scenario.
use std::path::Path;

use super::{
    Job,
    qemu::{Accel, Outcome, Run},
};

/// A row of the summary: a whole guest, or one scenario inside an `lvs` guest.
pub struct Row {
    pub kernel: String,
    pub what: String,
    pub accel: Accel,
    pub result: String,
    pub passed: bool,
    pub secs: f64,
    pub note: String,
}

/// One guest's rows: the guest itself, then one per scenario it reported.
pub fn rows(kernel: &str, job: Job, accel: Accel, run: &Run) -> Vec<Row> {
    let mut rows = vec![Row {
        kernel: kernel.to_owned(),
        what: job.name().to_owned(),
        accel,
        result: run.outcome.to_string(),
        passed: run.outcome == Outcome::Pass,
        secs: run.secs,
        note: job_note(job, &run.lines),
    }];
    if job == Job::Lvs {
        for l in &run.lines {
            let Some(rest) = l.strip_prefix("LVS-SCENARIO-RESULT: ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(name), Some(result), Some(secs)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            rows.push(Row {
                kernel: kernel.to_owned(),
                what: format!("  {name}"),
                accel,
                result: result.to_owned(),
                passed: result == "PASS",
                secs: secs.parse().unwrap_or(0.0),
                note: scenario_note(name, &run.lines),
            });
        }
    }
    rows
}

/// Prints what matters of a guest's console: the LVS reports always; on failure the failing
/// steps' output (or the console's end when there is no step to blame).
pub fn print_guest(name: &str, job: Job, run: &Run, log: &Path) {
    let lines = &run.lines;
    if job == Job::Lvs {
        let mut inside = false;
        for l in lines {
            if l.starts_with("=== LVS-SCENARIO-REPORT BEGIN") {
                inside = true;
                println!();
                continue;
            }
            if l.starts_with("=== LVS-SCENARIO-REPORT END") {
                inside = false;
            }
            if inside {
                println!("{l}");
            }
        }
    }
    for l in lines.iter().filter(|l| {
        l.starts_with("LVS-VM-TEST: ")
            || l.starts_with("LVS-VM: NOTE")
            || l.starts_with("LVS-VM: FALLBACK")
            || l.contains("TCX (bpf_link")
    }) {
        println!("[{name}] {l}");
    }
    if run.outcome == Outcome::Pass {
        return;
    }
    println!(
        "[{name}] {} -- guest output follows (full console: {})",
        run.outcome,
        log.display()
    );
    let mut shown = false;
    if job == Job::Tests {
        // Segments "----- LVS-VM: running X" ... "LVS-VM-TEST: X FAIL ..."
        let mut start = None;
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("----- LVS-VM: running ") {
                start = Some(i);
            }
            if l.starts_with("LVS-VM-TEST: ")
                && l.contains(" FAIL")
                && let Some(s) = start.take()
            {
                for seg in &lines[s..=i] {
                    println!("  | {seg}");
                }
                shown = true;
            }
        }
    }
    if !shown || matches!(run.outcome, Outcome::NoResult | Outcome::Timeout) {
        let from = lines.len().saturating_sub(150);
        for l in &lines[from..] {
            println!("  | {l}");
        }
    }
}

/// One short remark for a guest row: the tests' pass count, or the scenarios that ran.
fn job_note(job: Job, lines: &[String]) -> String {
    match job {
        Job::Tests => {
            let steps: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("LVS-VM-TEST: "))
                .collect();
            let passed = steps.iter().filter(|l| l.contains(" PASS")).count();
            let tcx = if lines
                .iter()
                .any(|l| l.contains("TCX (bpf_link TC attach): NOT available"))
            {
                ", no TCX: netlink path"
            } else {
                ""
            };
            let running = lines
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("----- LVS-VM: running "))
                .filter(|step| {
                    !steps
                        .iter()
                        .any(|l| l.starts_with(&format!("LVS-VM-TEST: {step} ")))
                })
                .map(|step| format!(", was running {step}"))
                .unwrap_or_default();
            format!("{passed}/{} steps passed{tcx}{running}", steps.len())
        }
        Job::Lvs => {
            let results: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("LVS-SCENARIO-RESULT: "))
                .collect();
            let passed = results.iter().filter(|r| r.contains(" PASS ")).count();
            let running = lines
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("[lvs] ##### scenario "))
                .map(|s| s.split_whitespace().next().unwrap_or(s))
                .filter(|s| !results.iter().any(|r| r.starts_with(&format!("{s} "))))
                .map(|s| format!(", was running {s}"))
                .unwrap_or_default();
            format!("{passed}/{} scenario(s) passed{running}", results.len())
        }
    }
}

/// The phases' verdicts of one scenario, shortened:
/// "before: loop reproduced: 25/100 failed ..." -> "before: loop reproduced".
fn scenario_note(scenario: &str, lines: &[String]) -> String {
    let prefix = format!("{scenario}/");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("LVS-SCENARIO-VERDICT: "))
        .filter_map(|v| v.strip_prefix(&prefix))
        .map(|v| {
            let (phase, rest) = v.split_once(": ").unwrap_or((v, ""));
            let short = rest.split([':', '(']).next().unwrap_or(rest).trim();
            format!("{phase}: {short}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn print_summary(rows: &[Row], build_secs: f64, total_secs: f64) {
    println!();
    println!("vm-test summary (build/fetch {build_secs:.0} s, total {total_secs:.0} s)");
    let kw = rows
        .iter()
        .map(|r| r.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let ww = rows.iter().map(|r| r.what.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<kw$}  {:<ww$}  {:<5}  {:<21}  {:>7}  note",
        "kernel", "job", "accel", "result", "seconds"
    );
    for r in rows {
        println!(
            "{:<kw$}  {:<ww$}  {:<5}  {:<21}  {:>7.1}  {}",
            r.kernel,
            r.what,
            r.accel.to_string(),
            r.result,
            r.secs,
            r.note
        );
    }
}

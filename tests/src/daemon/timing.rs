//! Repair times: the samples of each case, and the table with its p99 check.

use std::time::Duration;

use super::in_vm;

/// Repair times of one case: min, median and the largest (the p99 of a few runs).
pub struct Timings {
    pub case: String,
    pub ms: Vec<f64>,
}

impl Timings {
    pub fn new(case: impl Into<String>) -> Self {
        Self {
            case: case.into(),
            ms: Vec::new(),
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1000.0);
    }

    /// The p99 (nearest rank) of the samples.
    pub fn p99(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((v.len() as f64) * 0.99).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    pub fn line(&self) -> String {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        format!(
            "{:<44} {:>3} {:>9.1} {:>9.1} {:>9.1}",
            self.case,
            v.len(),
            v[0],
            v[v.len() / 2],
            self.p99()
        )
    }
}

/// Prints a table of repair times and asserts every case's p99 is under `limit` (on the
/// host; in a TCG guest the table is only printed).
pub fn report(title: &str, all: &[Timings], limit: Duration) {
    let mut out = format!(
        "\n{title}: time from the change to the marker being back first on the hook\n{:<44} {:>3} {:>9} {:>9} {:>9}\n",
        "case", "n", "min ms", "median", "p99 ms"
    );
    for t in all {
        out.push_str(&t.line());
        out.push('\n');
    }
    eprintln!("{out}");
    if in_vm() {
        return;
    }
    for t in all {
        assert!(
            t.p99() < limit.as_secs_f64() * 1000.0,
            "{}: p99 {:.1} ms over {limit:?}{out}",
            t.case,
            t.p99()
        );
    }
}

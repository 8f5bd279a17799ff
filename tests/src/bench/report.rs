//! Markdown tables and the target checks.
//!
//! Here: what a run measured ([`Report`], the JSON file), a target's verdict ([`Target`]),
//! the number formats the tables share, and [`markdown`], the whole report. `cost`: the
//! program-cost and whole-path tables; `footprint`: the memory tables; `check`: the targets.

mod check;
mod cost;
mod footprint;

pub use check::{sized_memory_targets, targets, targets_table};
pub use cost::{progcost_paths_table, progcost_table, target_ratio, wholepath_table};
pub use footprint::{memory_table, sized_memory_table};

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    Machine, daemon, memory,
    progcost::{self, Dp},
    wholepath,
};

/// Everything one run measured (the JSON file).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub started_unix: u64,
    pub elapsed_secs: f64,
    /// /proc/loadavg when the run started and ended (other load skews wall-clock rates).
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub progcost: Option<progcost::Results>,
    /// Instructions executed per path and the loaded programs' size.
    pub insns: Option<super::insns::Results>,
    pub wholepath: Option<wholepath::Results>,
    /// The same with paged skbs (headers in a page fragment), fewer VIP counts.
    pub wholepath_paged: Option<wholepath::Results>,
    pub memory: Option<memory::Results>,
    /// The daemon's idle cost.
    pub daemon: Option<daemon::Results>,
    pub targets: Vec<Target>,
}

/// One target of issue 3, evaluated on this run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub met: bool,
    pub measured: String,
}

fn vips_label(n: usize) -> String {
    match n {
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn kpps(p: f64) -> String {
    if p >= 10_000.0 {
        format!("{:.0} k", p / 1000.0)
    } else {
        format!("{:.2} k", p / 1000.0)
    }
}

fn sorted_unique(v: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = v.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {}. Load average at start / end: {} / {}.\n",
        r.machine.describe(),
        r.loadavg_start,
        r.loadavg_end
    );
    if r.quick {
        s.push_str("**Quick run (tiny repeat counts): smoke test only, not for quoting.**\n\n");
    }
    s.push_str("### Targets\n\n");
    s.push_str(&format!("{}\n\n", r.machine.cpu_line()));
    s.push_str(&targets_table(&r.targets));
    let cpu = format!("{}\n\n", r.machine.cpu_line());
    if let Some(p) = &r.progcost {
        s.push_str("\n### Program cost (BPF_PROG_TEST_RUN)\n\n");
        s.push_str(&cpu);
        s.push_str(&progcost_paths_table(p));
        for d in Dp::ALL {
            s.push('\n');
            s.push_str(&progcost_table(p, d));
        }
    }
    if let Some(c) = &r.insns {
        s.push_str("\n### Instructions per path\n\n");
        s.push_str(&cpu);
        s.push_str(&super::insns::table(c));
    }
    if let Some(w) = &r.wholepath {
        s.push_str("\n### Whole path (veth into a director namespace, linear skbs)\n\n");
        s.push_str(&cpu);
        s.push_str(&wholepath_table(w));
    }
    if let Some(w) = &r.wholepath_paged {
        s.push_str(&format!(
            "\n### Whole path with paged skbs ({}-byte frames, headers in a page fragment)\n\n",
            crate::sender::PAGED_FRAME_LEN
        ));
        s.push_str(&cpu);
        s.push_str(&wholepath_table(w));
    }
    if let Some(m) = &r.memory {
        s.push_str("\n### Memory and control plane\n\n");
        s.push_str(&cpu);
        s.push_str(&memory_table(m));
    }
    if let Some(d) = &r.daemon {
        s.push_str("\n### The daemon, idle\n\n");
        s.push_str(&cpu);
        s.push_str(&daemon::table(d));
    }
    s
}

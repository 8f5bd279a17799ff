//! The per-packet cost tables: the program alone (BPF_PROG_TEST_RUN, path by path and per
//! datapath) and the whole path across a veth (pps per core, CPU ns per packet, wall clock).

use std::fmt::Write as _;

use super::{kpps, sorted_unique, vips_label};
use crate::bench::{
    median,
    progcost::{self, Dp, Scenario},
    wholepath::{self, Contender},
};

/// The issue-11 target of a scenario (ratio to the floor), if it has one.
pub fn target_ratio(sc: Scenario) -> Option<f64> {
    match sc {
        Scenario::HitNonPeer | Scenario::HitPeer | Scenario::V6Hit | Scenario::VlanHit => Some(1.5),
        Scenario::Miss => Some(1.3),
        Scenario::NonIp => Some(1.1),
        Scenario::AnyPortHit => Some(1.6),
        Scenario::Empty | Scenario::TraceOff | Scenario::TraceFiltered | Scenario::TraceLimited => {
            None
        }
    }
}

/// Both datapaths path by path, at the largest VIP count with the fewest and the most
/// peers.
pub fn progcost_paths_table(r: &progcost::Results) -> String {
    let vips = sorted_unique(r.cells.iter().map(|c| c.vips));
    let peers = sorted_unique(r.cells.iter().map(|c| c.peers));
    let (Some(&n), Some(&p_lo), Some(&p_hi)) = (vips.last(), peers.first(), peers.last()) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Per path, {} VIPs: ns per packet (ratio to the empty program in the same cell), lvs-ebpf and the kernel-hash-map contender measured in the same rounds.\n",
        vips_label(n)
    );
    let mut peer_cols = vec![p_lo];
    if p_hi != p_lo {
        peer_cols.push(p_hi);
    }
    s.push_str("| path | target |");
    for p in &peer_cols {
        for d in Dp::ALL {
            let _ = write!(
                s,
                " {} ({p} peer{}) |",
                d.label(),
                if *p == 1 { "" } else { "s" }
            );
        }
    }
    s.push_str("\n|---|---:|");
    for _ in 0..peer_cols.len() * Dp::ALL.len() {
        s.push_str("---:|");
    }
    s.push('\n');
    let floor = peer_cols
        .iter()
        .filter_map(|p| r.get(n, *p, Scenario::Empty))
        .map(|c| c.median_ns)
        .collect::<Vec<_>>();
    let _ = write!(s, "| {} | |", Scenario::Empty.label());
    for _ in &peer_cols {
        for _ in Dp::ALL {
            let _ = write!(s, " {:.1} |", median(&floor));
        }
    }
    s.push('\n');
    for sc in Scenario::LVS {
        let target = target_ratio(sc).map_or(String::new(), |t| format!("<= {t}x"));
        let _ = write!(s, "| {} | {target} |", sc.label());
        for p in &peer_cols {
            for d in Dp::ALL {
                match r.get_dp(n, *p, sc, d) {
                    Some(c) => {
                        let _ = write!(s, " {:.1} ({:.2}x) |", c.median_ns, c.ratio_to_floor);
                    }
                    None => s.push_str(" - |"),
                }
            }
        }
        s.push('\n');
    }
    s
}

pub fn progcost_table(r: &progcost::Results, d: Dp) -> String {
    let vips = sorted_unique(r.cells.iter().map(|c| c.vips));
    let peers = sorted_unique(r.cells.iter().map(|c| c.peers));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: BPF_PROG_TEST_RUN, ns per packet (wall-clock time of the syscall / repetitions, the least of {} rounds x {} repetitions; the kernel's own figure is whole ns only; ratio to the empty-program floor measured in the same cell). Columns: number of VIPs.\n",
        d.label(),
        r.rounds,
        r.repeat
    );
    s.push_str("| scenario | peers |");
    for v in &vips {
        let _ = write!(s, " {} VIPs |", vips_label(*v));
    }
    s.push_str("\n|---|---:|");
    for _ in &vips {
        s.push_str("---:|");
    }
    s.push('\n');
    // The trace rows exist for lvs-ebpf only.
    let trace_rows = if d == Dp::Table {
        &Scenario::TRACE[..]
    } else {
        &[]
    };
    for sc in std::iter::once(Scenario::Empty)
        .chain(Scenario::LVS)
        .chain(trace_rows.iter().copied())
    {
        for (pi, p) in peers.iter().enumerate() {
            if sc == Scenario::Empty && pi > 0 {
                continue;
            }
            let peers_col = if sc == Scenario::Empty {
                "-".to_owned()
            } else {
                p.to_string()
            };
            let _ = write!(s, "| {} | {peers_col} |", sc.label());
            for v in &vips {
                let cell = if sc == Scenario::Empty {
                    r.get(*v, *p, sc)
                } else {
                    r.get_dp(*v, *p, sc, d)
                };
                match cell {
                    Some(_) if sc == Scenario::Empty => {
                        // One floor per VIP count: the median over its peer columns.
                        let floors: Vec<f64> = peers
                            .iter()
                            .filter_map(|pp| r.get(*v, *pp, sc))
                            .map(|c| c.median_ns)
                            .collect();
                        let _ = write!(s, " {:.1} |", median(&floors));
                    }
                    Some(c) => {
                        let _ = write!(s, " {:.1} ({:.2}x) |", c.median_ns, c.ratio_to_floor);
                    }
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
    }
    s
}

pub fn wholepath_table(r: &wholepath::Results) -> String {
    let vips = sorted_unique(r.cells.iter().map(|c| c.vips));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Packets per second per core delivered into the director (Tcp InSegs divided by the CPU time of the sender thread, which also runs the receive softirqs, plus ksoftirqd), median of {} interleaved samples of {:.1} s; in brackets the ratio to the no-filter baseline of the same VIP count and the spread of the samples. Second table: CPU ns per packet (1e9/pps) and what the filter adds. Third table: wall-clock pps (depends on other load on the machine).\n",
        r.rounds, r.sample_secs
    );
    s.push_str("| contender |");
    for v in &vips {
        let _ = write!(s, " {} VIPs |", vips_label(*v));
    }
    s.push_str("\n|---|");
    for _ in &vips {
        s.push_str("---:|");
    }
    s.push('\n');
    for c in Contender::ALL {
        let _ = write!(s, "| {} |", c.label());
        for v in &vips {
            match r.get(*v, c) {
                Some(x) => {
                    let _ = write!(
                        s,
                        " {} pps ({:.3}x, ±{:.0}%) |",
                        kpps(x.median_pps),
                        x.ratio_to_baseline,
                        x.spread * 50.0
                    );
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\n| contender |");
    for v in &vips {
        let _ = write!(s, " {} VIPs |", vips_label(*v));
    }
    s.push_str("\n|---|");
    for _ in &vips {
        s.push_str("---:|");
    }
    s.push('\n');
    for c in Contender::ALL {
        let _ = write!(s, "| {} |", c.label());
        for v in &vips {
            match r.get(*v, c) {
                Some(x) if c == Contender::None => {
                    let _ = write!(s, " {:.0} ns |", x.ns_per_packet);
                }
                Some(x) => {
                    let _ = write!(s, " {:.0} ns ({:+.0}) |", x.ns_per_packet, x.added_ns);
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\n| contender (wall clock) |");
    for v in &vips {
        let _ = write!(s, " {} VIPs |", vips_label(*v));
    }
    s.push_str("\n|---|");
    for _ in &vips {
        s.push_str("---:|");
    }
    s.push('\n');
    for c in Contender::ALL {
        let _ = write!(s, "| {} |", c.label());
        for v in &vips {
            match r.get(*v, c) {
                Some(x) => {
                    let _ = write!(
                        s,
                        " {} pps ({:.3}x) |",
                        kpps(x.median_wall_pps),
                        x.wall_ratio_to_baseline
                    );
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s
}

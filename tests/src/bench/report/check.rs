//! The targets of issues 3 and 11, evaluated on a run's numbers, and their table.

use std::fmt::Write as _;

use super::{Target, bytes, footprint::BIG_DIRECTOR_CPUS, kpps, sorted_unique, vips_label};
use crate::bench::{
    memory,
    progcost::{self, Dp, Scenario},
    wholepath::{self, Contender},
};

/// Issue 11's memory targets, from the sized-memory measurements.
pub fn sized_memory_targets(z: &memory::Sized) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(r) = z.rows.iter().find(|r| r.vips == 1) {
        let three = 3.0 * r.bytes as f64;
        out.push(Target {
            target: "kernel map memory: 1 VIP on 3 interfaces < 4 MiB (here)".into(),
            met: three < 4.0 * 1024.0 * 1024.0,
            measured: format!("{} ({} per interface)", bytes(three), bytes(r.bytes as f64)),
        });
    }
    if let Some(r) = z.rows.iter().find(|r| r.vips == 1000) {
        let eight = 8.0 * r.bytes_on(BIG_DIRECTOR_CPUS, z.possible_cpus);
        out.push(Target {
            target: "kernel map memory: 1k VIPs on 8 interfaces, 64 CPUs < 64 MiB (computed)"
                .into(),
            met: eight < 64.0 * 1024.0 * 1024.0,
            measured: format!(
                "{} (capacity {}; {} per interface here)",
                bytes(eight),
                r.capacity,
                bytes(r.bytes as f64)
            ),
        });
    }
    out
}

/// Evaluates the targets of issues 3 and 11 on whatever parts ran.
pub fn targets(
    pc: Option<&progcost::Results>,
    wp: Option<&wholepath::Results>,
    wp_paged: Option<&wholepath::Results>,
    mem: Option<&memory::Results>,
) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(r) = pc {
        let groups: [(&str, &[Scenario], f64); 4] = [
            (
                "IPv4/IPv6 VIP hit (peer or not)",
                &[
                    Scenario::HitNonPeer,
                    Scenario::HitPeer,
                    Scenario::V6Hit,
                    Scenario::VlanHit,
                ],
                1.5,
            ),
            ("VIP miss", &[Scenario::Miss], 1.3),
            ("non-IP", &[Scenario::NonIp], 1.1),
            ("any-port VIP hit", &[Scenario::AnyPortHit], 1.6),
        ];
        for (what, scenarios, limit) in groups {
            let cells: Vec<&progcost::Cell> = r
                .cells
                .iter()
                .filter(|c| c.datapath == Dp::Table && scenarios.contains(&c.scenario))
                .collect();
            let Some(worst) = cells
                .iter()
                .max_by(|a, b| a.ratio_to_floor.total_cmp(&b.ratio_to_floor))
            else {
                continue;
            };
            let best = cells
                .iter()
                .map(|c| c.ratio_to_floor)
                .fold(f64::INFINITY, f64::min);
            out.push(Target {
                target: format!("{what} <= {limit}x the empty program"),
                met: worst.ratio_to_floor <= limit,
                measured: format!(
                    "{best:.2}x to {:.2}x (worst: {}, {} VIPs, {} peers: {:.1} ns vs floor {:.1} ns)",
                    worst.ratio_to_floor,
                    worst.scenario.label(),
                    worst.vips,
                    worst.peers,
                    worst.median_ns,
                    worst.floor_ns
                ),
            });
        }
        let vips = sorted_unique(r.cells.iter().map(|c| c.vips));
        let peers = sorted_unique(r.cells.iter().map(|c| c.peers));
        if let (Some(&lo), Some(&hi)) = (vips.first(), vips.last())
            && hi > lo
        {
            let mut worst: Option<(f64, &progcost::Cell, &progcost::Cell)> = None;
            for c in r.cells.iter().filter(|c| {
                c.vips == hi && c.datapath == Dp::Table && c.scenario != Scenario::Empty
            }) {
                if let Some(base) = r.get(lo, c.peers, c.scenario) {
                    let d = c.median_ns / base.median_ns - 1.0;
                    if worst.is_none_or(|(w, _, _)| d > w) {
                        worst = Some((d, c, base));
                    }
                }
            }
            if let Some((d, c, base)) = worst {
                out.push(Target {
                    target: format!(
                        "flat: {hi} VIPs within 10% of {lo} VIP(s), with {} peers",
                        peers
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                    met: d <= 0.10,
                    measured: format!(
                        "worst {:+.0}% ({}, {} peers: {:.1} ns vs {:.1} ns)",
                        d * 100.0,
                        c.scenario.label(),
                        c.peers,
                        c.median_ns,
                        base.median_ns
                    ),
                });
            }
        }
    }
    for (layout, w) in [("linear", wp), ("paged", wp_paged)] {
        let Some(r) = w else { continue };
        let vips = sorted_unique(r.cells.iter().map(|c| c.vips));
        let Some(n) = vips
            .contains(&10_000)
            .then_some(10_000)
            .or(vips.last().copied())
        else {
            continue;
        };
        if let (Some(e), Some(empty)) =
            (r.get(n, Contender::LvsEbpf), r.get(n, Contender::EmptyTcx))
        {
            let vs_empty = e.median_pps / empty.median_pps;
            out.push(Target {
                target: format!(
                    "{n} VIPs, {layout} skbs: whole path within 3% of the empty TCX program and 5% of no filter"
                ),
                met: vs_empty >= 0.97 && e.ratio_to_baseline >= 0.95,
                measured: format!(
                    "{vs_empty:.3}x of the empty program, {:.3}x of no filter (+{:.0} ns/packet; the empty program +{:.0})",
                    e.ratio_to_baseline, e.added_ns, empty.added_ns
                ),
            });
        }
        if layout != "linear" {
            continue;
        }
        if let (Some(e), Some(i)) = (r.get(n, Contender::LvsEbpf), r.get(n, Contender::Iptables)) {
            let x = e.median_pps / i.median_pps;
            out.push(Target {
                target: format!("{n} VIPs: >= 10x the iptables recipe"),
                met: x >= 10.0,
                measured: format!(
                    "{x:.1}x ({} vs {} pps)",
                    kpps(e.median_pps),
                    kpps(i.median_pps)
                ),
            });
        }
        for (other, what) in [
            (
                Contender::Iptables,
                "faster than the iptables recipe at every VIP count",
            ),
            (Contender::Nftables, "never slower than the nftables map"),
        ] {
            let mut slower = Vec::new();
            let mut ratios = Vec::new();
            for n in &vips {
                if let (Some(e), Some(f)) = (r.get(*n, Contender::LvsEbpf), r.get(*n, other)) {
                    let x = e.median_pps / f.median_pps;
                    ratios.push(format!("{}: {x:.2}x", vips_label(*n)));
                    if x <= 1.0 {
                        slower.push(vips_label(*n));
                    }
                }
            }
            if !ratios.is_empty() {
                out.push(Target {
                    target: what.into(),
                    met: slower.is_empty(),
                    measured: format!("lvs-ebpf/{} pps: {}", other.key(), ratios.join(", ")),
                });
            }
        }
    }
    if let Some(r) = mem {
        out.extend(sized_memory_targets(&r.sized));
        let cli = |w: &str| r.cli.iter().find(|t| t.what == w).map(|t| t.wall_ms);
        let lib = |w: &str| r.library.iter().find(|t| t.what == w).map(|t| t.wall_ms);
        let worst_reload_cli = ["reload, same VIPs", "reload, 25% of VIPs replaced"]
            .iter()
            .filter_map(|w| cli(w))
            .fold(0.0, f64::max);
        let worst_reload_lib = r
            .library
            .iter()
            .filter(|t| t.what.starts_with("reload") && t.error.is_none())
            .map(|t| t.wall_ms)
            .fold(0.0, f64::max);
        if cli("attach").is_some() {
            out.push(Target {
                target: format!(
                    "reload of {} VIPs < 300 ms (library) and 600 ms (CLI)",
                    r.vips
                ),
                met: worst_reload_lib < 300.0 && worst_reload_cli < 600.0,
                measured: format!(
                    "library reload up to {worst_reload_lib:.0} ms, CLI up to {worst_reload_cli:.0} ms (attach: library {:.0} ms, CLI {:.0} ms)",
                    lib("attach").unwrap_or(f64::NAN),
                    cli("attach").unwrap_or(f64::NAN)
                ),
            });
        }
    }
    out
}

pub fn targets_table(t: &[Target]) -> String {
    let mut s = String::from("| target | met | this run |\n|---|:-:|---|\n");
    for x in t {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            x.target,
            if x.met { "yes" } else { "**no**" },
            x.measured
        );
    }
    s
}

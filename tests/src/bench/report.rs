//! Markdown tables and the target checks.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    Machine, daemon, memory,
    progcost::{self, Dp, Scenario},
    wholepath::{self, Contender},
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
    /// The same with paged skbs (AF_PACKET's default layout), fewer VIP counts.
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
            let _ = write!(s, " {:.1} |", super::median(&floor));
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
                        let _ = write!(s, " {:.1} |", super::median(&floors));
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

fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// 64 CPUs: the director of issue 11's memory target.
const BIG_DIRECTOR_CPUS: usize = 64;

/// Kernel map memory of whole attachments by VIP count and interfaces, here and on a
/// 64-CPU director.
pub fn sized_memory_table(z: &memory::Sized) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Kernel map memory of attachments as `attach` sizes them (every map of the program and the loader's pinned ones, `memlock` from fdinfo; interfaces share no maps, so k interfaces take k times one). Measured here ({} possible CPUs); for {BIG_DIRECTOR_CPUS} CPUs the per-CPU maps are scaled:\n",
        z.possible_cpus
    );
    s.push_str("| VIPs | capacity | 1 interface | 8 interfaces | 1 interface, 64 CPUs | 8 interfaces, 64 CPUs |\n|---:|---:|---:|---:|---:|---:|\n");
    for r in &z.rows {
        let big = r.bytes_on(BIG_DIRECTOR_CPUS, z.possible_cpus);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            vips_label(r.vips),
            r.capacity,
            bytes(r.bytes as f64),
            bytes(8.0 * r.bytes as f64),
            bytes(big),
            bytes(8.0 * big)
        );
    }
    s.push_str("\nTargets (issue 11): 1 VIP on 3 interfaces under 4 MiB here; 1k VIPs on 8 interfaces of a 64-CPU director under 64 MiB.\n");
    s
}

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

pub fn memory_table(r: &memory::Results) -> String {
    let mut s = sized_memory_table(&r.sized);
    s.push('\n');
    let _ = writeln!(
        s,
        "Kernel map memory per map (each map's `memlock` from fdinfo, {} CPUs), with {} VIPs and {} peers installed (capacity {}):\n",
        r.nr_cpus, r.vips, r.peers, r.capacity
    );
    s.push_str("| map | type | max entries | key + value | memlock (empty) | memlock (loaded) |\n|---|---:|---:|---:|---:|---:|\n");
    for m in &r.maps_loaded {
        let empty = r
            .maps_empty
            .iter()
            .find(|e| e.name == m.name)
            .map_or(0, |e| e.memlock);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} + {} B | {} | {} |",
            m.name,
            map_type_name(m.map_type),
            m.max_entries,
            m.key_size,
            m.value_size,
            bytes(empty as f64),
            bytes(m.memlock as f64)
        );
    }
    let _ = writeln!(
        s,
        "\nTotal {}: **{:.0} B per VIP slot** (the IPv4 and IPv6 tables with both generations, per-CPU counters, names) x {} slots, **{:.0} B per peer slot** (peer hash maps and table) x {} slots, {} fixed (pinned maps only; the trace maps are in the table above). The VIP slots are the capacity `attach` gives this config: the next power of two of twice its VIPs, 256 to 131072.\n",
        bytes(r.total_bytes as f64),
        r.per_vip_bytes,
        r.capacity,
        r.per_peer_bytes,
        lvs_ebpf_common::MAX_PEERS,
        bytes(r.fixed_bytes as f64)
    );
    let _ = writeln!(
        s,
        "Control plane with {} VIPs and {} peers (median wall time of 3 runs; the CLI's peak RSS from wait4):\n",
        r.vips, r.peers
    );
    s.push_str("| step | CLI (`lvs-loader`, TOML) | CLI peak RSS | library (`ops::*`, no TOML) |\n|---|---:|---:|---:|\n");
    let mut whats: Vec<&str> = r.cli.iter().map(|t| t.what.as_str()).collect();
    for t in &r.library {
        if !whats.contains(&t.what.as_str()) {
            whats.push(&t.what);
        }
    }
    for w in whats {
        let c = r.cli.iter().find(|t| t.what == w);
        let l = r.library.iter().find(|t| t.what == w);
        let _ = writeln!(
            s,
            "| {w} | {} | {} | {} |",
            c.map_or("-".into(), |t| format!("{:.0} ms", t.wall_ms)),
            c.and_then(|t| t.max_rss_kib)
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            l.map_or("-".into(), |t| match &t.error {
                None => format!("{:.0} ms", t.wall_ms),
                Some(e) => format!("fails: {e}"),
            }),
        );
    }
    s
}

fn map_type_name(t: u32) -> String {
    match t {
        1 => "hash".into(),
        2 => "array".into(),
        6 => "percpu_array".into(),
        t => t.to_string(),
    }
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
        s.push_str("\n### Whole path with paged skbs (headers in a page fragment)\n\n");
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

//! `lvs-bench`: the benchmark of issue 3 (run it through `cargo xtask bench`).
//!
//! Prints markdown tables, writes `bench.json` (raw numbers), `bench.md` (the tables) and
//! `bench.svg` (the plot) into `--out`.
use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use lvs_tests::bench::{
    Machine, daemon, insns, memory, plot, progcost,
    report::{self, Report},
    wholepath,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Progcost,
    Wholepath,
    Memory,
    /// The daemon's idle CPU and memory with 100,000 VIPs.
    Daemon,
}

#[derive(Parser)]
#[command(
    name = "lvs-bench",
    about = "lvs-ebpf benchmark: program cost, whole path, memory"
)]
struct Cli {
    /// Tiny repeat counts and short samples: a smoke test (< 60 s) that still checks marks.
    #[arg(long)]
    quick: bool,
    /// Where to write bench.json, bench.md and bench.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Run only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Program cost: these VIP counts instead of the default ones.
    #[arg(long, value_delimiter = ',')]
    vips: Vec<usize>,
    /// Program cost: these peer counts instead of the default ones.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<usize>,
    /// Program cost: repetitions per run instead of the default.
    #[arg(long)]
    repeat: Option<u32>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("lvs-bench loads BPF programs and creates network namespaces: run it as root");
    }
    // Namespaces and pin roots left by an earlier run (or test) that was killed.
    lvs_tests::reap::once();
    let all = cli.only.is_empty();
    let want = |p: Part| all || cli.only.contains(&p);
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = Machine::probe();
    eprintln!("lvs-bench on {}", machine.describe());

    let mut report = Report {
        machine,
        quick: cli.quick,
        started_unix,
        elapsed_secs: 0.0,
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        progcost: None,
        insns: None,
        wholepath: None,
        wholepath_paged: None,
        memory: None,
        daemon: None,
        targets: Vec::new(),
    };

    if want(Part::Progcost) {
        let p = if cli.quick {
            progcost::Params {
                vip_counts: vec![1, 1000],
                peer_counts: vec![1, 16],
                repeat: 10_000,
                rounds: 3,
            }
        } else {
            progcost::Params {
                vip_counts: vec![1, 100, 10_000, 131_072],
                peer_counts: vec![1, 16, 1024],
                repeat: 1_000_000,
                rounds: 5,
            }
        };
        let mut p = p;
        if !cli.vips.is_empty() {
            p.vip_counts = cli.vips.clone();
        }
        if !cli.peers.is_empty() {
            p.peer_counts = cli.peers.clone();
        }
        if let Some(r) = cli.repeat {
            p.repeat = r;
        }
        eprintln!("program cost (BPF_PROG_TEST_RUN): {p:?}");
        report.progcost = Some(progcost::run(&p).context("program cost")?);
        write_outputs(&mut report, &cli.out, started, false)?;
        let (n, peers) = if cli.quick { (1000, 1) } else { (10_000, 1) };
        eprintln!("instructions per path: {n} VIPs, {peers} peer");
        report.insns = Some(insns::run(n, peers).context("instructions per path")?);
        write_outputs(&mut report, &cli.out, started, false)?;
    }

    if want(Part::Wholepath) {
        let (counts, paged_counts, rounds, sample) = if cli.quick {
            (vec![1, 100], vec![100], 2, Duration::from_millis(200))
        } else {
            (
                vec![1, 100, 1000, 10_000],
                vec![1, 10_000],
                11,
                Duration::from_millis(700),
            )
        };
        for (layout, vip_counts) in [
            (wholepath::SkbLayout::Linear, counts),
            (wholepath::SkbLayout::Paged, paged_counts),
        ] {
            let p = wholepath::Params {
                vip_counts,
                rounds,
                sample,
                layout,
            };
            eprintln!("whole path (veth, AF_PACKET sendmmsg): {p:?}");
            let r = wholepath::run(&p).context("whole path")?;
            match layout {
                wholepath::SkbLayout::Linear => report.wholepath = Some(r),
                wholepath::SkbLayout::Paged => report.wholepath_paged = Some(r),
            }
            write_outputs(&mut report, &cli.out, started, false)?;
        }
    }

    if want(Part::Memory) {
        let (n, peers) = if cli.quick {
            (10_000, 16)
        } else {
            (131_072, 16)
        };
        eprintln!("memory and control plane: {n} VIPs, {peers} peers");
        let tmp = std::env::temp_dir().join(format!("lvs-bench-{}", std::process::id()));
        report.memory = Some(memory::run(n, peers, &tmp).context("memory")?);
        write_outputs(&mut report, &cli.out, started, false)?;
    }

    if want(Part::Daemon) {
        let (vips, settle, window) = if cli.quick {
            (10_000, Duration::from_secs(1), Duration::from_secs(2))
        } else {
            (100_000, Duration::from_secs(12), Duration::from_secs(30))
        };
        eprintln!("daemon: {vips} VIPs, idle window {window:?}");
        report.daemon = Some(daemon::run(vips, settle, window).context("daemon")?);
    }
    write_outputs(&mut report, &cli.out, started, true)?;
    eprintln!("lvs-bench: done in {:.0} s", report.elapsed_secs);
    Ok(())
}

/// Writes bench.json, bench.md and bench.svg (after every part, so a failure later
/// keeps what was measured); prints the tables at the end.
fn write_outputs(
    report: &mut Report,
    out: &std::path::Path,
    started: Instant,
    last: bool,
) -> Result<()> {
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.loadavg_end = loadavg();
    report.targets = report::targets(
        report.progcost.as_ref(),
        report.wholepath.as_ref(),
        report.wholepath_paged.as_ref(),
        report.memory.as_ref(),
    );
    if let Some(d) = &report.daemon {
        report.targets.extend(daemon::targets(d));
    }
    let md = report::markdown(report);
    if last {
        print!("{md}");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(&*report).context("serialising results")?;
    let svg = plot::svg(
        report.progcost.as_ref(),
        report.wholepath.as_ref(),
        &report.machine.describe(),
    );
    for (name, text) in [("bench.json", json), ("bench.md", md), ("bench.svg", svg)] {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        if last {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// The three load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

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
    Machine, memory, plot, progcost,
    report::{self, Report},
    wholepath,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Progcost,
    Wholepath,
    Memory,
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
}

/// Deletes benchmark namespaces left by an earlier run that was killed (their pid is gone).
fn remove_stale_namespaces() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // lvst-<tag>-<pid>-<n> with the benchmark's tags (bg*, bd*, bm).
        let mut parts = name.split('-');
        let (Some("lvst"), Some(tag), Some(pid)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let ours = tag == "bm" || tag.starts_with("bg") || tag.starts_with("bd");
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if ours && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &name])
                .status();
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("lvs-bench loads BPF programs and creates network namespaces: run it as root");
    }
    remove_stale_namespaces();
    let all = cli.only.is_empty();
    let want = |p: Part| all || cli.only.contains(&p);
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = Machine::probe();
    eprintln!("lvs-bench on {}", machine.describe());

    let progcost = if want(Part::Progcost) {
        let p = if cli.quick {
            progcost::Params {
                vip_counts: vec![1, 1000],
                peer_counts: vec![1, 16],
                repeat: 10_000,
                rounds: 3,
            }
        } else {
            progcost::Params {
                vip_counts: vec![1, 100, 10_000, 100_000],
                peer_counts: vec![1, 16, 256],
                repeat: 1_000_000,
                rounds: 5,
            }
        };
        eprintln!("program cost (BPF_PROG_TEST_RUN): {p:?}");
        Some(progcost::run(&p).context("program cost")?)
    } else {
        None
    };

    let wholepath = if want(Part::Wholepath) {
        let p = if cli.quick {
            wholepath::Params {
                vip_counts: vec![1, 100],
                rounds: 2,
                sample: Duration::from_millis(200),
            }
        } else {
            wholepath::Params {
                vip_counts: vec![1, 100, 1000, 10_000],
                rounds: 7,
                sample: Duration::from_millis(1500),
            }
        };
        eprintln!("whole path (veth, AF_PACKET sendmmsg): {p:?}");
        Some(wholepath::run(&p).context("whole path")?)
    } else {
        None
    };

    let memory = if want(Part::Memory) {
        let (n, peers) = if cli.quick {
            (10_000, 16)
        } else {
            (100_000, 16)
        };
        eprintln!("memory and control plane: {n} VIPs, {peers} peers");
        let tmp = std::env::temp_dir().join(format!("lvs-bench-{}", std::process::id()));
        Some(memory::run(n, peers, &tmp).context("memory")?)
    } else {
        None
    };

    let targets = report::targets(progcost.as_ref(), wholepath.as_ref(), memory.as_ref());
    let report = Report {
        machine,
        quick: cli.quick,
        started_unix,
        elapsed_secs: started.elapsed().as_secs_f64(),
        progcost,
        wholepath,
        memory,
        targets,
    };
    let md = report::markdown(&report);
    print!("{md}");

    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let json = serde_json::to_string_pretty(&report).context("serialising results")?;
    let files = [
        ("bench.json", json),
        ("bench.md", md),
        (
            "bench.svg",
            plot::svg(
                report.progcost.as_ref(),
                report.wholepath.as_ref(),
                &report.machine.describe(),
            ),
        ),
    ];
    for (name, text) in files {
        let p = cli.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    eprintln!("lvs-bench: done in {:.0} s", report.elapsed_secs);
    Ok(())
}

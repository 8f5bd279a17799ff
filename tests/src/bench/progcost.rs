//! Program cost through BPF_PROG_TEST_RUN.
//!
//! Two datapaths are loaded side by side: lvs-ebpf (the call-free tables) and the
//! contender `lvs-ebpf (htab)`, the same program over kernel hash maps. For every
//! (VIPs, peers) cell both get a VIP set holding the scenario's target, and the scenarios
//! of that set run round-robin, for both datapaths, together with the empty program
//! (`lvs-empty`, the floor): `rounds` x (empty, s1, s1', s2, s2', ...). Each run repeats
//! the frame `repeat` times; the kernel reports the mean ns per repetition. The returned
//! mark and return value are checked on every run: a run that leaves the wrong mark
//! aborts the benchmark instead of posting a time.
//!
//! Here: the parameters, results and [`run`]. `scenario`: the datapaths and scenarios.

mod scenario;

pub use scenario::{Dp, Scenario};

use std::{net::IpAddr, os::fd::RawFd, time::Instant};

use anyhow::{Context as _, Result, bail};
use lvs_loader::{bench_support::EmptyProgram, datapath::Datapath, testrun};
use serde::Serialize;

use super::{
    median,
    workload::{self, Target},
};

/// TC_ACT_UNSPEC / TCX_NEXT: what both programs must return.
const RETVAL: i32 = -1;

#[derive(Debug, Clone)]
pub struct Params {
    pub vip_counts: Vec<usize>,
    pub peer_counts: Vec<usize>,
    pub repeat: u32,
    pub rounds: usize,
}

/// One scenario in one (VIPs, peers) cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub vips: usize,
    pub peers: usize,
    pub scenario: Scenario,
    /// The datapath measured (the empty program's cells say `table`).
    pub datapath: Dp,
    /// Kernel-reported mean ns per repetition, one per round. The kernel truncates it to
    /// whole ns (`duration = elapsed / repeat`): 28 means 28.0-28.99, too coarse for
    /// ratios of ~1.1 to a 26 ns floor.
    pub kernel_ns: Vec<u32>,
    pub median_kernel_ns: f64,
    /// Wall-clock ns per repetition around the syscall (includes the syscall and skb
    /// set-up amortised over `repeat`: ~0.002 ns at 1,000,000 repetitions).
    pub wall_ns: Vec<f64>,
    /// What the tables show and the ratios use: the least of `wall_ns`, the round least
    /// disturbed by the rest of the machine (this one is a shared VM: another tenant's
    /// burst inflates a round by several ns, and a median of 5 rounds still moved the
    /// floor from 26.6 to 29.9 ns between cells of one run). The field keeps its name for
    /// the JSON's readers.
    pub median_ns: f64,
    /// The least of every empty-program run in the same cell (as `median_ns`).
    pub floor_ns: f64,
    pub ratio_to_floor: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub repeat: u32,
    pub rounds: usize,
    pub cpu: usize,
    pub cells: Vec<Cell>,
}

impl Results {
    /// The lvs-ebpf (table) cell.
    pub fn get(&self, vips: usize, peers: usize, s: Scenario) -> Option<&Cell> {
        self.get_dp(vips, peers, s, Dp::Table)
    }

    pub fn get_dp(&self, vips: usize, peers: usize, s: Scenario, dp: Dp) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.vips == vips && c.peers == peers && c.scenario == s && c.datapath == dp)
    }
}

struct Sample {
    scenario: Scenario,
    dp: Dp,
    kernel: u32,
    wall: f64,
}

fn run_checked(
    fd: RawFd,
    frame: &[u8],
    want_mark: u32,
    repeat: u32,
    what: &str,
) -> Result<(u32, f64)> {
    let t0 = Instant::now();
    let out = testrun::run_skb(fd, frame, 0, repeat)
        .with_context(|| format!("BPF_PROG_TEST_RUN ({what})"))?;
    let wall = t0.elapsed().as_nanos() as f64 / f64::from(repeat.max(1));
    if out.retval != RETVAL || out.mark != want_mark {
        bail!(
            "{what}: the program returned {} with mark {:#x}, expected {RETVAL} with mark {want_mark:#x}: refusing to report a time for a wrong result",
            out.retval,
            out.mark
        );
    }
    Ok((out.duration_ns, wall))
}

pub fn run(p: &Params) -> Result<Results> {
    let mut dps = Vec::new();
    for d in Dp::ALL {
        let mut dp = Datapath::load_variant(d.variant())
            .with_context(|| format!("loading {}", d.label()))?;
        let fd = dp.program_fd()?;
        dps.push((d, dp, fd));
    }
    let mut empty = EmptyProgram::load().context("loading the empty program")?;
    let empty_fd = empty.program_fd()?;
    let cpu = super::bench_cpu();
    super::pin_to_cpu(cpu).context("pinning to a CPU")?;

    let mut cells = Vec::new();
    for &n in &p.vip_counts {
        for &peers in &p.peer_counts {
            let mut samples: Vec<Sample> = Vec::new();
            for target in [Target::V4, Target::V6, Target::AnyPort] {
                let t0 = Instant::now();
                let config = workload::config(n, target, peers);
                for (d, dp, _) in &mut dps {
                    dp.maps.apply(&config).with_context(|| {
                        format!("installing {n} VIPs / {peers} peers in {}", d.label())
                    })?;
                }
                let applied = t0.elapsed();
                // (scenario, datapath, fd): the floor, then each scenario on each datapath.
                let mut runs: Vec<(Scenario, Dp, RawFd)> =
                    vec![(Scenario::Empty, Dp::Table, empty_fd)];
                for s in Scenario::LVS.into_iter().filter(|s| s.target() == target) {
                    for (d, _, fd) in &dps {
                        runs.push((s, *d, *fd));
                    }
                }
                if target == Target::V4
                    && let Some((_, _, fd)) = dps.iter().find(|(d, _, _)| *d == Dp::Table)
                {
                    for s in Scenario::TRACE {
                        runs.push((s, Dp::Table, *fd));
                    }
                }
                // Tracing on or off for the next run (set between runs, when it changes).
                let mut traced: Option<Scenario> = None;
                let mut trace_for = |dps: &mut Vec<(Dp, Datapath, RawFd)>, s: Scenario| {
                    let want = s.trace_filter().map(|_| s);
                    if want == traced {
                        return Ok(());
                    }
                    traced = want;
                    let (_, dp, _) = dps
                        .iter_mut()
                        .find(|(d, _, _)| *d == Dp::Table)
                        .context("no table datapath")?;
                    lvs_loader::trace::bench_set(dp, s.trace_filter()).context("setting the trace")
                };
                let frames: Vec<(Vec<u8>, u32)> =
                    runs.iter().map(|(s, _, _)| s.frame(peers)).collect();
                // Warm-up (caches, branch predictors), checked too.
                for ((s, _, fd), (f, m)) in runs.iter().zip(&frames) {
                    trace_for(&mut dps, *s)?;
                    run_checked(*fd, f, *m, p.repeat.min(100_000), s.key())?;
                }
                for _ in 0..p.rounds {
                    for ((s, d, fd), (f, m)) in runs.iter().zip(&frames) {
                        trace_for(&mut dps, *s)?;
                        let what =
                            format!("{} of {} with {n} VIPs, {peers} peers", s.key(), d.label());
                        let (kernel, wall) = run_checked(*fd, f, *m, p.repeat, &what)?;
                        samples.push(Sample {
                            scenario: *s,
                            dp: *d,
                            kernel,
                            wall,
                        });
                    }
                }
                trace_for(&mut dps, Scenario::TraceOff)?;
                eprintln!(
                    "  progcost: {n:>6} VIPs {peers:>3} peers {target:?}: applied in {:.0} ms, measured",
                    applied.as_secs_f64() * 1e3
                );
            }
            let floor = samples
                .iter()
                .filter(|s| s.scenario == Scenario::Empty)
                .map(|s| s.wall)
                .fold(f64::INFINITY, f64::min);
            let keys = std::iter::once((Scenario::Empty, Dp::Table))
                .chain(
                    Scenario::LVS
                        .into_iter()
                        .flat_map(|s| Dp::ALL.into_iter().map(move |d| (s, d))),
                )
                .chain(Scenario::TRACE.into_iter().map(|s| (s, Dp::Table)));
            for (s, d) in keys {
                let mine: Vec<&Sample> = samples
                    .iter()
                    .filter(|x| x.scenario == s && x.dp == d)
                    .collect();
                let kernel_ns: Vec<u32> = mine.iter().map(|x| x.kernel).collect();
                let wall_ns: Vec<f64> = mine.iter().map(|x| x.wall).collect();
                let median_ns = wall_ns.iter().copied().fold(f64::INFINITY, f64::min);
                cells.push(Cell {
                    vips: n,
                    peers,
                    scenario: s,
                    datapath: d,
                    median_kernel_ns: median(
                        &kernel_ns.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
                    ),
                    kernel_ns,
                    wall_ns,
                    median_ns,
                    floor_ns: floor,
                    ratio_to_floor: median_ns / floor,
                });
            }
        }
    }
    super::unpin().context("unpinning")?;
    // The VIP sets name their addresses explicitly; keep the frame builder honest.
    debug_assert!(matches!(workload::Target::V6.vip().address, IpAddr::V6(_)));
    Ok(Results {
        repeat: p.repeat,
        rounds: p.rounds,
        cpu,
        cells,
    })
}

//! `cargo xtask vm-test`: the integration tests (and, with `--lvs`, the LVS localnode
//! scenarios) inside qemu guests booting Debian kernels.
//!
//! 1. builds `lvs-loader` and the test executables on the host ([`payload`]);
//! 2. fetches the kernels ([`kernel`], through [`apt`]; cached under `target/vm-cache`);
//! 3. builds an initramfs per kernel ([`initrd`], staged by [`rootfs`]);
//! 4. boots each kernel once per job ([`qemu`]: KVM when it works here, TCG otherwise) and
//!    reads the verdict from the guest's console ([`report`]).
use std::{
    fs,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

mod apt;
mod initrd;
pub(crate) mod kernel;
mod payload;
pub(crate) mod qemu;
mod report;
mod rootfs;
mod schedule;

use kernel::{Kernel, KernelChoice};
use qemu::Accel;
use report::Row;

/// The LVS scenarios of `xtask/vm/scenarios/`, in the order they run.
pub const SCENARIOS: &[&str] = &["two-box", "failover", "two-nic", "three-box", "udp", "ipv6"];

/// The CI set (`--ci`, run by `cargo xtask test`): two-box (the reference table) on every
/// kernel, every other scenario once, spread so that the three guests take about as long.
/// `--all` runs every scenario on every kernel.
fn ci_scenarios(kernel: &str) -> Vec<&'static str> {
    match kernel {
        "5.10" => vec!["two-box", "failover"],
        "6.1" => vec!["two-box", "two-nic", "udp"],
        _ => vec!["two-box", "three-box", "ipv6"],
    }
}

/// The failover scenario's events in the CI set: all of them. A (keepalived stopped), B
/// (eth0 down), R (hook removed, the daemon repairs it) and D (the marker detached:
/// keepalived's `vrrp_script` demotes the director; 60-70 s under TCG).
const CI_FAILOVER_EVENTS: &str = "A,B,R,D";

/// Kernels whose guest runs the integration tests in the CI set: the oldest (5.10, the
/// netlink path) and TCX (6.12). 6.1 takes the netlink path too and runs its scenarios;
/// `--all` runs the tests on every kernel. Keeps `.ci/run` within its 30 minutes.
const CI_TEST_KERNELS: &[&str] = &["5.10", "6.12"];

#[derive(clap::Args)]
pub struct VmTestArgs {
    /// Kernel(s) to boot.
    #[arg(long, value_enum, default_value = "all")]
    kernel: KernelChoice,
    /// Also run the LVS localnode scenarios (loop before, cure after) in each guest.
    #[arg(long)]
    lvs: bool,
    /// Only these LVS scenarios (comma-separated; implies --lvs): two-box, failover,
    /// two-nic, three-box, udp, ipv6.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenarios: Vec<String>,
    /// Only these steps of the tests job (comma-separated): smoke, memlock, or a test
    /// executable as PACKAGE/TARGET (e.g. lvs-tests/attach).
    #[arg(long, value_delimiter = ',')]
    steps: Vec<String>,
    /// Everything: every kernel, the tests and every LVS scenario.
    #[arg(long)]
    all: bool,
    /// The set `cargo xtask test` (CI) runs: every kernel, the tests, two-box on every
    /// kernel and each other scenario on one kernel (see `ci_scenarios`).
    #[arg(long, conflicts_with_all = ["all", "scenarios"])]
    ci: bool,
    /// Skip the integration tests (with `--lvs`: the scenarios only).
    #[arg(long)]
    no_tests: bool,
    /// Keep the staging trees and initramfs images under target/vm-test.
    #[arg(long)]
    keep: bool,
    /// Per-guest timeout in seconds.
    #[arg(long, default_value_t = 1500)]
    timeout: u64,
    /// Client connections per phase of the LVS scenarios (default: 100 for two-box, 40 for
    /// the others).
    #[arg(long)]
    connections: Option<u32>,
    /// Cargo profile for lvs-loader and the test executables. Release by default: under TCG
    /// debug code is the bottleneck of the CPU-bound tests (property tests 80 s -> 10 s).
    #[arg(long, value_enum, default_value = "release")]
    profile: Profile,
    /// Guests run at the same time (default: 2 if the host has 2 CPUs or more). TCG guests
    /// mostly use one CPU each here: the tests run with --test-threads=1.
    #[arg(long)]
    jobs: Option<usize>,
    /// Echo the guests' consoles live.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    Dev,
    Release,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Tests,
    Lvs,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Tests => "tests",
            Job::Lvs => "lvs",
        }
    }
}

pub fn run(mut args: VmTestArgs) -> Result<()> {
    let t0 = Instant::now();
    if args.all {
        args.kernel = KernelChoice::All;
        args.lvs = true;
        args.no_tests = false;
        args.scenarios.clear();
        args.steps.clear();
    }
    if args.ci {
        args.kernel = KernelChoice::All;
        args.lvs = true;
        args.no_tests = false;
    }
    if !args.scenarios.is_empty() {
        args.lvs = true;
    }
    let mut jobs = Vec::new();
    if !args.no_tests {
        jobs.push(Job::Tests);
    }
    if args.lvs {
        jobs.push(Job::Lvs);
    }
    if jobs.is_empty() {
        bail!("nothing to do: --no-tests without --lvs or --scenarios");
    }

    crate::setup(true)?;
    let root = crate::workspace_root();
    let target = crate::util::target_dir(&root)?;
    let cache = target.join("vm-cache");
    let work = target.join("vm-test");
    let logs = work.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let t_build = Instant::now();
    let payload = payload::build(&root, args.profile == Profile::Release, !args.no_tests)?;
    let kernels = args
        .kernel
        .expand()
        .into_iter()
        .map(|k| kernel::fetch(k, &cache))
        .collect::<Result<Vec<_>>>()?;
    let common = work.join("common.cpio");
    initrd::build_common(
        &root,
        &payload,
        &work.join("stage-common"),
        &common,
        args.keep,
    )?;
    let mut initrds = Vec::new();
    for k in &kernels {
        let out = work.join(format!("initrd-{}.cpio", k.label));
        let stage = work.join(format!("stage-{}", k.label));
        initrd::build_kernel_initrd(k, &common, &stage, &out, args.keep)?;
        initrds.push(out);
    }
    let build_secs = t_build.elapsed().as_secs_f64();
    eprintln!(
        "[vm-test] payload, kernels and initramfs ready in {build_secs:.1} s ({} test executable(s))",
        payload.tests.len()
    );

    let accel = qemu::choose_accel(
        &kernels[0].vmlinuz,
        &initrds[0],
        &cache.join("accel"),
        &logs,
    )?;
    let memory_mib = std::env::var("LVS_VM_MEM")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(2048);

    let mut runs: Vec<(usize, Job)> = Vec::new();
    for &job in &jobs {
        runs.extend(
            (0..kernels.len())
                .filter(|&k| {
                    !(args.ci && job == Job::Tests && !CI_TEST_KERNELS.contains(&kernels[k].label))
                })
                .map(|k| (k, job)),
        );
    }
    let lanes = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .min(2)
        })
        .clamp(1, runs.len().max(1));
    // Each lane runs its guests one after the other, planned so that the lanes end
    // together (see `schedule`).
    let secs: Vec<u32> = runs
        .iter()
        .map(|&(k, job)| match job {
            Job::Tests => schedule::tests_secs(kernels[k].label),
            Job::Lvs => schedule::lvs_secs(&scenarios_for(&args, kernels[k].label)),
        })
        .collect();
    let plan = schedule::plan(&secs, lanes);
    if plan.len() > 1 {
        eprintln!(
            "[vm-test] {} guest run(s), {} at a time",
            runs.len(),
            plan.len()
        );
        for (n, lane) in plan.iter().enumerate() {
            let guests: Vec<String> = lane
                .iter()
                .map(|&i| {
                    let (k, job) = runs[i];
                    format!("{}/{} (~{} s)", kernels[k].label, job.name(), secs[i])
                })
                .collect();
            eprintln!("[vm-test] lane {}: {}", n + 1, guests.join(", "));
        }
    }
    let results: Mutex<Vec<Option<Result<Vec<Row>>>>> =
        Mutex::new((0..runs.len()).map(|_| None).collect());
    let print_lock = Mutex::new(());
    std::thread::scope(|scope| {
        for lane in &plan {
            let (runs, kernels, initrds, results, print_lock, args, logs) = (
                &runs,
                &kernels,
                &initrds,
                &results,
                &print_lock,
                &args,
                &logs,
            );
            scope.spawn(move || {
                for &i in lane {
                    let (ki, job) = runs[i];
                    let guest = GuestRun {
                        kernel: &kernels[ki],
                        initrd: &initrds[ki],
                        job,
                        accel,
                        memory_mib,
                        logs,
                    };
                    let rows = guest.run(args, print_lock);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(rows);
                    }
                }
            });
        }
    });
    // Summary in kernel order, tests before scenarios.
    let mut per_run = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a guest runner panicked"))?
        .into_iter()
        .zip(&runs)
        .map(|(r, &(k, job))| {
            r.unwrap_or_else(|| Err(anyhow::anyhow!("guest run did not happen")))
                .map(|rows| ((k, job == Job::Lvs), rows))
        })
        .collect::<Result<Vec<_>>>()?;
    per_run.sort_by_key(|(key, _)| *key);
    let rows: Vec<Row> = per_run.into_iter().flat_map(|(_, rows)| rows).collect();

    if !args.keep {
        for initrd in initrds.iter().chain([&common]) {
            fs::remove_file(initrd).ok();
        }
    }
    report::print_summary(&rows, build_secs, t0.elapsed().as_secs_f64());
    let failed = rows.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        bail!(
            "{failed} row(s) of the summary failed; console logs in {}",
            logs.display()
        );
    }
    Ok(())
}

/// The scenarios the LVS guest of `kernel` runs (empty: every one, the guest's default).
fn scenarios_for<'a>(args: &'a VmTestArgs, kernel: &str) -> Vec<&'a str> {
    if args.ci {
        ci_scenarios(kernel)
    } else {
        args.scenarios.iter().map(String::as_str).collect()
    }
}

/// One guest boot: a kernel, its initramfs, a job.
struct GuestRun<'a> {
    kernel: &'a Kernel,
    initrd: &'a Path,
    job: Job,
    accel: Accel,
    memory_mib: u32,
    logs: &'a Path,
}

impl GuestRun<'_> {
    /// Boots the guest and reports on it (under `print_lock`, so parallel guests' reports
    /// do not interleave); returns its summary rows.
    fn run(&self, args: &VmTestArgs, print_lock: &Mutex<()>) -> Result<Vec<Row>> {
        let k = self.kernel;
        let job = self.job;
        let name = format!("{}/{}", k.label, job.name());
        eprintln!("[vm-test] booting {name} ({}, {})", k.package, self.accel);
        let mut cmdline = format!("lvs.job={}", job.name());
        if job == Job::Tests && !args.steps.is_empty() {
            cmdline.push_str(&format!(" lvs.steps={}", args.steps.join(",")));
        }
        if job == Job::Lvs {
            if let Some(n) = args.connections {
                cmdline.push_str(&format!(" lvs.n={n}"));
            }
            let scenarios = scenarios_for(args, k.label);
            if !scenarios.is_empty() {
                cmdline.push_str(&format!(" lvs.scenarios={}", scenarios.join(",")));
            }
            if args.ci && scenarios.contains(&"failover") {
                cmdline.push_str(&format!(" lvs.events={CI_FAILOVER_EVENTS}"));
            }
        }
        // Debugging aid, e.g. LVS_VM_APPEND="lvs.phases=before".
        if let Ok(extra) = std::env::var("LVS_VM_APPEND") {
            cmdline.push(' ');
            cmdline.push_str(&extra);
        }
        let log = self.logs.join(format!("{}-{}.log", k.label, job.name()));
        let guest = qemu::Guest {
            name: name.clone(),
            vmlinuz: &k.vmlinuz,
            initrd: self.initrd,
            cmdline,
            accel: self.accel,
            memory_mib: self.memory_mib,
            timeout: Duration::from_secs(args.timeout),
            log: log.clone(),
            echo: args.verbose,
        };
        let mut run = qemu::boot(&guest)?;
        // A kernel that dies while booting under TCG, before the guest's init printed its
        // first line (a CI run of 2026-11-27: an int3 Oops in `sched_clock_cpu` 2.4 s into
        // the boot, while the kernel patched its own text), ran no test: boot it once
        // more. A guest that fails after its init started is never booted again.
        if let Some(why) = qemu::died_before_init(&run) {
            let first = log.with_extension("boot1.log");
            fs::rename(&log, &first).ok();
            eprintln!(
                "[vm-test] {name}: the kernel died before the guest's init started ({why}); \
                 booting it once more (first console: {})",
                first.display()
            );
            run = qemu::boot(&guest)?;
        }
        {
            let _guard = print_lock.lock();
            eprintln!(
                "[vm-test] {name} finished: {} in {:.0} s",
                run.outcome, run.secs
            );
            report::print_guest(&name, job, &run, &log);
        }
        Ok(report::rows(
            &format!("{} ({})", k.label, k.kver),
            job,
            self.accel,
            &run,
        ))
    }
}

//! Developer tasks for lvs-ebpf: `cargo xtask <task>`.
//!
//! * `setup`   - install what the build and tests need (idempotent; see setup.sh)
//! * `demo`    - run the two-box demo lab (the README's first command)
//! * `test`    - run the whole test suite (the README's second command; `.ci/run` calls it)
//! * `bench`   - benchmarks (program cost, whole path, memory)
//! * `vm-test` - the integration tests inside qemu guests running Debian kernels
//! * `mutants` - mutation testing: cargo-mutants on config/ and table/, hand-written
//!   mutations of the eBPF parser and lookups (slow; not part of `test`)
//! * `package` - the Debian package (static musl lvs-loader, units, man pages); `--test`
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod mutants;
mod package;
mod util;
mod vm;

#[derive(Parser)]
#[command(name = "xtask", about = "lvs-ebpf developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces and Debian packages the project needs (idempotent).
    Setup {
        /// Also install what `vm-test` needs (qemu, busybox, ...).
        #[arg(long)]
        vm: bool,
    },
    /// Build everything and run the two-box demo lab in network namespaces.
    Demo,
    /// Build everything and run the whole test suite.
    Test {
        /// Skip the benchmark smoke run.
        #[arg(long)]
        no_bench: bool,
        /// Skip `vm-test --ci` (the Debian-kernel guests and the LVS scenarios).
        #[arg(long)]
        no_vm: bool,
        /// Skip `package --test` (build the .deb, install it into a fresh Debian root).
        #[arg(long)]
        no_package: bool,
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmarks: program cost (BPF_PROG_TEST_RUN), whole path against iptables and
    /// nftables, memory and attach/reload time. Prints markdown tables; writes
    /// bench.json, bench.md and bench.svg into --out.
    Bench {
        /// Tiny repeat counts and short samples (CI smoke run, < 60 s); marks still checked.
        #[arg(long)]
        quick: bool,
        /// Output directory (default: bench-results/ in the workspace).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Only these parts, comma-separated: progcost, wholepath, memory.
        #[arg(long, value_name = "PARTS")]
        only: Option<String>,
    },
    /// Run the integration tests (and, with --lvs, the LVS scenarios) in qemu guests booting
    /// Debian's 5.10, 6.1 and 6.12 kernels.
    VmTest(vm::VmTestArgs),
    /// Build the Debian package (static musl lvs-loader, systemd units, man pages,
    /// completions, example config) into target/debian; --test installs it into a fresh
    /// Debian root and runs it from there.
    Package(package::PackageArgs),
    /// Mutation testing (slow, not part of `test`): cargo-mutants on lvs-loader's config/
    /// and table/, and the hand-written eBPF mutations of xtask/mutants/ebpf.txt against
    /// the fixture, model-fuzz and differential tests; prints killed/survived per mutant.
    Mutants(mutants::MutantsArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup { vm } => setup(vm),
        Task::Demo => {
            setup(false)?;
            util::run(Command::new("cargo").args(["build", "--release", "-p", "lvs-loader"]))?;
            let root = workspace_root();
            util::run(
                Command::new("bash")
                    .arg(root.join("xtask/demo.sh"))
                    .env("LVS_LOADER", root.join("target/release/lvs-loader")),
            )
        }
        Task::Test {
            no_bench,
            no_vm,
            no_package,
            args,
        } => {
            setup(false)?;
            let root = workspace_root();
            // Each stage's wall time, so CI logs show where its budget goes.
            let started = std::time::Instant::now();
            let mut stage_start = started;
            let mut lap = |name: &str| {
                let now = std::time::Instant::now();
                println!(
                    "stage {name}: {:.0} s (total {:.0} s)",
                    (now - stage_start).as_secs_f64(),
                    (now - started).as_secs_f64()
                );
                stage_start = now;
            };
            let mut cmd = Command::new("cargo");
            cmd.current_dir(&root)
                .args(["test", "--workspace", "--exclude", "lvs-ebpf"]);
            if !args.is_empty() {
                cmd.arg("--").args(args);
            }
            util::run(&mut cmd)?;
            lap("host tests");
            let mut stages = 1;
            if !no_bench {
                // Benchmark smoke run: tiny repeat counts, marks still checked on every
                // round, so the benchmark can't rot. `cargo test` built lvs-bench already.
                let out =
                    std::env::temp_dir().join(format!("lvs-bench-smoke-{}", std::process::id()));
                let r = util::run(
                    Command::new(root.join("target/debug/lvs-bench"))
                        .current_dir(&root)
                        .env("LVS_LOADER", root.join("target/debug/lvs-loader"))
                        .arg("--quick")
                        .arg("--out")
                        .arg(&out),
                );
                let _ = std::fs::remove_dir_all(&out);
                r?;
                println!("benchmark smoke run: OK");
                lap("benchmark smoke");
                stages += 1;
            }
            if !no_package {
                package::test_stage()?;
                lap("package");
                stages += 1;
            }
            if !no_vm {
                // The same tests on Debian's 5.10 and 6.1 (netlink path) and 6.12 (TCX)
                // kernels under qemu, and the LVS loop reproduced and cured with real IPVS:
                // the CI set of scenarios (`vm-test --all` runs every one on every kernel).
                let exe = std::env::current_exe().context("locating xtask")?;
                util::run(
                    Command::new(exe)
                        .current_dir(&root)
                        .args(["vm-test", "--ci"]),
                )?;
                lap("VM guests");
                stages += 1;
            }
            // Each stage fails the task on its first failing test, so reaching here means
            // every stage passed: host `cargo test`, benchmark smoke, package, VM guests.
            println!("stages: {stages} passed, 0 failed");
            Ok(())
        }
        Task::Bench { quick, out, only } => bench(quick, out, only),
        Task::VmTest(args) => vm::run(args),
        Task::Package(args) => package::run(args),
        Task::Mutants(args) => {
            setup(false)?;
            mutants::run(&workspace_root(), args)
        }
    }
}

fn bench(quick: bool, out: Option<PathBuf>, only: Option<String>) -> Result<()> {
    setup(false)?;
    let root = workspace_root();
    // lvs-bench runs the lvs-loader CLI for the attach/reload/RSS measurements.
    util::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "lvs-loader",
        "--bin",
        "lvs-loader",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let out = out.unwrap_or_else(|| root.join("bench-results"));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root)
        .args([
            "run",
            "--release",
            "-p",
            "lvs-tests",
            "--bin",
            "lvs-bench",
            "--",
        ])
        .arg("--out")
        .arg(&out)
        .env("LVS_LOADER", target_dir.join("release/lvs-loader"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(only) = only {
        cmd.args(["--only", &only]);
    }
    util::run(&mut cmd)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn setup(vm: bool) -> Result<()> {
    let script = workspace_root().join("xtask/setup.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if vm {
        cmd.arg("vm");
    }
    util::run(&mut cmd).with_context(|| format!("{} failed", script.display()))?;
    if !nix_is_root() {
        bail!(
            "lvs-ebpf tasks load BPF programs and create network namespaces: run them as root (sudo)"
        );
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

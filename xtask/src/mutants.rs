//! `cargo xtask mutants`: are the tests measured by the mutants they kill?
//!
//! * Host side: cargo-mutants on `lvs-loader/src/config/` and `lvs-loader/src/table/`
//!   (their unit tests and `lvs-loader/tests/config*.rs`), when `cargo mutants` is
//!   installed.
//! * eBPF side (cargo-mutants can't build it: no_std, bpfel-unknown-none, built by
//!   lvs-loader/build.rs): the hand-written mutations of `xtask/mutants/ebpf.txt`, one at
//!   a time, in place: rebuild, run the fixture, model-fuzz and differential tests, then
//!   a table of killed and survived.
//!
//! The mutated file is restored after each mutation, also on a panic (a guard) and on
//! Ctrl-C (SIGINT is ignored here: the child cargo dies of it, the run stops, the guard
//! restores). A copy of the pristine file is kept in `target/mutants/` first, so even a
//! SIGKILL leaves a recoverable state: the next run restores it before anything else.
//!
//! Here: the arguments, the host side (cargo-mutants), Ctrl-C handling and [`run`].
//! `list`: the mutation list; `mutate`: mutating a file and restoring it; `ebpf`: the
//! eBPF side's runs and table.

mod ebpf;
mod list;
mod mutate;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use ebpf::run_ebpf;

/// The default fast test subset run against each eBPF mutation.
const DEFAULT_TESTS: &str = "fixtures_ipv4,fixtures_ipv6,fixtures_malformed,fixtures_peers,fixtures_scale,fuzz_model,differential,nonlinear";

#[derive(clap::Args)]
pub struct MutantsArgs {
    /// Only the eBPF mutations whose number (1-based, as in the table) is listed,
    /// comma-separated; ranges like 3-7 allowed.
    #[arg(long, value_name = "LIST")]
    only: Option<String>,
    /// The lvs-tests test files run against each eBPF mutation, comma-separated.
    #[arg(long, value_name = "TESTS", default_value = DEFAULT_TESTS)]
    tests: String,
    /// The eBPF mutation list.
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Skip cargo-mutants (host side).
    #[arg(long)]
    no_host: bool,
    /// Skip the eBPF mutations.
    #[arg(long)]
    no_ebpf: bool,
    /// Extra arguments for cargo-mutants (e.g. "--shard 0/8" or "--list").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    host_args: Option<String>,
}

/// Lets `cmd` die of Ctrl-C although this process ignores it (an ignored signal stays
/// ignored across exec).
fn default_sigint(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            signal(SIGINT, SIG_DFL);
            Ok(())
        })
    }
}

fn run_host(root: &Path, args: &MutantsArgs) -> Result<bool> {
    let have = Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!(
            "host side: SKIP: cargo-mutants is not installed (`cargo install --locked \
             cargo-mutants@27.1.0`; ~9 min to build on 2 cores, so `cargo xtask setup` \
             does not install it)"
        );
        return Ok(true);
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "mutants",
        "--package",
        "lvs-loader",
        "--file",
        "lvs-loader/src/config/**",
        "--file",
        "lvs-loader/src/table/**",
        "--file",
        "lvs-loader/src/table.rs",
        "--output",
        "target/mutants/host",
    ]);
    if let Some(extra) = &args.host_args {
        cmd.args(extra.split_whitespace());
    }
    // The tests that exercise config/ and table/: the library's unit tests and the
    // config integration tests (no namespace, no root needed).
    cmd.args(["--", "--lib", "--test", "config", "--test", "config_daemon"]);
    std::fs::create_dir_all(root.join("target/mutants"))?;
    let status = default_sigint(&mut cmd)
        .status()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(status.success())
}

const SIGINT: i32 = 2;
const SIG_IGN: usize = 1;
const SIG_DFL: usize = 0;

unsafe extern "C" {
    fn signal(sig: i32, handler: usize) -> usize;
}

pub fn run(root: &Path, args: MutantsArgs) -> Result<()> {
    // Ctrl-C goes to the whole foreground group: the child cargo dies of it, we stay to
    // put the mutated file back (the guards run on the error path).
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { signal(SIGINT, SIG_IGN) };
    let mut clean = true;
    if !args.no_ebpf {
        clean &= run_ebpf(root, &args)?;
    }
    if !args.no_host {
        clean &= run_host(root, &args)?;
    }
    if !clean {
        bail!("surviving mutants: each is a missing test");
    }
    Ok(())
}

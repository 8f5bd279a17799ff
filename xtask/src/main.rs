//! Developer tasks for lvs-ebpf: `cargo xtask <task>`.
//!
//! * `setup`   - install what the build and tests need (idempotent; see setup.sh)
//! * `demo`    - run the two-box demo lab (the README's first command)
//! * `test`    - run the whole test suite (the README's second command; `.ci/run` calls it)
//! * `bench`   - benchmarks (program cost, whole path, memory)
//! * `vm-test` - the integration tests inside qemu guests running Debian kernels
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

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
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run the integration tests (and, with --lvs, the two-box LVS scenario) in qemu guests
    /// booting Debian's 6.1 and 6.12 kernels.
    VmTest(vm::VmTestArgs),
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
        Task::Test { args } => {
            setup(false)?;
            let mut cmd = Command::new("cargo");
            cmd.args(["test", "--workspace", "--exclude", "lvs-ebpf"]);
            if !args.is_empty() {
                cmd.arg("--").args(args);
            }
            util::run(&mut cmd)
        }
        Task::VmTest(args) => vm::run(args),
    }
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

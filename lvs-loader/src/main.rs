//! `lvs-loader`: attach the lvs-ebpf marker to TC ingress and manage it.
//!
//! This file parses the command line and dispatches; each subcommand lives in its own
//! file under `cmd/`.
use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use lvs_loader::{ops::DEFAULT_PIN_DIR, sys};

mod cmd;

#[derive(Parser)]
#[command(
    name = "lvs-loader",
    version,
    about = "Mark LVS VIP traffic from non-peer MACs with a TC-ingress eBPF program (replaces the iptables MAC/MARK recipe)",
    after_help = "Examples:\n  sudo lvs-loader attach eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader stats eth0\n  sudo lvs-loader reload eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader status --json\n  sudo lvs-loader detach eth0"
)]
struct Cli {
    /// Root directory of the pins (on a bpf filesystem).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Run in network namespace NAME (from /run/netns, like `ip -n NAME`) or at a path
    /// such as /proc/PID/ns/net.
    #[arg(long, short = 'n', global = true, value_name = "NAME")]
    netns: Option<String>,
    /// Machine-readable output.
    #[arg(long, short = 'j', global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the program, fill the maps from FILE, attach to IFACE's ingress and pin it all
    /// (the datapath keeps running after lvs-loader exits). On an attached IFACE this is a
    /// reload.
    Attach(cmd::attach::AttachArgs),
    /// Replace the VIPs and peers of an attached IFACE atomically (no packet misses a VIP
    /// present in both configs).
    Reload(cmd::attach::ReloadArgs),
    /// Remove the program from IFACE and every pin lvs-loader made for it.
    Detach(cmd::detach::Args),
    /// List every attached interface.
    Status(cmd::status::Args),
    /// Per-VIP and global counters of IFACE.
    Stats(cmd::stats::Args),
    /// Validate a config file and print what it would install.
    Check(cmd::check::Args),
    /// Print the manual pages (roff), generated from this binary's options.
    #[command(hide = true)]
    Man(cmd::man::Args),
    /// Print a shell completion script.
    #[command(hide = true)]
    Completions(cmd::completions::Args),
}

fn main() -> ExitCode {
    // Like any Unix filter: `lvs-loader stats eth0 | head` ends quietly.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Config errors already carry file:line:col; print each cause once.
            let mut msg = format!("lvs-loader: error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(ns) = &cli.netns {
        sys::enter_netns(ns).with_context(|| format!("entering network namespace {ns}"))?;
    }
    let ctx = cmd::Ctx {
        pin_dir: cli.pin_dir,
        json: cli.json,
    };
    match cli.command {
        Command::Attach(a) => a.run(&ctx),
        Command::Reload(a) => a.run(&ctx),
        Command::Detach(a) => a.run(&ctx),
        Command::Status(a) => a.run(&ctx),
        Command::Stats(a) => a.run(&ctx),
        Command::Check(a) => a.run(&ctx),
        Command::Man(a) => a.run(&ctx),
        Command::Completions(a) => a.run(&ctx),
    }
}

//! `lvs-loader`: attach the lvs-ebpf marker to TC ingress and manage it.
//!
//! This file parses the command line and dispatches; each subcommand lives in its own
//! file under `cmd/`.
use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use lvs_loader::{DEFAULT_PIN_DIR, sys, text};

mod cmd;
mod report;

#[derive(Parser)]
#[command(
    name = "lvs-loader",
    version,
    about = "Mark LVS VIP traffic from non-peer MACs with a TC-ingress eBPF program (replaces the iptables MAC/MARK recipe)",
    after_help = "Exit status: 0 success, 1 error (for `status`: some attachment is not ok), 2 usage error.\n\nExamples:\n  sudo lvs-loader attach eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader stats eth0\n  sudo lvs-loader reload eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader status --json\n  sudo lvs-loader detach eth0"
)]
struct Cli {
    /// Root directory of the pins (on a bpf filesystem).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Run in network namespace NAME (from /run/netns, like `ip -n NAME`) or at a path
    /// such as /proc/PID/ns/net.
    #[arg(long, short = 'n', global = true, value_name = "NAME")]
    netns: Option<OsString>,
    /// Machine-readable output.
    #[arg(long, short = 'j', global = true)]
    json: bool,
    /// Wait at most SECS for another lvs-loader that is changing the same interface.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30.0)]
    wait: f64,
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
    /// present in both configs); hooks the program again if it was removed from IFACE.
    Reload(cmd::attach::ReloadArgs),
    /// Remove the program from IFACE and every pin lvs-loader made for it (or, with
    /// --orphans, free the attachments of network namespaces that no longer exist).
    Detach(cmd::detach::Args),
    /// List every attachment and its state; exit 1 unless all are ok. With --check: the
    /// health keepalived can track (hooked, first, config unchanged).
    Status(cmd::status::Args),
    /// Per-VIP and global counters of IFACE.
    Stats(cmd::stats::Args),
    /// Validate a config file and print what it would install.
    Check(cmd::check::Args),
    /// Translate the iptables MAC/MARK recipe (iptables-save, firewalld direct rules)
    /// into a vips.toml on standard output.
    Import(cmd::import::Args),
    /// Print a config as the equivalent iptables-restore input (the rollback path).
    Export(cmd::export::Args),
    /// Why is a packet (not) marked: run frames through a private copy of the program
    /// on IFACE's live maps (no counter touched) and say what happens and why.
    Explain(cmd::explain::Args),
    /// What `reload IFACE --config FILE` would add, remove and change, against the live
    /// maps (nothing is written; same as `reload --dry-run`).
    Diff(cmd::diff::Args),
    /// Live per-packet decisions of the program on IFACE (time, source MAC, destination,
    /// verdict, mark, reason) for the packets a filter selects; rate-limited in the kernel.
    Trace(cmd::trace::Args),
    /// Attach (or adopt) and keep the marker on interfaces: repair within a second,
    /// reload on SIGHUP or file change, /metrics and /healthz, systemd Type=notify.
    Daemon(cmd::daemon::Args),
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return report::usage_error(e, report::wants_json(std::env::args_os())),
    };
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(e) => report::error(&e, json),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(ns) = &cli.netns {
        sys::enter_netns(ns).with_context(|| {
            format!(
                "entering network namespace {}",
                text::escape_bytes(ns.as_encoded_bytes())
            )
        })?;
    }
    let wait = Duration::try_from_secs_f64(cli.wait.max(0.0)).unwrap_or(Duration::MAX);
    let ctx = cmd::Ctx {
        pin_dir: cli.pin_dir,
        json: cli.json,
        wait,
    };
    match cli.command {
        Command::Attach(a) => a.run(&ctx),
        Command::Reload(a) => a.run(&ctx),
        Command::Detach(a) => a.run(&ctx),
        Command::Status(a) => a.run(&ctx),
        Command::Stats(a) => a.run(&ctx),
        Command::Check(a) => a.run(&ctx).map(|()| ExitCode::SUCCESS),
        Command::Import(a) => a.run(&ctx).map(|()| ExitCode::SUCCESS),
        Command::Export(a) => a.run(&ctx).map(|()| ExitCode::SUCCESS),
        Command::Explain(a) => a.run(&ctx),
        Command::Diff(a) => a.run(&ctx),
        Command::Trace(a) => a.run(&ctx),
        Command::Daemon(a) => a.run(&ctx),
        Command::Man(a) => a.run(&ctx).map(|()| ExitCode::SUCCESS),
        Command::Completions(a) => a.run(&ctx).map(|()| ExitCode::SUCCESS),
    }
}

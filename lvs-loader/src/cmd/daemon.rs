//! `lvs-loader daemon --config FILE [--metrics ADDR] [IFACE...]`: attach (or adopt) and
//! keep the marker on IFACE... (or the config's `[daemon] interfaces`), repair it within
//! a second of anything removing or displacing it, reload on SIGHUP or when the file
//! changes, `/metrics` and `/healthz`, systemd `Type=notify` with the watchdog.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use lvs_loader::{
    IfName, ModeChoice,
    daemon::{self, DEFAULT_METRICS},
    ifname,
};

use super::{Ctx, attach::OrderArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The config (VIPs, peers, and optionally `[daemon] interfaces = [...]`). Reloaded on
    /// SIGHUP and when it changes; an invalid one is logged and the running one stays.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Where /metrics (Prometheus) and /healthz listen, or `off`. Default
    /// 127.0.0.1:9597 (in the daemon's network namespace).
    #[arg(long, value_name = "ADDR|off")]
    metrics: Option<String>,
    /// For interfaces attached by the daemon; adopted attachments keep their mode.
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeChoice,
    #[command(flatten)]
    order: OrderArgs,
    /// On SIGTERM/SIGINT detach every interface (default: leave the datapath running,
    /// so marking goes on while the daemon restarts).
    #[arg(long)]
    detach_on_exit: bool,
    /// The interfaces to manage (default: the config's `[daemon] interfaces`).
    #[arg(value_parser = ifname::parse_arg, value_name = "IFACE")]
    ifaces: Vec<IfName>,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let (metrics, metrics_explicit) = match self.metrics.as_deref() {
            Some("off") | Some("none") => (None, true),
            Some(a) => (
                Some(a.parse::<SocketAddr>().with_context(|| {
                    format!(
                        "--metrics {}: expected ADDRESS:PORT (e.g. 127.0.0.1:9597) or off",
                        lvs_loader::text::excerpt(a, 64)
                    )
                })?),
                true,
            ),
            None => (DEFAULT_METRICS.parse().ok(), false),
        };
        lvs_loader::sys::check_privileges()?;
        daemon::run(daemon::Options {
            pin_dir: ctx.pin_dir.clone(),
            config: self.config,
            interfaces: self.ifaces,
            metrics,
            metrics_explicit,
            mode: self.mode,
            order: self.order.order(),
            detach_on_exit: self.detach_on_exit,
            lock_wait: ctx.wait.min(std::time::Duration::from_secs(5)),
        })
        .context("daemon")?;
        Ok(ExitCode::SUCCESS)
    }
}

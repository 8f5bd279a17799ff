//! `lvs-loader attach IFACE --config FILE` and `lvs-loader reload IFACE --config FILE`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use lvs_loader::{
    AttachOptions, AttachReport, Attachment, IfName, ModeChoice, config,
    hook::{Order, Position},
    ifname, text,
};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct AttachArgs {
    /// The interface (in this network namespace, or --netns's).
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeChoice,
    /// Attach even if IFACE already carries an lvs-ebpf program of another attachment
    /// (another --pin-dir, or an interface moved here from another namespace). The two
    /// programs would both mark, the marks of the one that runs last winning.
    #[arg(long)]
    allow_stacking: bool,
    #[command(flatten)]
    order: OrderArgs,
}

/// `--position` / `--priority`: where the program goes on the hook.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct OrderArgs {
    /// Where on IFACE's ingress hook: `first` (default for a new attachment; TCX: before
    /// every other program, netlink: tc priority 1 when it is free) so that no other
    /// program can hide packets from the marker, or `last`. Recorded: re-hooks and
    /// repairs keep it. Default on an attached IFACE: what it was attached with.
    #[arg(long, value_enum, value_name = "WHERE")]
    pub position: Option<Position>,
    /// --mode netlink: exactly this tc filter priority (1-65535) instead of --position.
    #[arg(long, value_name = "N", conflicts_with = "position", value_parser = clap::value_parser!(u16).range(1..))]
    pub priority: Option<u16>,
}

impl OrderArgs {
    pub fn order(self) -> Option<Order> {
        Order::from_args(self.position, self.priority)
    }
}

impl AttachArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = config::load(&self.config)?;
        let opts = AttachOptions {
            mode: self.mode,
            allow_stacking: self.allow_stacking,
            order: self.order.order(),
        };
        let r = Attachment::create_with_wait(&ctx.pin_dir, &self.iface, &c, opts, ctx.wait)
            .with_context(|| format!("attach {}", self.iface))?;
        print_report(ctx.json, &r, &self.config)
    }
}

#[derive(clap::Args)]
pub struct ReloadArgs {
    /// An attached interface.
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Only print what the reload would add, remove and change (`lvs-loader diff`).
    #[arg(long)]
    dry_run: bool,
}

impl ReloadArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        if self.dry_run {
            return super::diff::run(ctx, &self.iface, &self.config);
        }
        let c = config::load(&self.config)?;
        let r = Attachment::open(&ctx.pin_dir, &self.iface)
            .and_then(|a| a.with_lock_wait(ctx.wait).reload(&c))
            .with_context(|| format!("reload {}", self.iface))?;
        print_report(ctx.json, &r, &self.config)
    }
}

/// What `attach` and `reload` print.
fn print_report(json: bool, r: &AttachReport, config: &std::path::Path) -> Result<ExitCode> {
    for note in &r.recovered {
        eprintln!("lvs-loader: note: {note}");
    }
    if let Some(why) = &r.order_problem {
        eprintln!(
            "lvs-loader: warning: {}: not {} on its hook: {why}",
            r.interface, r.order
        );
    }
    if json {
        print_json(r)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) = &r.rehook_reason {
        println!("{}: re-hooked: {why}", r.interface);
    }
    println!(
        "{}: {} ({}, prog id {}): {} VIP(s), {} peer(s) [+{} -{} ={}], config {} sha256:{}",
        r.interface,
        r.action.as_str(),
        r.mode,
        r.program_id.map_or("?".into(), |i| i.to_string()),
        r.vips,
        r.peers,
        r.added,
        r.removed,
        r.kept,
        text::escape_path(config),
        r.config_digest.get(..12).unwrap_or("-")
    );
    Ok(ExitCode::SUCCESS)
}

//! `lvs-loader diff IFACE --config FILE` (also `reload IFACE --config FILE --dry-run`):
//! what a reload would add, remove and change against the live maps.

use std::{path::Path, process::ExitCode};

use anyhow::{Context as _, Result};
use lvs_loader::{Attachment, IfName, config, diff::Diff, ifname, text};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// An attached interface.
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    #[arg(long, short, value_name = "FILE")]
    config: std::path::PathBuf,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        run(ctx, &self.iface, &self.config)
    }
}

/// Prints the diff of IFACE's live maps against FILE (exit 0 whatever it is).
pub fn run(ctx: &Ctx, iface: &IfName, path: &Path) -> Result<ExitCode> {
    let c = config::load(path)?;
    let d = Attachment::open(&ctx.pin_dir, iface)
        .and_then(|a| a.diff(&c))
        .with_context(|| format!("diff {iface}"))?;
    if ctx.json {
        print_json(&d)?;
    } else {
        print_text(&d, path);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(d: &Diff, path: &Path) {
    let short = |h: &str| h.get(..12).unwrap_or("-").to_owned();
    println!(
        "{}: live sha256:{}{} -> {} sha256:{}: {}",
        d.interface,
        short(&d.live_digest),
        d.live_config
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        text::escape_path(path),
        short(&d.config_digest),
        if d.is_empty() {
            format!("no change ({} VIP(s) unchanged)", d.unchanged)
        } else {
            format!(
                "+{} -{} ~{} ={} VIP(s), peers +{} -{}",
                d.added.len(),
                d.removed.len(),
                d.changed.len(),
                d.unchanged,
                d.peers_added.len(),
                d.peers_removed.len()
            )
        }
    );
    if let Some(to) = d.resize_to {
        println!(
            "capacity {} -> {to} VIP slots: the reload swaps in a new program and map set (counters carried over)",
            d.capacity
        );
    }
    for p in &d.peers_added {
        println!("+ peer {p}");
    }
    for p in &d.peers_removed {
        println!("- peer {p}");
    }
    for e in &d.added {
        println!(
            "+ vip  {:<40} mark {:#x}  ({})",
            e.endpoint,
            e.mark,
            text::escape(&e.name)
        );
    }
    for e in &d.removed {
        println!(
            "- vip  {:<40} mark {:#x}  ({})",
            e.endpoint,
            e.mark,
            text::escape(&e.name)
        );
    }
    for c in &d.changed {
        let mut what = Vec::new();
        if c.live.mark != c.config.mark {
            what.push(format!("mark {:#x} -> {:#x}", c.live.mark, c.config.mark));
        }
        if c.live.mask != c.config.mask {
            what.push(format!(
                "mark_mask {:#x} -> {:#x}",
                c.live.mask, c.config.mask
            ));
        }
        if c.live.name != c.config.name {
            what.push(format!(
                "name {} -> {}",
                text::escape(&c.live.name),
                text::escape(&c.config.name)
            ));
        }
        println!("~ vip  {:<40} {}", c.endpoint, what.join(", "));
    }
}

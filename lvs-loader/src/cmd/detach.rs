//! `lvs-loader detach IFACE` and `lvs-loader detach --orphans`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use lvs_loader::{Attachment, DetachReport, IfName, elsewhere, ifname, text};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// The interface (in this network namespace, or --netns's).
    #[arg(value_parser = ifname::parse_arg, required_unless_present = "orphans")]
    iface: Option<IfName>,
    /// Free every attachment whose network namespace no longer exists (see `status`).
    #[arg(long, conflicts_with = "iface")]
    orphans: bool,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let reports = match &self.iface {
            Some(iface) => vec![
                Attachment::here(&ctx.pin_dir, iface)
                    .and_then(|a| a.with_lock_wait(ctx.wait).detach())
                    .with_context(|| format!("detach {iface}"))?,
            ],
            None => {
                elsewhere::detach_orphans(&ctx.pin_dir, ctx.wait).context("detach --orphans")?
            }
        };
        for r in &reports {
            for note in &r.recovered {
                eprintln!("lvs-loader: note: {note}");
            }
        }
        if ctx.json {
            if self.orphans {
                print_json(&reports)?;
            } else if let Some(r) = reports.first() {
                print_json(r)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        if self.orphans && reports.is_empty() {
            println!("no orphaned attachments");
        }
        for r in &reports {
            print_one(r);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_one(r: &DetachReport) {
    println!(
        "{}: detached ({}){}, removed {}",
        r.interface,
        r.mode.map_or("-", |m| m.as_str()),
        r.netns
            .as_ref()
            .map(|n| format!(" from network namespace {n}"))
            .unwrap_or_default(),
        text::escape_path(&r.pin_dir)
    );
}

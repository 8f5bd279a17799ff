//! `lvs-loader status`: every attachment under the pin root, in every namespace.

use anyhow::{Context as _, Result};
use lvs_loader::ops;

use super::{Ctx, format_time, print_json};

#[derive(clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let entries = ops::status(&ctx.pin_dir).context("status")?;
        if ctx.json {
            return print_json(&entries);
        }
        if entries.is_empty() {
            println!(
                "no interface attached (pins under {})",
                ctx.pin_dir.display()
            );
            return Ok(());
        }
        println!(
            "{:<16} {:<8} {:<14} {:>8} {:>7} {:>6}  {:<14} {:<20} CONFIG",
            "INTERFACE", "MODE", "STATE", "PROG_ID", "VIPS", "PEERS", "SHA256", "ATTACHED"
        );
        for e in entries {
            println!(
                "{:<16} {:<8} {:<14} {:>8} {:>7} {:>6}  {:<14} {:<20} {}",
                if e.current_netns {
                    e.interface.clone()
                } else {
                    format!("{}@ns{}", e.interface, e.netns_inode)
                },
                e.mode,
                e.state,
                e.program_id.map_or("-".into(), |i| i.to_string()),
                e.vips,
                e.peers,
                e.config_digest.get(..12).unwrap_or("-"),
                format_time(e.attached_at),
                e.config_path
            );
        }
        Ok(())
    }
}

//! `lvs-loader check --config FILE`: validate only, print what would be installed.
//!
//! A config with problems is an error (exit 1): every problem is listed, as text on
//! stderr or, with `--json`, as `{"error", "problems": [...]}` on stdout (`report.rs`).

use std::{
    io::{BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result};
use lvs_loader::{
    config::{self, format_mac},
    text,
};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Cross-check against keepalived's configuration (see `check_keepalived.rs`).
    #[command(flatten)]
    keepalived: super::check_keepalived::KeepalivedArgs,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let c = config::load(&self.config)?;
        if self.keepalived.wanted() {
            return self.keepalived.run(&self.config, &c, ctx);
        }
        let file = text::escape_path(&self.config);
        if ctx.json {
            // One entry per VIP map entry: a port list or range gives one per port.
            let vips: Vec<_> = c
                .vips
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "name": v.display_name(),
                        "address": v.address.to_string(),
                        "port": v.port,
                        "protocol": v.protocol.as_str(),
                        "mark": v.mark,
                        "mark_mask": v.mark_mask,
                    })
                })
                .collect();
            let peers: Vec<_> = c
                .peers
                .iter()
                .map(|p| serde_json::json!({"mac": format_mac(&p.mac), "name": p.name}))
                .collect();
            let out = text::to_json_pretty(&serde_json::json!({
                "config": file,
                "valid": true,
                "digest": c.digest_hex(),
                "peers": peers,
                "vips": vips,
            }))
            .context("writing JSON")?;
            println!("{out}");
            return Ok(());
        }
        // Names are validated printable (no controls, no bidi or invisible characters).
        // One write per buffer, not per line (131,072 VIPs are 131,072 lines).
        let mut out = BufWriter::new(std::io::stdout().lock());
        writeln!(
            out,
            "{file}: OK: {} VIP(s), {} peer(s)",
            c.vips.len(),
            c.peers.len()
        )?;
        for p in &c.peers {
            writeln!(
                out,
                "  peer {}{}",
                format_mac(&p.mac),
                p.name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            )?;
        }
        for v in &c.vips {
            // `0x3`, or `0x3/0xff` with a partial mask (iptables' --set-xmark notation).
            let mask = if v.mark_mask == u32::MAX {
                String::new()
            } else {
                format!("/{:#x}", v.mark_mask)
            };
            writeln!(
                out,
                "  vip  {:<40} mark {:#x}{mask}{}",
                config::format_endpoint(v.address, v.port, v.protocol),
                v.mark,
                v.name
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            )?;
        }
        out.flush()?;
        Ok(())
    }
}

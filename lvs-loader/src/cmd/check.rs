//! `lvs-loader check --config FILE`: validate only, print what would be installed.

use std::path::PathBuf;

use anyhow::Result;
use lvs_loader::config::{self, format_mac};

use super::{Ctx, print_json};

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
        if ctx.json {
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
                    })
                })
                .collect();
            let peers: Vec<_> = c
                .peers
                .iter()
                .map(|p| serde_json::json!({"mac": format_mac(&p.mac), "name": p.name}))
                .collect();
            return print_json(&serde_json::json!({
                "config": self.config.display().to_string(),
                "valid": true,
                "digest": c.digest_hex(),
                "peers": peers,
                "vips": vips,
            }));
        }
        println!(
            "{}: OK: {} VIP(s), {} peer(s)",
            self.config.display(),
            c.vips.len(),
            c.peers.len()
        );
        for p in &c.peers {
            println!(
                "  peer {}{}",
                format_mac(&p.mac),
                p.name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for v in &c.vips {
            println!(
                "  vip  {:<40} mark {:#x}{}",
                config::format_endpoint(v.address, v.port, v.protocol),
                v.mark,
                v.name
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

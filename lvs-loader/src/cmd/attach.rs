//! `lvs-loader attach IFACE --config FILE` and `lvs-loader reload IFACE --config FILE`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use lvs_loader::{
    config,
    ops::{self, Mode},
};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct AttachArgs {
    iface: String,
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
}

impl AttachArgs {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let c = config::load(&self.config)?;
        let r = ops::attach(&ctx.pin_dir, &self.iface, &c, self.mode)
            .with_context(|| format!("attach {}", self.iface))?;
        print_report(ctx.json, &r, &self.config)
    }
}

#[derive(clap::Args)]
pub struct ReloadArgs {
    iface: String,
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

impl ReloadArgs {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let c = config::load(&self.config)?;
        let r = ops::reload(&ctx.pin_dir, &self.iface, &c)
            .with_context(|| format!("reload {}", self.iface))?;
        print_report(ctx.json, &r, &self.config)
    }
}

/// What `attach` and `reload` print.
fn print_report(json: bool, r: &ops::AttachReport, config: &Path) -> Result<()> {
    if json {
        return print_json(r);
    }
    println!(
        "{}: {} ({}, prog id {}): {} VIP(s), {} peer(s) [+{} -{} ={}], config {} sha256:{}",
        r.interface,
        r.action,
        r.mode,
        r.program_id.map_or("?".into(), |i| i.to_string()),
        r.vips,
        r.peers,
        r.added,
        r.removed,
        r.kept,
        config.display(),
        r.config_digest.get(..12).unwrap_or("-")
    );
    Ok(())
}

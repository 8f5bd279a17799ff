//! `lvs-loader detach IFACE`.

use anyhow::{Context as _, Result};
use lvs_loader::ops;

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    iface: String,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let r = ops::detach(&ctx.pin_dir, &self.iface)
            .with_context(|| format!("detach {}", self.iface))?;
        if ctx.json {
            return print_json(&r);
        }
        println!(
            "{}: detached ({}), removed {}",
            r.interface,
            r.mode,
            r.pin_dir.display()
        );
        Ok(())
    }
}

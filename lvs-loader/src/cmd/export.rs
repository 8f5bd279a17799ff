//! `lvs-loader export --iptables [--config FILE]`: the rollback path.

use std::path::PathBuf;

use anyhow::Result;
use lvs_loader::{config, export};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print iptables-restore / ip6tables-restore input (the only format so far).
    #[arg(long, required = true)]
    iptables: bool,
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "/etc/lvs-ebpf/vips.toml"
    )]
    config: PathBuf,
    /// Only this family's part (`ip6tables-restore` takes IPv6 only).
    #[arg(long, value_enum)]
    family: Option<export::FamilyArg>,
}

impl Args {
    pub fn run(self, _ctx: &Ctx) -> Result<()> {
        let _ = self.iptables;
        let c = config::load(&self.config)?;
        print!(
            "{}",
            export::iptables_restore(&c, self.family.map(Into::into))
        );
        Ok(())
    }
}

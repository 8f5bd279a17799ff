//! `lvs-loader completions SHELL` (hidden): the shell completion script for bash, zsh,
//! fish, elvish or powershell on stdout, generated from this binary's own command-line
//! definition (clap_complete). `cargo xtask package` runs it on the binary it packages.

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use super::Ctx;
use crate::Cli;

#[derive(clap::Args)]
pub struct Args {
    /// Shell to generate the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lvs-loader", &mut buf);
    buf
}

impl Args {
    pub fn run(self, _ctx: &Ctx) -> Result<()> {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(&script(self.shell))
            .context("writing the completion script")
    }
}

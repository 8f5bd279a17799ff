//! One file per subcommand (`lvs-loader <command>`), and what they share: the global
//! options and the output helpers.

pub mod attach;
pub mod check;
pub mod detach;
pub mod stats;
pub mod status;

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};

/// What every subcommand gets from the global options.
pub struct Ctx {
    /// Root of the pins (`--pin-dir`).
    pub pin_dir: PathBuf,
    /// `--json`.
    pub json: bool,
    /// `--wait`: how long to wait for another lvs-loader on the same interface.
    pub wait: Duration,
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out).context("writing JSON")?;
    Ok(())
}

pub use lvs_loader::text::format_time;

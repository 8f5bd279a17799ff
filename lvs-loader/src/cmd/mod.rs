//! One file per subcommand (`lvs-loader <command>`), and what they share: the global
//! options and the output helpers.

pub mod attach;
pub mod check;
pub mod check_keepalived;
pub mod completions;
pub mod daemon;
pub mod detach;
pub mod diff;
pub mod explain;
pub mod export;
pub mod import;
pub mod man;
pub mod stats;
pub mod status;
pub mod trace;

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

/// Pretty JSON on stdout, with every character unsafe for a terminal as a `\uXXXX`
/// escape (the same value to a parser).
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = lvs_loader::text::to_json_pretty(v).context("formatting JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").context("writing JSON")?;
    Ok(())
}

pub use lvs_loader::text::format_time;

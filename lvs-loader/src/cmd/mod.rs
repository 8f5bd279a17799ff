//! One file per subcommand (`lvs-loader <command>`), and what they share: the global
//! options and the output helpers.

pub mod attach;
pub mod check;
pub mod completions;
pub mod detach;
pub mod man;
pub mod stats;
pub mod status;

use std::{io::Write as _, path::PathBuf};

use anyhow::{Context as _, Result};

/// What every subcommand gets from the global options.
pub struct Ctx {
    /// Root of the pins (`--pin-dir`).
    pub pin_dir: PathBuf,
    /// `--json`.
    pub json: bool,
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out).context("writing JSON")?;
    Ok(())
}

/// `2026-11-26T14:45:04Z` (UTC); `-` for 0.
pub fn format_time(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    // UTC, without pulling in a date crate.
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_are_utc_iso8601() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1), "1970-01-01T00:00:01Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_795_704_304), "2026-11-26T14:45:04Z");
    }
}

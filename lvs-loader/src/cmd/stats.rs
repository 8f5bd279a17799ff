//! `lvs-loader stats IFACE [--json | --prometheus [--output FILE]]`.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use lvs_loader::{Attachment, IfName, daemon::metrics, ifname, text};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// An attached interface.
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    /// Prometheus text exposition format (for node_exporter's textfile collector).
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
    /// With --prometheus: write FILE atomically (a temporary file in the same directory,
    /// fsync, rename) instead of standard output, for node_exporter's textfile collector.
    #[arg(long, short, value_name = "FILE", requires = "prometheus")]
    output: Option<PathBuf>,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let s = Attachment::open(&ctx.pin_dir, &self.iface)
            .and_then(|a| a.stats())
            .with_context(|| format!("stats {}", self.iface))?;
        if ctx.json {
            print_json(&s)?;
            return Ok(ExitCode::SUCCESS);
        }
        if self.prometheus {
            let text = metrics::stats_text(std::slice::from_ref(&s));
            match &self.output {
                Some(path) => write_atomically(path, text.as_bytes())
                    .with_context(|| format!("writing {}", text::escape_path(path)))?,
                None => print!("{text}"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{}: {} VIP(s), peers {}",
            s.interface,
            s.vips.len(),
            s.peers.join(" ")
        );
        println!(
            "{:<24} {:<32} {:>10} {:>12} {:>14} {:>12} {:>14} {:>14}",
            "NAME",
            "VIP",
            "MARK",
            "MARKED_PKTS",
            "MARKED_BYTES",
            "PEER_PKTS",
            "PEER_BYTES",
            "ALREADY_MARKED"
        );
        for v in &s.vips {
            // `0x3`, or `0x3/0xff` with a partial mask (iptables' --set-xmark notation).
            let mark = if v.mark_mask == u32::MAX {
                format!("{:#x}", v.mark)
            } else {
                format!("{:#x}/{:#x}", v.mark, v.mark_mask)
            };
            println!(
                "{:<24} {:<32} {:>10} {:>12} {:>14} {:>12} {:>14} {:>14}",
                text::escape(&v.name),
                v.endpoint(),
                mark,
                v.marked_packets,
                v.marked_bytes,
                v.peer_packets,
                v.peer_bytes,
                v.already_marked
            );
        }
        let t: Vec<String> = s.totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("totals: {}", t.join(" "));
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes `path` so that a reader sees the old file or the new one, never a part: a
/// temporary file next to it (same filesystem), fsync, rename over, fsync the directory.
/// The temporary name starts with `.` so node_exporter (`*.prom`) never reads it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

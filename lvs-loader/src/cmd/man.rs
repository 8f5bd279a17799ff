//! `lvs-loader man [COMMAND] [--out-dir DIR]` (hidden): manual pages generated from this
//! binary's own command-line definition (clap_mangen), so they can't drift from it.
//! `cargo xtask package` runs it on the binary it packages.
//!
//! Section 8 (system administration): the package installs the binary in /usr/sbin.

use std::{io::Write as _, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;
use clap_mangen::{
    Man,
    roff::{Roff, bold, roman},
};

use lvs_loader::text;

use super::Ctx;
use crate::Cli;

/// Manual section of every page.
pub const SECTION: &str = "8";

#[derive(clap::Args)]
pub struct Args {
    /// Print the page of this subcommand (lvs-loader-COMMAND(8)) instead of lvs-loader(8).
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
    /// Write lvs-loader.8 and one lvs-loader-COMMAND.8 per subcommand into DIR (which
    /// must exist) and print their paths.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    out_dir: Option<PathBuf>,
}

/// Every page: `(file name, roff text)`, lvs-loader(8) first, then one per visible
/// subcommand in definition order.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let names: Vec<String> = visible_subcommands(&cmd);
    let mut out = vec![(
        format!("lvs-loader.{SECTION}"),
        render(cmd.clone(), None, &names)?,
    )];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_owned();
        out.push((
            format!("lvs-loader-{name}.{SECTION}"),
            render(sub.clone(), Some(&name), &names)?,
        ));
    }
    Ok(out)
}

fn visible_subcommands(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// clap_mangen's page plus FILES and SEE ALSO sections.
fn render(cmd: clap::Command, sub: Option<&str>, all: &[String]) -> Result<Vec<u8>> {
    let man = Man::new(cmd)
        .section(SECTION)
        .source(format!("lvs-loader {}", env!("CARGO_PKG_VERSION")))
        .manual("lvs-ebpf");
    let mut buf = Vec::new();
    man.render(&mut buf).context("rendering the manual page")?;

    let mut roff = Roff::default();
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/lvs-ebpf/vips.toml",
            "VIPs, ports, protocols, marks and peer director MACs (see vips.toml.example beside it).",
        ),
        (
            "/sys/fs/bpf/lvs-ebpf/",
            "Pins of every attachment, one directory per network namespace and interface: program, TCX link, maps (default --pin-dir).",
        ),
        (
            "/run/lvs-ebpf/locks/",
            "One lock per attachment: attach, reload and detach of an interface are serialized.",
        ),
        (
            "/usr/lib/systemd/system/lvs-ebpf@.service",
            "One oneshot unit per interface: systemctl enable --now lvs-ebpf@eth0.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = Vec::new();
    if sub.is_some() {
        refs.push(format!("lvs-loader({SECTION})"));
    }
    refs.extend(
        all.iter()
            .filter(|n| Some(n.as_str()) != sub)
            .map(|n| format!("lvs-loader-{n}({SECTION})")),
    );
    refs.extend(["keepalived(8)", "ipvsadm(8)", "tc-bpf(8)", "bpftool(8)"].map(String::from));
    roff.text([roman(refs.join(", "))]);
    // Without a second copy of the apostrophe preamble (`.ie \n(.g .ds Aq ...`): the
    // page's own, at its top, already defines the string.
    let extra = roff.render();
    for line in extra
        .lines()
        .skip_while(|l| l.starts_with(".ie \\n(.g") || l.starts_with(".el .ds Aq"))
    {
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    Ok(buf)
}

impl Args {
    pub fn run(self, _ctx: &Ctx) -> Result<()> {
        let pages = pages()?;
        if let Some(dir) = &self.out_dir {
            for (name, text) in &pages {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", text::escape_path(&path)))?;
                println!("{}", text::escape_path(&path));
            }
            return Ok(());
        }
        let wanted = match &self.command {
            None => format!("lvs-loader.{SECTION}"),
            Some(c) => format!("lvs-loader-{c}.{SECTION}"),
        };
        let Some((_, text)) = pages.iter().find(|(n, _)| *n == wanted) else {
            let known: Vec<_> = pages
                .iter()
                .skip(1)
                .map(|(n, _)| {
                    n.trim_start_matches("lvs-loader-")
                        .trim_end_matches(&format!(".{SECTION}"))
                        .to_owned()
                })
                .collect();
            bail!(
                "no manual page for \"{}\": the subcommands are {}",
                text::excerpt(
                    self.command.as_deref().unwrap_or_default(),
                    text::EXCERPT_CHARS
                ),
                known.join(", ")
            );
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text).context("writing the manual page")?;
        Ok(())
    }
}

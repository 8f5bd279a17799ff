//! `lvs-loader import [--from FORMAT] [FILE|-]`: the iptables recipe as a vips.toml.

use std::{io::Read as _, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use lvs_loader::{
    import::{self, Format, Severity},
    text::escape_path,
};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// iptables-save/ip6tables-save output or iptables command lines (`-` or nothing:
    /// standard input).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Input format.
    #[arg(long = "from", value_enum, default_value = "auto")]
    format: Format,
    /// Print what can be translated even when some rules can't (exit 0).
    #[arg(long)]
    partial: bool,
    /// When VIPs exclude different peer MACs, use the union of them as the peer list
    /// (exact as long as each MAC can only reach the VIPs that excluded it).
    #[arg(long)]
    merge_peers: bool,
    /// Print only the config for this interface (rules with `-i`).
    #[arg(long, value_name = "IFACE")]
    iface: Option<String>,
    /// Write one config per interface group into DIR (IFACE.toml, other-interfaces.toml).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Prove it: run the original rules (iptables-legacy in a scratch network namespace)
    /// and the imported config (the eBPF program, BPF_PROG_TEST_RUN) on the same frames
    /// and compare the marks (needs root).
    #[arg(long)]
    verify: bool,
}

impl Args {
    pub fn run(self, _ctx: &Ctx) -> Result<()> {
        let (text, name) = match &self.file {
            None => (read_stdin()?, "<stdin>".to_owned()),
            Some(p) if p.as_os_str() == "-" => (read_stdin()?, "<stdin>".to_owned()),
            Some(p) => {
                let bytes =
                    std::fs::read(p).with_context(|| format!("reading {}", escape_path(p)))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", escape_path(p)))?;
                (text, escape_path(p))
            }
        };
        let r = import::import(
            &text,
            &import::Options {
                format: self.format,
                merge_peers: self.merge_peers,
                source_name: name.clone(),
            },
        );
        for p in &r.problems {
            eprintln!("{}", p.render(&name));
        }
        let errors = r
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let mut configs = r.configs.clone();
        if let Some(want) = &self.iface {
            configs.retain(|c| {
                c.ifaces.iter().any(|i| i == want)
                    || c.ifaces.iter().any(String::is_empty) && !r.ifaces.contains(want)
            });
            if configs.is_empty() {
                bail!(
                    "no config for interface {}: the rules mark nothing arriving there",
                    lvs_loader::text::escape(want)
                );
            }
        }
        if errors > 0 && !self.partial {
            bail!(
                "{errors} rule problem(s) can't be translated exactly (listed above); fix them, or use --partial to get the rest"
            );
        }
        let label = |c: &import::Imported| -> String {
            c.ifaces
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        "*".to_owned()
                    } else {
                        i.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(dir) = &self.out_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {}", escape_path(dir)))?;
            for c in &configs {
                for iface in &c.ifaces {
                    let file = if iface.is_empty() {
                        "other-interfaces.toml".to_owned()
                    } else {
                        lvs_loader::ifname::IfName::new(iface.as_bytes())
                            .map_err(|e| anyhow::anyhow!("interface name in the rules: {e}"))?;
                        format!("{iface}.toml")
                    };
                    let path = dir.join(file);
                    std::fs::write(&path, &c.toml)
                        .with_context(|| format!("writing {}", escape_path(&path)))?;
                    eprintln!(
                        "wrote {} ({} VIP(s), {} peer(s))",
                        escape_path(&path),
                        c.config.vips.len(),
                        c.config.peers.len()
                    );
                }
            }
        } else if configs.len() > 1 {
            let groups: Vec<String> = configs.iter().map(label).collect();
            bail!(
                "the rules give different configs per interface ({}): pick one with --iface IFACE or write them all with --out-dir DIR",
                groups.join(" | ")
            );
        } else if let Some(c) = configs.first() {
            print!("{}", c.toml);
        }
        if self.verify {
            let report = import::verify::verify_iface(&r, &configs, self.iface.as_deref())
                .context("--verify")?;
            eprint!("{}", report.render());
            if !report.all_alike() {
                bail!(
                    "--verify: the imported config does not mark like the rules (differences above)"
                );
            }
        }
        Ok(())
    }
}

fn read_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading standard input")?;
    Ok(s)
}

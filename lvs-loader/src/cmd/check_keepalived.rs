//! `lvs-loader check --config vips.toml --keepalived keepalived.conf [--peer-config
//! dr2-vips.toml] [--suggest]`: the marks against keepalived, and the two directors'
//! configs against each other. Exit 1 on any problem.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use lvs_loader::{
    config::{self, Config},
    keepalived::{
        check::{self, Level},
        parse,
    },
    text::escape_path,
};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct KeepalivedArgs {
    /// keepalived's configuration (includes are followed like keepalived does).
    #[arg(long, value_name = "FILE")]
    keepalived: Option<PathBuf>,
    /// The other director's vips.toml: its peers must be this host's MACs, and no MAC
    /// may be a peer in both.
    #[arg(long, value_name = "FILE")]
    peer_config: Option<PathBuf>,
    /// Print keepalived blocks for the missing fwmark services.
    #[arg(long, requires = "keepalived")]
    suggest: bool,
    /// keepalived's config id for `@ID` lines (keepalived -i; default: the host name up
    /// to the first dot, as keepalived).
    #[arg(long, value_name = "ID", requires = "keepalived")]
    config_id: Option<String>,
}

impl KeepalivedArgs {
    pub fn wanted(&self) -> bool {
        self.keepalived.is_some() || self.peer_config.is_some()
    }

    pub fn run(self, path: &Path, c: &Config, ctx: &Ctx) -> Result<()> {
        let peer = match &self.peer_config {
            Some(p) => Some(config::load(p)?),
            None => None,
        };
        let conf = match &self.keepalived {
            Some(k) => {
                if !k.is_file() {
                    bail!("{}: no such file", escape_path(k));
                }
                Some(parse::parse_file(
                    k,
                    self.config_id.clone().or_else(parse::default_config_id),
                ))
            }
            None => None,
        };
        let report = check::check(c, conf.as_ref(), peer.as_ref(), &check::local_macs());
        let files: Vec<String> = conf
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.display().to_string()))
            .collect();
        let problems = report
            .findings
            .iter()
            .filter(|f| f.level == Level::Problem)
            .count();
        let warnings = report.findings.len() - problems;
        if ctx.json {
            let items: Vec<_> = report
                .findings
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "level": if f.level == Level::Problem { "problem" } else { "warning" },
                        "file": f.loc.as_ref().map(|l| l.file.display().to_string()),
                        "line": f.loc.as_ref().map(|l| l.line),
                        "message": f.message,
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "config": path.display().to_string(),
                "keepalived": self.keepalived.as_ref().map(|k| k.display().to_string()),
                "files": files,
                "findings": items,
                "suggestions": report.suggestions,
            }))?;
        } else {
            let cfg = escape_path(path);
            for f in &report.findings {
                let level = if f.level == Level::Problem {
                    "problem"
                } else {
                    "warning"
                };
                match &f.loc {
                    Some(l) => println!("{l}: {level}: {}", f.message),
                    None => println!("{cfg}: {level}: {}", f.message),
                }
            }
            if self.suggest && !report.suggestions.is_empty() {
                println!(
                    "\n# keepalived.conf blocks for the missing services (fill in the real servers):\n"
                );
                print!("{}", report.suggestions);
            }
            println!(
                "{cfg}: {} VIP(s), {} peer(s); keepalived: {} file(s) read; {problems} problem(s), {warnings} warning(s)",
                c.vips.len(),
                c.peers.len(),
                files.len()
            );
        }
        if problems > 0 {
            bail!(
                "{problems} problem(s) between {} and keepalived/the peer config (listed above)",
                escape_path(path)
            );
        }
        Ok(())
    }
}

//! `lvs-loader status`: every attachment under the pin root, in every namespace. Exits 1
//! unless every attachment is `ok`, so scripts (and keepalived) can rely on it.
//! `status --check [IFACE...]`: the stricter health keepalived tracks (see `health`).

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use lvs_loader::{
    IfName,
    health::{self, Expect},
    hook::HookPosition,
    ifname, status, text,
};

use super::{Ctx, format_time, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// Health check: exit 0 only when every named interface (or, with none, every
    /// attachment) has its program on the hook of the interface of that name, in its
    /// namespace, first on the hook (unless attached with --position last or
    /// --priority), marking with the config it was applied from, unchanged on disk
    /// since; else exit 1 with one line per problem. For keepalived's vrrp_script.
    #[arg(long)]
    check: bool,
    /// With --check: the interfaces to check (in this network namespace).
    #[arg(value_parser = ifname::parse_arg, requires = "check", value_name = "IFACE")]
    ifaces: Vec<IfName>,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        if self.check {
            return check(ctx, &self.ifaces);
        }
        let entries = status::list(&ctx.pin_dir).context("status")?;
        let code = if entries.iter().all(|e| e.is_ok()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
        if ctx.json {
            print_json(&entries)?;
            return Ok(code);
        }
        if entries.is_empty() {
            println!(
                "no interface attached (pins under {})",
                text::escape_path(&ctx.pin_dir)
            );
            return Ok(code);
        }
        println!(
            "{:<16} {:<8} {:<19} {:>8} {:>7} {:>6}  {:<14} {:<20} CONFIG",
            "INTERFACE", "MODE", "STATE", "PROG_ID", "VIPS", "PEERS", "SHA256", "ATTACHED"
        );
        for e in &entries {
            let name = if e.current_netns {
                e.interface.to_string()
            } else {
                format!(
                    "{}@{}",
                    e.interface,
                    e.netns
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("ns{}", e.netns.inode))
                )
            };
            println!(
                "{:<16} {:<8} {:<19} {:>8} {:>7} {:>6}  {:<14} {:<20} {}",
                name,
                e.mode.map_or("-", |m| m.as_str()),
                e.state.as_str(),
                e.program_id.map_or("-".into(), |i| i.to_string()),
                e.vips,
                e.peers,
                e.config_digest.get(..12).unwrap_or("-"),
                format_time(e.attached_at),
                e.config_path.as_deref().unwrap_or("-")
            );
            if let Some(d) = &e.detail {
                println!("    {d}");
            }
            if e.hooks.len() > 1 {
                let hooks: Vec<String> = e
                    .hooks
                    .iter()
                    .map(|h| {
                        let this = if h.prog_id == e.program_id && h.prog_id.is_some() {
                            " (this)"
                        } else {
                            ""
                        };
                        let id = h.prog_id.map_or("-".into(), |i| i.to_string());
                        match &h.position {
                            HookPosition::Tcx => format!("tcx prog {id} {}{this}", h.name),
                            HookPosition::Filter { priority, kind, .. } => {
                                format!("filter pref {priority} {kind} prog {id} {}{this}", h.name)
                            }
                        }
                    })
                    .collect();
                let order = e.order.map(|o| format!(" (wants {o})")).unwrap_or_default();
                println!("    on the hook, in order{order}: {}", hooks.join(", "));
            }
        }
        Ok(code)
    }
}

/// `status --check [IFACE...]`.
fn check(ctx: &Ctx, ifaces: &[IfName]) -> Result<ExitCode> {
    let results = if ifaces.is_empty() {
        health::of_all(&ctx.pin_dir).context("status --check")?
    } else {
        ifaces
            .iter()
            .map(|i| health::of_interface(&ctx.pin_dir, i, &Expect::OnDisk))
            .collect::<lvs_loader::Result<Vec<_>>>()
            .context("status --check")?
    };
    let ok = !results.is_empty() && results.iter().all(|h| h.ok);
    let code = if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if ctx.json {
        print_json(&results)?;
        return Ok(code);
    }
    if results.is_empty() {
        println!(
            "no interface attached (pins under {})",
            text::escape_path(&ctx.pin_dir)
        );
    }
    for h in &results {
        if h.ok {
            println!("{}: ok: {}", h.interface, h.summary);
        }
        for p in &h.problems {
            println!("{}: {}", h.interface, p.message);
        }
    }
    Ok(code)
}

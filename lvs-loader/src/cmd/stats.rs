//! `lvs-loader stats IFACE [--json | --prometheus]`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use lvs_loader::{Attachment, IfName, ifname, stats::Stats, text};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// An attached interface.
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    /// Prometheus text exposition format (for node_exporter's textfile collector).
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
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
            print!("{}", prometheus_text(&s));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{}: {} VIP(s), peers {}",
            s.interface,
            s.vips.len(),
            s.peers.join(" ")
        );
        println!(
            "{:<24} {:<32} {:>10} {:>12} {:>14} {:>12} {:>14}",
            "NAME", "VIP", "MARK", "MARKED_PKTS", "MARKED_BYTES", "PEER_PKTS", "PEER_BYTES"
        );
        for v in &s.vips {
            println!(
                "{:<24} {:<32} {:>10} {:>12} {:>14} {:>12} {:>14}",
                text::escape(&v.name),
                v.endpoint(),
                format!("{:#x}", v.mark),
                v.marked_packets,
                v.marked_bytes,
                v.peer_packets,
                v.peer_bytes
            );
        }
        let t: Vec<String> = s.totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("totals: {}", t.join(" "));
        Ok(ExitCode::SUCCESS)
    }
}

/// A Prometheus label value: escaped for the terminal first (no control characters),
/// then backslash and quote as the exposition format wants.
fn label(v: &str) -> String {
    text::escape(v).replace('\\', "\\\\").replace('"', "\\\"")
}

fn prometheus_text(s: &Stats) -> String {
    use lvs_loader::stats::VipStats;
    let mut out = String::new();
    for (metric, help, get) in [
        (
            "lvs_ebpf_vip_marked_packets_total",
            "Packets to the VIP from non-peer MACs, marked",
            (|v: &VipStats| v.marked_packets) as fn(&VipStats) -> u64,
        ),
        (
            "lvs_ebpf_vip_marked_bytes_total",
            "Bytes (L2) of marked packets",
            |v| v.marked_bytes,
        ),
        (
            "lvs_ebpf_vip_peer_packets_total",
            "Packets to the VIP from a peer director, left unmarked",
            |v| v.peer_packets,
        ),
        (
            "lvs_ebpf_vip_peer_bytes_total",
            "Bytes (L2) of peer packets",
            |v| v.peer_bytes,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {metric} {help}\n# TYPE {metric} counter\n"
        ));
        for v in &s.vips {
            out.push_str(&format!(
                "{metric}{{interface=\"{}\",vip=\"{}\",address=\"{}\",port=\"{}\",protocol=\"{}\",mark=\"{:#x}\"}} {}\n",
                label(&s.interface),
                label(&v.name),
                v.address,
                v.port.map_or("any".into(), |p| p.to_string()),
                v.protocol,
                v.mark,
                get(v)
            ));
        }
    }
    out.push_str("# HELP lvs_ebpf_packets_total Global datapath counters by kind\n# TYPE lvs_ebpf_packets_total counter\n");
    for (k, v) in &s.totals {
        if k.ends_with("_bytes") || k.ends_with("_packets") {
            continue;
        }
        out.push_str(&format!(
            "lvs_ebpf_packets_total{{interface=\"{}\",kind=\"{k}\"}} {v}\n",
            label(&s.interface)
        ));
    }
    out
}

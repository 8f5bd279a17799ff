//! `lvs-loader stats IFACE [--json | --prometheus]`.

use anyhow::{Context as _, Result};
use lvs_loader::{config, ops};

use super::{Ctx, print_json};

#[derive(clap::Args)]
pub struct Args {
    iface: String,
    /// Prometheus text exposition format (for node_exporter's textfile collector).
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let s = ops::stats(&ctx.pin_dir, &self.iface)
            .with_context(|| format!("stats {}", self.iface))?;
        if ctx.json {
            return print_json(&s);
        }
        if self.prometheus {
            print!("{}", prometheus_text(&s));
            return Ok(());
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
            let proto = v
                .protocol
                .parse::<config::Protocol>()
                .unwrap_or(config::Protocol::Tcp);
            let addr = v
                .address
                .parse()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            println!(
                "{:<24} {:<32} {:>10} {:>12} {:>14} {:>12} {:>14}",
                v.name,
                config::format_endpoint(addr, v.port, proto),
                format!("{:#x}", v.mark),
                v.marked_packets,
                v.marked_bytes,
                v.peer_packets,
                v.peer_bytes
            );
        }
        let t: Vec<String> = s.totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("totals: {}", t.join(" "));
        Ok(())
    }
}

fn prometheus_text(s: &ops::Stats) -> String {
    let mut out = String::new();
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    for (metric, help, get) in [
        (
            "lvs_ebpf_vip_marked_packets_total",
            "Packets to the VIP from non-peer MACs, marked",
            (|v: &ops::VipStats| v.marked_packets) as fn(&ops::VipStats) -> u64,
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
                esc(&s.interface),
                esc(&v.name),
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
            esc(&s.interface)
        ));
    }
    out
}

//! `lvs-loader`: attach the lvs-ebpf marker to TC ingress and manage it.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use lvs_loader::{
    config::{self, format_mac},
    ops::{self, DEFAULT_PIN_DIR, Mode},
    sys,
};

#[derive(Parser)]
#[command(
    name = "lvs-loader",
    version,
    about = "Mark LVS VIP traffic from non-peer MACs with a TC-ingress eBPF program (replaces the iptables MAC/MARK recipe)",
    after_help = "Examples:\n  sudo lvs-loader attach eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader stats eth0\n  sudo lvs-loader reload eth0 --config /etc/lvs-ebpf/vips.toml\n  sudo lvs-loader status --json\n  sudo lvs-loader detach eth0"
)]
struct Cli {
    /// Root directory of the pins (on a bpf filesystem).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Run in network namespace NAME (from /run/netns, like `ip -n NAME`) or at a path
    /// such as /proc/PID/ns/net.
    #[arg(long, short = 'n', global = true, value_name = "NAME")]
    netns: Option<String>,
    /// Machine-readable output.
    #[arg(long, short = 'j', global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the program, fill the maps from FILE, attach to IFACE's ingress and pin it all
    /// (the datapath keeps running after lvs-loader exits). On an attached IFACE this is a
    /// reload.
    Attach {
        iface: String,
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        mode: Mode,
    },
    /// Replace the VIPs and peers of an attached IFACE atomically (no packet misses a VIP
    /// present in both configs).
    Reload {
        iface: String,
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove the program from IFACE and every pin lvs-loader made for it.
    Detach { iface: String },
    /// List every attached interface.
    Status,
    /// Per-VIP and global counters of IFACE.
    Stats {
        iface: String,
        /// Prometheus text exposition format (for node_exporter's textfile collector).
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
    /// Validate a config file and print what it would install.
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    // Like any Unix filter: `lvs-loader stats eth0 | head` ends quietly.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Config errors already carry file:line:col; print each cause once.
            let mut msg = format!("lvs-loader: error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path) -> Result<config::Config> {
    // The error already names the file, line, column and field.
    Ok(config::load(path)?)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out).context("writing JSON")?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    if let Some(ns) = &cli.netns {
        sys::enter_netns(ns).with_context(|| format!("entering network namespace {ns}"))?;
    }
    let pin = cli.pin_dir.as_path();
    match cli.command {
        Command::Check { config } => {
            let c = load_config(&config)?;
            if cli.json {
                let vips: Vec<_> = c
                    .vips
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "name": v.display_name(),
                            "address": v.address.to_string(),
                            "port": v.port,
                            "protocol": v.protocol.as_str(),
                            "mark": v.mark,
                        })
                    })
                    .collect();
                let peers: Vec<_> = c
                    .peers
                    .iter()
                    .map(|p| serde_json::json!({"mac": format_mac(&p.mac), "name": p.name}))
                    .collect();
                print_json(&serde_json::json!({
                    "config": config.display().to_string(),
                    "valid": true,
                    "digest": c.digest_hex(),
                    "peers": peers,
                    "vips": vips,
                }))?;
            } else {
                println!(
                    "{}: OK: {} VIP(s), {} peer(s)",
                    config.display(),
                    c.vips.len(),
                    c.peers.len()
                );
                for p in &c.peers {
                    println!(
                        "  peer {}{}",
                        format_mac(&p.mac),
                        p.name
                            .as_ref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    );
                }
                for v in &c.vips {
                    println!(
                        "  vip  {:<40} mark {:#x}{}",
                        config::format_endpoint(v.address, v.port, v.protocol),
                        v.mark,
                        v.name
                            .as_ref()
                            .map(|n| format!("  ({n})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Command::Attach {
            iface,
            config,
            mode,
        } => {
            let c = load_config(&config)?;
            let r =
                ops::attach(pin, &iface, &c, mode).with_context(|| format!("attach {iface}"))?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "{}: {} ({}, prog id {}): {} VIP(s), {} peer(s) [+{} -{} ={}], config {} sha256:{}",
                    r.interface,
                    r.action,
                    r.mode,
                    r.program_id.map_or("?".into(), |i| i.to_string()),
                    r.vips,
                    r.peers,
                    r.added,
                    r.removed,
                    r.kept,
                    config.display(),
                    &r.config_digest[..12]
                );
            }
        }
        Command::Reload { iface, config } => {
            let c = load_config(&config)?;
            let r = ops::reload(pin, &iface, &c).with_context(|| format!("reload {iface}"))?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "{}: reloaded: {} VIP(s), {} peer(s) [+{} -{} ={}], config {} sha256:{}",
                    r.interface,
                    r.vips,
                    r.peers,
                    r.added,
                    r.removed,
                    r.kept,
                    config.display(),
                    &r.config_digest[..12]
                );
            }
        }
        Command::Detach { iface } => {
            let r = ops::detach(pin, &iface).with_context(|| format!("detach {iface}"))?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "{}: detached ({}), removed {}",
                    r.interface,
                    r.mode,
                    r.pin_dir.display()
                );
            }
        }
        Command::Status => {
            let entries = ops::status(pin).context("status")?;
            if cli.json {
                print_json(&entries)?;
            } else if entries.is_empty() {
                println!("no interface attached (pins under {})", pin.display());
            } else {
                println!(
                    "{:<16} {:<8} {:<14} {:>8} {:>7} {:>6}  {:<14} {:<20} CONFIG",
                    "INTERFACE", "MODE", "STATE", "PROG_ID", "VIPS", "PEERS", "SHA256", "ATTACHED"
                );
                for e in entries {
                    println!(
                        "{:<16} {:<8} {:<14} {:>8} {:>7} {:>6}  {:<14} {:<20} {}",
                        if e.current_netns {
                            e.interface.clone()
                        } else {
                            format!("{}@ns{}", e.interface, e.netns_inode)
                        },
                        e.mode,
                        e.state,
                        e.program_id.map_or("-".into(), |i| i.to_string()),
                        e.vips,
                        e.peers,
                        e.config_digest.get(..12).unwrap_or("-"),
                        format_time(e.attached_at),
                        e.config_path
                    );
                }
            }
        }
        Command::Stats { iface, prometheus } => {
            let s = ops::stats(pin, &iface).with_context(|| format!("stats {iface}"))?;
            if cli.json {
                print_json(&s)?;
            } else if prometheus {
                print!("{}", prometheus_text(&s));
            } else {
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
            }
        }
    }
    Ok(())
}

fn format_time(unix: u64) -> String {
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

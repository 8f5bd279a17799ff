//! `lvs-loader explain IFACE (--src-mac MAC --dst ADDR[:PORT][/PROTO] | --frame HEX |
//! --pcap FILE) [--config FILE]`: one line per packet, what the datapath does and why.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use lvs_loader::{
    Attachment, IfName,
    config::{self, Protocol, parse_mac},
    explain::{Explainer, Verdict},
    frames::Frame,
    ifname,
    pcap::{self, Data},
    text,
};
use serde::Serialize;

use super::{Ctx, print_json};

/// Largest `--frame`: an IP packet's largest length plus an Ethernet header.
const MAX_HEX_FRAME: usize = 65_535 + 14;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["dst", "frame", "pcap"])))]
pub struct Args {
    /// An attached interface (its live maps); optional with --config.
    #[arg(value_parser = ifname::parse_arg, required_unless_present = "config")]
    iface: Option<IfName>,
    /// Source MAC of the frame to build (with --dst).
    #[arg(long, value_name = "MAC", requires = "dst", value_parser = mac_arg)]
    src_mac: Option<[u8; 6]>,
    /// Destination of the frame to build: ADDR, ADDR:PORT, [IPV6]:PORT, each optionally
    /// followed by /tcp, /udp or /sctp (default tcp; no port: port 0).
    #[arg(long, value_name = "ADDR[:PORT][/PROTO]", requires = "src_mac", value_parser = dst_arg)]
    dst: Option<Dst>,
    /// A whole Ethernet frame in hex (separators ' ', ':', '-' allowed).
    #[arg(long, value_name = "HEX", value_parser = hex_arg)]
    frame: Option<HexFrame>,
    /// Every packet of a capture (pcap or pcapng, Ethernet or `tcpdump -i any`).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Explain against this config file (private maps) instead of IFACE's live maps.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// A parsed `--dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dst {
    address: IpAddr,
    port: Option<u16>,
    protocol: Protocol,
}

fn mac_arg(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s)
}

fn dst_arg(s: &str) -> Result<Dst, String> {
    let bad = |why: &str| format!("{}: {why}", text::excerpt(s, text::EXCERPT_CHARS));
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((a, p)) => (
            a,
            p.parse::<Protocol>()
                .map_err(|_| bad("the protocol is tcp, udp or sctp"))?,
        ),
        None => (s, Protocol::Tcp),
    };
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port must be 1-65535"))
    };
    let (address, port) = if let Some(r) = rest.strip_prefix('[') {
        let (a, tail) = r
            .split_once(']')
            .ok_or_else(|| bad("expected [IPV6]:PORT"))?;
        let a: Ipv6Addr = a.parse().map_err(|_| bad("not an IPv6 address"))?;
        let p = match tail {
            "" => None,
            t => Some(port(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("expected [IPV6]:PORT"))?,
            )?),
        };
        (IpAddr::V6(a), p)
    } else if let Ok(a) = rest.parse::<Ipv6Addr>() {
        (IpAddr::V6(a), None)
    } else {
        let (a, p) = match rest.split_once(':') {
            Some((a, p)) => (a, Some(port(p)?)),
            None => (rest, None),
        };
        let a: Ipv4Addr = a.parse().map_err(|_| {
            bad("expected ADDR[:PORT][/PROTO], e.g. 172.17.85.56:80/tcp or [2001:db8::1]:443/tcp")
        })?;
        (IpAddr::V4(a), p)
    };
    Ok(Dst {
        address,
        port,
        protocol,
    })
}

/// A `--frame`'s bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexFrame(Vec<u8>);

fn hex_arg(s: &str) -> Result<HexFrame, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let mut digits = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | ':' | '-' | '\n' | '\t' => {}
            c if c.is_ascii_hexdigit() => digits.push(c as u8),
            c => {
                return Err(format!(
                    "{} is not a hex digit",
                    text::escape(c.encode_utf8(&mut [0; 4]))
                ));
            }
        }
    }
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits".into());
    }
    if digits.len() / 2 > MAX_HEX_FRAME {
        return Err(format!(
            "{} bytes: a frame is at most {MAX_HEX_FRAME}",
            digits.len() / 2
        ));
    }
    let nibble = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
    Ok(HexFrame(
        digits
            .chunks(2)
            .map(|c| nibble(c[0]) << 4 | nibble(c[1]))
            .collect(),
    ))
}

impl Dst {
    fn frame(&self, src_mac: [u8; 6]) -> Vec<u8> {
        const SPORT: u16 = 40_000;
        let p = self.protocol.number();
        let dport = self.port.unwrap_or(0);
        match self.address {
            IpAddr::V4(a) => Frame::v4(src_mac, Ipv4Addr::new(192, 0, 2, 1), a, p, SPORT, dport),
            IpAddr::V6(a) => Frame::v6(
                src_mac,
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                a,
                p,
                SPORT,
                dport,
            ),
        }
        .bytes()
    }
}

/// One packet of the output.
#[derive(Serialize)]
struct Line {
    /// Position in the capture (1-based), for --pcap.
    number: Option<usize>,
    /// Capture time (UTC), for --pcap.
    time: Option<String>,
    #[serde(flatten)]
    verdict: Verdict,
}

#[derive(Serialize)]
struct Report {
    interface: Option<String>,
    /// `live` (IFACE's maps) or the config file.
    against: String,
    packets: Vec<Line>,
}

fn format_ns(ns: u64) -> String {
    let t = text::format_time(ns / 1_000_000_000);
    // 2026-11-26T14:45:04Z -> 2026-11-26T14:45:04.123456Z
    match t.strip_suffix('Z') {
        Some(s) => format!("{s}.{:06}Z", ns % 1_000_000_000 / 1000),
        None => t,
    }
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let (mut ex, against) = match (&self.config, &self.iface) {
            (Some(path), _) => {
                let c = config::load(path)?;
                let ex = Explainer::from_config(&c).context("explain")?;
                (ex, text::escape_path(path))
            }
            (None, Some(iface)) => {
                let ex = Attachment::open(&ctx.pin_dir, iface)
                    .and_then(|a| a.explainer())
                    .with_context(|| format!("explain {iface}"))?;
                (ex, "live".to_owned())
            }
            (None, None) => bail!("give an interface or --config FILE"),
        };
        let mut lines = Vec::new();
        if let Some(path) = &self.pcap {
            let packets = pcap::read(path)?;
            for p in packets {
                let verdict = match &p.data {
                    Data::Ethernet(f) => ex.explain(f, Some(p.wire_len as usize))?,
                    Data::Outgoing => {
                        skipped("skipped: sent by this host (TC ingress never sees it)")
                    }
                    Data::NotEthernet(why) => skipped(&format!("skipped: {why}")),
                };
                lines.push(Line {
                    number: Some(p.number),
                    time: (p.time_ns != 0).then(|| format_ns(p.time_ns)),
                    verdict,
                });
            }
        } else {
            let frame = match (&self.frame, &self.dst, self.src_mac) {
                (Some(f), _, _) => f.0.clone(),
                (None, Some(d), Some(mac)) => d.frame(mac),
                _ => bail!(
                    "give --src-mac MAC --dst ADDR[:PORT][/PROTO], --frame HEX or --pcap FILE"
                ),
            };
            let mut verdict = ex.explain(&frame, None)?;
            if let Some(d) = self.dst.as_ref().filter(|d| d.port.is_none()) {
                verdict.note = Some(format!(
                    "no port in --dst: the frame goes to {} port 0, which no exact entry has",
                    d.protocol
                ));
            }
            lines.push(Line {
                number: None,
                time: None,
                verdict,
            });
        }
        if ctx.json {
            print_json(&Report {
                interface: self.iface.as_ref().map(|i| i.to_string()),
                against,
                packets: lines,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut unnamed_peer = false;
        for l in &lines {
            let mut out = String::new();
            if let Some(n) = l.number {
                out.push_str(&format!("#{n} "));
            }
            if let Some(t) = &l.time {
                out.push_str(t);
                out.push(' ');
            }
            let v = &l.verdict;
            out.push_str(&format!("{}: {}", v.packet.describe(), v.message));
            if let Some(n) = &v.note {
                out.push_str(&format!(" [{n}]"));
            }
            unnamed_peer |= v.peer.as_ref().is_some_and(|p| p.name.is_none());
            println!("{}", text::terminal_safe(&out));
        }
        if unnamed_peer && let Some(n) = &ex.names_note {
            eprintln!("lvs-loader: note: {}", text::terminal_safe(n));
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn skipped(message: &str) -> Verdict {
    Verdict {
        verdict: "skipped",
        reason: None,
        mark: None,
        vip: None,
        any_port: false,
        peer: None,
        packet: Default::default(),
        message: message.to_owned(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_forms() {
        let d = |s: &str| dst_arg(s).map(|d| (d.address.to_string(), d.port, d.protocol));
        assert_eq!(
            d("172.17.85.56:80/tcp"),
            Ok(("172.17.85.56".into(), Some(80), Protocol::Tcp))
        );
        assert_eq!(
            d("172.17.85.56/udp"),
            Ok(("172.17.85.56".into(), None, Protocol::Udp))
        );
        assert_eq!(
            d("[2001:db8::1]:443"),
            Ok(("2001:db8::1".into(), Some(443), Protocol::Tcp))
        );
        assert_eq!(
            d("2001:db8::1/sctp"),
            Ok(("2001:db8::1".into(), None, Protocol::Sctp))
        );
        for bad in [
            "172.17.85.56:0",
            "172.17.85.56:65536",
            "172.17.85.56:80/icmp",
            "300.1.1.1",
            "[2001:db8::1",
            "[2001:db8::1]80",
            "",
        ] {
            assert!(dst_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_forms() {
        assert_eq!(hex_arg("0x0a0B"), Ok(HexFrame(vec![10, 11])));
        assert_eq!(hex_arg("0a:0b 0c-0d"), Ok(HexFrame(vec![10, 11, 12, 13])));
        assert!(hex_arg("0a0").is_err());
        assert!(hex_arg("zz").is_err());
        assert!(hex_arg(&"00".repeat(MAX_HEX_FRAME + 1)).is_err());
    }
}

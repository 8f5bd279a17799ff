//! `lvs-loader trace IFACE [--vip ADDR[:PORT]] [--src-mac MAC] [--count N] [--json]`:
//! live per-packet decisions of the attached program, one line each.

use std::{
    io::Write as _,
    net::IpAddr,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result};
use lvs_loader::{
    Attachment, IfName,
    config::parse_mac,
    ifname, text,
    trace::{TraceOptions, TraceRecord},
};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// An attached interface.
    #[arg(value_parser = ifname::parse_arg)]
    iface: IfName,
    /// Only packets to this address (ADDR, ADDR:PORT or [IPV6]:PORT).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = vip_arg)]
    vip: Option<(IpAddr, Option<u16>)>,
    /// Only packets from this source MAC.
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    src_mac: Option<[u8; 6]>,
    /// Stop after N packets.
    #[arg(long, short = 'c', value_name = "N")]
    count: Option<u64>,
    /// At most N events per second per CPU (the kernel drops the rest and says how many).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: u32,
    /// Events the kernel may send at once before the rate applies.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    burst: u32,
    /// Seconds the program keeps tracing if lvs-loader dies without turning it off (it is
    /// renewed every second).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease: u64,
}

fn vip_arg(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let bad = || {
        format!(
            "{}: expected ADDR, ADDR:PORT or [IPV6]:PORT (port 1-65535)",
            text::excerpt(s, text::EXCERPT_CHARS)
        )
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
    if let Some(r) = s.strip_prefix('[') {
        let (a, tail) = r.split_once(']').ok_or_else(bad)?;
        let a: IpAddr = a.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.into();
        return match tail {
            "" => Ok((a, None)),
            t => Ok((a, Some(port(t.strip_prefix(':').ok_or_else(bad)?)?))),
        };
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, None));
    }
    let (a, p) = s.split_once(':').ok_or_else(bad)?;
    let a: IpAddr = a.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?.into();
    Ok((a, Some(port(p)?)))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: an async-signal-safe handler (one atomic store); no SA_RESTART, so
        // poll(2) returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn format_ns(ns: u64) -> String {
    let t = text::format_time(ns / 1_000_000_000);
    match t.strip_suffix('Z') {
        Some(s) => format!("{s}.{:06}Z", ns % 1_000_000_000 / 1000),
        None => t,
    }
}

/// Compact JSON on one line (JSON Lines), every unsafe character escaped.
fn json_line(r: &TraceRecord) -> Result<String> {
    let pretty = text::to_json_pretty(r).context("formatting JSON")?;
    // Pretty JSON puts line breaks and indentation only between tokens.
    Ok(pretty
        .lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join(""))
}

impl Args {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let opts = TraceOptions {
            vip: self.vip,
            src_mac: self.src_mac,
            rate: self.rate,
            burst: self.burst,
            lease: Duration::from_secs(self.lease),
        };
        catch_signals();
        let mut tracer = Attachment::open(&ctx.pin_dir, &self.iface)
            .map(|a| a.with_lock_wait(ctx.wait))
            .and_then(|a| a.tracer(opts))
            .with_context(|| format!("trace {}", self.iface))?;
        // On stderr also with --json (stdout is the stream of events).
        eprintln!(
            "lvs-loader: tracing {} (at most {} event(s)/s per CPU; Ctrl-C stops)",
            self.iface, self.rate
        );
        let mut seen = 0u64;
        let mut out = std::io::stdout().lock();
        let result = (|| -> Result<()> {
            while !STOP.load(Ordering::SeqCst) && self.count.is_none_or(|c| seen < c) {
                let mut pfd = libc::pollfd {
                    fd: tracer.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 250) };
                tracer.tend().context("renewing the trace")?;
                for r in tracer.drain().context("reading the trace events")? {
                    if self.count.is_some_and(|c| seen >= c) {
                        break;
                    }
                    seen += 1;
                    let line = if ctx.json {
                        json_line(&r)?
                    } else {
                        let v = &r.verdict;
                        let mut l = format!(
                            "{} {}: {}",
                            format_ns(r.time_ns),
                            v.packet.describe(),
                            v.message
                        );
                        if r.suppressed > 0 {
                            l.push_str(&format!(
                                " [{} matching packet(s) before it not shown: rate limit]",
                                r.suppressed
                            ));
                        }
                        if let Some(note) = &v.note {
                            l.push_str(&format!(" [{note}]"));
                        }
                        text::terminal_safe(&l).into_owned()
                    };
                    writeln!(out, "{line}").context("writing")?;
                }
                out.flush().context("writing")?;
            }
            Ok(())
        })();
        let stopped = tracer.stop().context("turning tracing off");
        result?;
        stopped?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_forms() {
        let v = |s: &str| vip_arg(s).map(|(a, p)| (a.to_string(), p));
        assert_eq!(v("172.17.85.56"), Ok(("172.17.85.56".into(), None)));
        assert_eq!(v("172.17.85.56:80"), Ok(("172.17.85.56".into(), Some(80))));
        assert_eq!(v("2001:db8::1"), Ok(("2001:db8::1".into(), None)));
        assert_eq!(
            v("[2001:db8::1]:443"),
            Ok(("2001:db8::1".into(), Some(443)))
        );
        for bad in ["1.2.3.4:0", "1.2.3.4:x", "[2001:db8::1", "host:80", ""] {
            assert!(vip_arg(bad).is_err(), "{bad}");
        }
    }
}

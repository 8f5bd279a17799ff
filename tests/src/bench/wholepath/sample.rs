//! One sample of a lab: a window of sending, the packets delivered (Tcp InSegs) and
//! marked (each contender's own counter), and the CPU time the path used (the sender
//! thread plus ksoftirqd of its CPU).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use lvs_loader::Attachment;

use super::{
    Contender, Sample,
    lab::{Lab, dir_if},
};
use crate::cmd::try_run;

/// CPU time of the calling thread (ns, CLOCK_THREAD_CPUTIME_ID: the scheduler's exact
/// runtime, which includes softirqs run in the thread's context).
fn thread_cpu_ns() -> u64 {
    // SAFETY: zeroed timespec is valid; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runtime (ns) of `ksoftirqd/<cpu>` from /proc/PID/schedstat; 0 if not found.
fn ksoftirqd_ns(cpu: usize) -> u64 {
    static PID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let pid = PID.get_or_init(|| {
        let want = format!("ksoftirqd/{cpu}");
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == want).then_some(pid)
        })
    });
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Tcp InSegs of the calling thread's namespace.
fn tcp_in_segs() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").context("reading snmp")?;
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        bail!("no Tcp lines in /proc/net/snmp");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InSegs")
        .and_then(|(_, v)| v.parse().ok())
        .context("no Tcp InSegs in /proc/net/snmp")
}

fn find_counter(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(c) = m.get("counter")
                && let Some(p) = c.get("packets").and_then(serde_json::Value::as_u64)
            {
                return Some(p);
            }
            m.values().find_map(find_counter)
        }
        serde_json::Value::Array(a) => a.iter().find_map(find_counter),
        _ => None,
    }
}

impl Lab {
    /// (delivered, marked) so far in the director.
    fn counters(&mut self, n: usize) -> Result<(u64, Option<u64>)> {
        let delivered = {
            let _g = self.dir.enter();
            tcp_in_segs()?
        };
        let marked = match self.contender {
            Contender::None | Contender::EmptyTcx => None,
            Contender::LvsEbpf => {
                let _g = self.dir.enter();
                let g = Attachment::open(&self.pins.path, &dir_if())?.global_counters()?;
                Some(g.get("marked").copied().context("no marked counter")?)
            }
            Contender::LvsHtab => {
                let dp = self.htab.as_mut().context("htab not loaded")?;
                let g = dp.maps.global_counters()?;
                Some(g.get("marked").copied().context("no marked counter")?)
            }
            Contender::Iptables => {
                let mut cmd = self.dir.command("iptables-legacy");
                cmd.args(["-w", "-t", "mangle", "-nvxL", "PREROUTING", &n.to_string()]);
                let out = try_run(&mut cmd, None)?;
                let line = out
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .context("empty iptables listing")?;
                Some(
                    line.split_whitespace()
                        .next()
                        .and_then(|t| t.parse().ok())
                        .with_context(|| format!("no packet count in {line:?}"))?,
                )
            }
            Contender::Nftables => {
                let mut cmd = self.dir.command("nft");
                cmd.args(["-j", "list", "chain", "ip", "lvsbench", "prerouting"]);
                let out = try_run(&mut cmd, None)?;
                let v: serde_json::Value =
                    serde_json::from_str(&out).context("parsing nft -j output")?;
                Some(find_counter(&v).context("no counter in the nft rule")?)
            }
        };
        Ok((delivered, marked))
    }

    pub(super) fn sample(&mut self, n: usize, dur: Duration, cpu: usize) -> Result<Sample> {
        let (d0, m0) = self.counters(n)?;
        let mut sent = 0u64;
        let k0 = ksoftirqd_ns(cpu);
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        let deadline = t0 + dur;
        loop {
            sent += self.sender.send_batch(&self.frames) as u64;
            if Instant::now() >= deadline {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        // Let a backlog that is still queued drain before reading the counters.
        std::thread::sleep(Duration::from_millis(20));
        let thread_secs = (thread_cpu_ns() - c0) as f64 / 1e9;
        let ksoftirqd_secs = ksoftirqd_ns(cpu).saturating_sub(k0) as f64 / 1e9;
        let cpu_secs = thread_secs + ksoftirqd_secs;
        let (d1, m1) = self.counters(n)?;
        let delivered = d1 - d0;
        let marked = m0.zip(m1).map(|(a, b)| b - a);
        let what = format!("{} with {n} VIPs", self.contender.label());
        if delivered == 0 || delivered > sent {
            bail!("{what}: {delivered} delivered of {sent} sent: the lab is broken");
        }
        if let Some(m) = marked
            && m != delivered
        {
            bail!(
                "{what}: marked {m} packets but {delivered} were delivered (all should be marked): refusing to report a rate"
            );
        }
        Ok(Sample {
            sent,
            delivered,
            marked,
            secs,
            cpu_secs,
            ksoftirqd_secs,
            pps: delivered as f64 / secs,
            pps_per_core: delivered as f64 / cpu_secs,
        })
    }
}

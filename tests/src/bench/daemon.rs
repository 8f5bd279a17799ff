//! What `lvs-loader daemon` costs while nothing happens (issue 9): CPU (the process's
//! CPU-time clock, `clock_getcpuclockid`, over an idle window; target < 0.1% of a core)
//! and resident memory (target < 30 MB) with 100,000 VIPs attached, plus the time to
//! READY and one `/metrics` scrape of every VIP (streamed). The CPU clock counts
//! nanoseconds of every thread, exited ones included: /proc's utime + stime come in 10 ms
//! ticks charged to whoever runs at the tick, which for a daemon that wakes ~10 times a
//! second for ~80 us read 2, 3 or 4 ticks in 30 s (0.067-0.133%) around a true 0.07%. An
//! unoptimized build spends several times more on each look: the targets are for a
//! release binary (`LVS_LOADER=target/release/lvs-loader`, which `cargo xtask bench` uses).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde::Serialize;

use super::report::Target;
use crate::{
    daemon::DaemonLab,
    lab::{DEV, path_str},
    netns::loader_bin,
};

/// The port the daemon's `/metrics` listens on by default.
const METRICS_PORT: u16 = 9597;
const CPU_TARGET_PCT: f64 = 0.1;
const RSS_TARGET_MB: f64 = 30.0;

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub vips: u32,
    pub loader: PathBuf,
    pub release_build: bool,
    pub ready_secs: f64,
    pub window_secs: f64,
    pub idle_cpu_pct: f64,
    pub idle_rss_mb: f64,
    pub peak_rss_start_mb: f64,
    pub scrape_secs: f64,
    pub rss_after_scrape_mb: f64,
    pub peak_rss_mb: f64,
}

fn config(vips: u32) -> String {
    let mut s = String::with_capacity(vips as usize * 64);
    s.push_str("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n");
    for i in 0..vips {
        s.push_str(&format!(
            "[[vip]]\naddress = \"10.{}.{}.{}\"\nport = 443\nmark = {}\n",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            1 + (i % 1000)
        ));
    }
    s
}

/// CPU time of process `pid` (every thread, exited ones included), in nanoseconds.
fn cpu_ns(pid: i32) -> Result<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: out-pointer to a local.
    let r = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r))
            .with_context(|| format!("clock_getcpuclockid({pid})"));
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: out-pointer to a local.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error()).context("clock_gettime(process CPU clock)");
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// (CPU time in ns, VmRSS kB, VmHWM kB) of `pid`.
fn usage(pid: i32) -> Result<(u64, u64, u64)> {
    let cpu = cpu_ns(pid)?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading status")?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((cpu, kb("VmRSS:"), kb("VmHWM:")))
}

/// Starts the daemon on `vips` VIPs, lets it settle for `settle`, measures an idle
/// window of `window`, then one scrape of everything.
pub fn run(vips: u32, settle: Duration, window: Duration) -> Result<Results> {
    let lab = DaemonLab::new("bdm");
    let cfg = lab.config("vips.toml", &config(vips));
    let started = Instant::now();
    let mut d = lab.daemon(&["--config", path_str(&cfg), DEV], &[]);
    d.wait_line("ready:", Duration::from_secs(300));
    let ready_secs = started.elapsed().as_secs_f64();
    // Let the start settle (the first looks, the blocking threads' keep-alive).
    std::thread::sleep(settle);
    let (t0, _, _) = usage(d.pid())?;
    let w = Instant::now();
    std::thread::sleep(window);
    let (t1, rss1, hwm1) = usage(d.pid())?;
    let window_secs = w.elapsed().as_secs_f64();
    let idle_cpu_pct = (t1 - t0) as f64 / 1e9 / window_secs * 100.0;
    let scrape = Instant::now();
    let (code, body) = lab.http(METRICS_PORT, "GET", "/metrics");
    let scrape_secs = scrape.elapsed().as_secs_f64();
    ensure!(code == 200, "/metrics answered {code}");
    let samples = body
        .lines()
        .filter(|l| l.starts_with("lvs_ebpf_vip_marked_packets_total{"))
        .count();
    ensure!(
        samples == vips as usize,
        "/metrics has {samples} VIP samples, {vips} configured"
    );
    drop(body);
    std::thread::sleep(Duration::from_millis(500));
    let (_, rss2, hwm2) = usage(d.pid())?;
    if !d.term().success() {
        bail!("the daemon did not exit cleanly on SIGTERM");
    }
    lab.loader_ok(&["detach", DEV]);
    let loader = loader_bin();
    let release_build = loader.components().any(|c| c.as_os_str() == "release");
    let mb = |kb: u64| kb as f64 / 1024.0;
    Ok(Results {
        vips,
        loader,
        release_build,
        ready_secs,
        window_secs,
        idle_cpu_pct,
        idle_rss_mb: mb(rss1),
        peak_rss_start_mb: mb(hwm1),
        scrape_secs,
        rss_after_scrape_mb: mb(rss2),
        peak_rss_mb: mb(hwm2),
    })
}

pub fn table(r: &Results) -> String {
    let build = if r.release_build { "release" } else { "debug" };
    let rows = [
        ("start to READY (s)", format!("{:.2}", r.ready_secs)),
        (
            &*format!("idle CPU over {:.0} s (% of one core)", r.window_secs),
            format!("{:.3}", r.idle_cpu_pct),
        ),
        ("idle RSS (MB)", format!("{:.1}", r.idle_rss_mb)),
        (
            "peak RSS during start (MB)",
            format!("{:.1}", r.peak_rss_start_mb),
        ),
        (
            "/metrics scrape of every VIP (s)",
            format!("{:.2}", r.scrape_secs),
        ),
        (
            "RSS after the scrape (MB)",
            format!("{:.1}", r.rss_after_scrape_mb),
        ),
        (
            "peak RSS including the scrape (MB)",
            format!("{:.1}", r.peak_rss_mb),
        ),
    ]
    .iter()
    .map(|(k, v)| format!("| {k} | {v} |\n"))
    .collect::<String>();
    format!(
        "`lvs-loader daemon` with {} VIPs on one interface ({build} build):\n\n| measure | value |\n|---|---:|\n{rows}",
        r.vips
    )
}

/// The daemon's targets of issue 9 (meaningful for a release build only).
pub fn targets(r: &Results) -> Vec<Target> {
    let build = if r.release_build {
        ""
    } else {
        " (debug build)"
    };
    vec![
        Target {
            target: format!(
                "daemon idle CPU < {CPU_TARGET_PCT}% of a core, {} VIPs",
                r.vips
            ),
            met: r.idle_cpu_pct < CPU_TARGET_PCT,
            measured: format!("{:.3}%{build}", r.idle_cpu_pct),
        },
        Target {
            target: format!("daemon RSS < {RSS_TARGET_MB} MB, {} VIPs", r.vips),
            met: r.idle_rss_mb < RSS_TARGET_MB,
            measured: format!(
                "{:.1} MB idle, {:.1} MB after a scrape of every VIP{build}",
                r.idle_rss_mb, r.rss_after_scrape_mb
            ),
        },
    ]
}

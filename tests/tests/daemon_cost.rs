//! What `lvs-loader daemon` costs while nothing happens, with 100,000 VIPs attached: CPU
//! (utime + stime from /proc over an idle window; target < 0.1% of a core) and resident
//! memory (target < 30 MB), printed as a table. Also the memory after a `/metrics` scrape
//! of all 100,000 VIPs (streamed). The window is `$LVS_DAEMON_IDLE_SECS` seconds (default
//! 10; the README's numbers are from 30 with the release binary: `LVS_LOADER=
//! target/release/lvs-loader`). CPU time comes in 10 ms ticks, and an unoptimized build
//! spends several times more on each look: with a debug binary the CPU bound is 0.5%.

use std::time::{Duration, Instant};

use lvs_tests::{
    daemon::DaemonLab,
    lab::{DEV, path_str},
    netns::loader_bin,
};

const VIPS: u32 = 100_000;

fn config() -> String {
    let mut s = String::with_capacity(VIPS as usize * 64);
    s.push_str("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n");
    for i in 0..VIPS {
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

/// (utime + stime in clock ticks, VmRSS kB, VmHWM kB) of `pid`.
fn usage(pid: i32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks, kb("VmRSS:"), kb("VmHWM:"))
}

#[test]
fn daemon_idle_cpu_and_memory_with_100k_vips() {
    if lvs_tests::daemon::in_vm() {
        eprintln!("SKIP daemon_idle_cpu_and_memory_with_100k_vips: a measurement of the host");
        return;
    }
    let secs: u64 = std::env::var("LVS_DAEMON_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let lab = DaemonLab::new("dco");
    let cfg = lab.config("vips.toml", &config());
    let started = Instant::now();
    let mut d = lab.daemon(&["--config", path_str(&cfg), DEV], &[]);
    d.wait_line("ready:", Duration::from_secs(300));
    let ready_after = started.elapsed();
    // Let the start settle (the first looks, the blocking threads' keep-alive).
    std::thread::sleep(Duration::from_secs(12));
    let hz = 100.0; // USER_HZ
    let (t0, rss0, _) = usage(d.pid());
    let w = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, rss1, hwm1) = usage(d.pid());
    let window = w.elapsed().as_secs_f64();
    let cpu_pct = (t1 - t0) as f64 / hz / window * 100.0;
    // One scrape of everything.
    let scrape = Instant::now();
    let (code, body) = lab.http(9597, "GET", "/metrics");
    let scrape_took = scrape.elapsed();
    assert_eq!(code, 200);
    let samples = body
        .lines()
        .filter(|l| l.starts_with("lvs_ebpf_vip_marked_packets_total{"))
        .count();
    assert_eq!(samples, VIPS as usize);
    drop(body);
    std::thread::sleep(Duration::from_millis(500));
    let (_, rss2, hwm2) = usage(d.pid());
    eprintln!(
        "\nlvs-loader daemon cost ({}), {VIPS} VIPs on one interface\n\
         {:<44} {:>10}\n{:<44} {:>10.2}\n{:<44} {:>10.3}\n{:<44} {:>10.1}\n{:<44} {:>10.1}\n{:<44} {:>10.1}\n{:<44} {:>10.2}\n{:<44} {:>10.1}\n",
        loader_bin().display(),
        "measure",
        "value",
        "start to READY (s)",
        ready_after.as_secs_f64(),
        &format!("idle CPU over {window:.0} s (% of one core)"),
        cpu_pct,
        "idle RSS (MB)",
        rss1 as f64 / 1024.0,
        "peak RSS during start (MB)",
        hwm1 as f64 / 1024.0,
        "RSS after a /metrics scrape of every VIP (MB)",
        rss2 as f64 / 1024.0,
        "/metrics scrape of every VIP (s)",
        scrape_took.as_secs_f64(),
        "peak RSS including the scrape (MB)",
        hwm2 as f64 / 1024.0,
    );
    let release = loader_bin()
        .components()
        .any(|c| c.as_os_str() == "release");
    let bound = if release { 0.1 } else { 0.5 };
    assert!(
        cpu_pct < bound,
        "idle CPU {cpu_pct:.3}% of a core (bound {bound}% for this build)"
    );
    assert!(rss0 < 30 * 1024 && rss1 < 30 * 1024, "idle RSS {rss1} kB");
    assert!(d.term().success());
    lab.loader_ok(&["detach", DEV]);
}

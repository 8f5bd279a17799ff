//! `lvs-bench`: what lvs-ebpf costs per packet, side by side with the iptables recipe and
//! an nftables map (issue 3).
//!
//! * [`progcost`]: the program alone through BPF_PROG_TEST_RUN, against an empty program,
//!   lvs-ebpf and its kernel-hash-map contender side by side.
//! * [`insns`]: the instructions each path executes, and the loaded programs' size.
//! * [`wholepath`]: packets per second across a veth pair into a director namespace.
//! * [`memory`]: kernel map memory, loader peak RSS, attach/reload time for 100,000 VIPs.
//! * [`daemon`]: `lvs-loader daemon`'s idle CPU and RSS with 100,000 VIPs.
//! * [`report`] / [`plot`]: markdown tables and the SVG plot.
//!
//! Everything runs as root inside network namespaces the benchmark creates and deletes.

pub mod daemon;
pub mod insns;
pub mod mapfd;
pub mod memory;
pub mod plot;
pub mod progcost;
pub mod report;
pub mod wholepath;
pub mod workload;

use std::io;

use serde::Serialize;

/// Median of `v` (mean of the two middle values for an even count; NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Pins the calling thread to `cpu` (softirq work triggered by the thread follows it).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Undoes [`pin_to_cpu`]: every online CPU.
pub fn unpin() -> io::Result<()> {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..online_cpus() {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Online CPUs of the machine (not of our affinity mask, which pinning narrows).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// The CPU the measurements run on: the last one (CPU 0 takes most housekeeping).
pub fn bench_cpu() -> usize {
    online_cpus().saturating_sub(1)
}

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    /// The return-thunk mitigations in force (/sys/devices/system/cpu/vulnerabilities):
    /// with them every kernel function return costs several ns, which is what calls into
    /// the kernel (hash lookups, helpers) cost on the hot path.
    pub spec_rstack_overflow: String,
    pub retbleed: String,
    pub cpus: usize,
    pub kernel: String,
    pub memory_gib: f64,
    pub iptables: String,
    pub nft: String,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let vuln = |name: &str| {
            std::fs::read_to_string(format!("/sys/devices/system/cpu/vulnerabilities/{name}"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into())
        };
        Self {
            cpu_model,
            spec_rstack_overflow: vuln("spec_rstack_overflow"),
            retbleed: vuln("retbleed"),
            cpus: online_cpus(),
            kernel: lvs_loader::sys::kernel_release(),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            iptables: first_line("iptables-legacy", &["-V"]),
            nft: first_line("nft", &["-v"]),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({} CPUs), {:.0} GiB, Linux {}, {}, {}",
            self.cpu_model, self.cpus, self.memory_gib, self.kernel, self.iptables, self.nft
        )
    }

    /// CPU and return-thunk mitigations, printed next to every table (the ratios depend
    /// on them).
    pub fn cpu_line(&self) -> String {
        format!(
            "CPU: {}, Linux {}; return-thunk mitigations: spec_rstack_overflow \"{}\", retbleed \"{}\".",
            self.cpu_model, self.kernel, self.spec_rstack_overflow, self.retbleed
        )
    }
}

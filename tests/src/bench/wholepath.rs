//! Whole path: packets per second delivered across a veth pair into a director
//! namespace.
//!
//! One lab per contender (sender namespace `g0` <-> `d0` director namespace), set up
//! once per VIP count; samples run interleaved (none, lvs-ebpf, iptables, nftables, none,
//! ...). The sender is one thread on one CPU doing AF_PACKET `sendmmsg`: a veth transmit
//! hands each frame to the director's receive path (`netif_rx`), and the softirq that
//! runs when the transmit re-enables bottom halves processes it on the same CPU: TC
//! ingress, `ip_rcv`, netfilter PREROUTING, the route lookup (the VIPs are local through a
//! `local` route), LOCAL_IN and `tcp_v4_rcv`, which counts the segment (Tcp InSegs, what
//! we call delivered) and drops the RST it is. So a sample measures one core's worth of
//! per-packet work, sender included, and a filter's cost shows up 1:1 as
//! `1e9/pps - 1e9/pps_baseline` ns per packet.
//!
//! Every contender counts the packets it marks (lvs-ebpf's `marked` counter, the iptables
//! rule counter, an nft `counter`); each sample checks that count against the delivered
//! count, so a contender that stopped marking cannot post a good rate.
//!
//! The headline rate is per core: delivered packets divided by the CPU time the path
//! used (the sender thread, which runs the receive softirqs, plus ksoftirqd of its CPU).
//! On a shared machine other tasks take CPU time away from the sender; wall-clock rates
//! swing with that, per-core rates do not. Both are recorded.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use lvs_loader::{
    AttachOptions, Attachment, IfName, ModeChoice,
    bench_support::{self, EmptyProgram},
    config::format_mac,
    datapath::{Datapath, Variant},
};
use serde::Serialize;

use super::{median, workload};
use crate::{
    cmd::try_run,
    netns::{NetNs, PinRoot, veth},
    sender::{Sender, vnet_hdr_linear},
};

const DIR_IF: &str = "d0";

fn dir_if() -> IfName {
    IfName::new(DIR_IF).expect("DIR_IF is a valid interface name")
}
const GEN_IF: &str = "g0";
const DIR_ADDR: &str = "192.168.77.1/24";
/// A peer director's MAC: in every contender's peer set, never the sender's.
const PEER_MAC: [u8; 6] = [0x02, 0x50, 0, 0, 0, 0xfe];
const BATCH: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Contender {
    None,
    /// The empty program attached with TCX: what the hook alone costs.
    EmptyTcx,
    LvsEbpf,
    /// The same program over kernel hash maps (the contender lvs-ebpf replaced).
    LvsHtab,
    Iptables,
    Nftables,
}

impl Contender {
    pub const ALL: [Contender; 6] = [
        Self::None,
        Self::EmptyTcx,
        Self::LvsEbpf,
        Self::LvsHtab,
        Self::Iptables,
        Self::Nftables,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::None => "no filter (baseline)",
            Self::EmptyTcx => "empty program (TCX)",
            Self::LvsEbpf => "lvs-ebpf (TCX)",
            Self::LvsHtab => "lvs-ebpf (htab, TCX)",
            Self::Iptables => "iptables-legacy recipe",
            Self::Nftables => "nftables concat map",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::EmptyTcx => "empty_tcx",
            Self::LvsEbpf => "lvs_ebpf",
            Self::LvsHtab => "lvs_htab",
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        }
    }
}

/// How the sender's frames arrive in the director's skbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkbLayout {
    /// The whole frame in the skb's linear area, like a NIC driver builds small packets
    /// (AF_PACKET with a `virtio_net_hdr` whose `hdr_len` covers the frame).
    Linear,
    /// AF_PACKET's default: only the Ethernet header is linear, the rest is a page
    /// fragment (what GRO'd or some drivers' packets look like too).
    Paged,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub vip_counts: Vec<usize>,
    pub rounds: usize,
    pub sample: Duration,
    pub layout: SkbLayout,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub sent: u64,
    pub delivered: u64,
    pub marked: Option<u64>,
    /// Wall time of the sending window.
    pub secs: f64,
    /// CPU time spent on the path: the sender thread (its syscalls and the softirqs
    /// they run) plus ksoftirqd of the sender's CPU.
    pub cpu_secs: f64,
    pub ksoftirqd_secs: f64,
    /// delivered / wall time.
    pub pps: f64,
    /// delivered / CPU time: what one dedicated core achieves, robust against other
    /// load on the machine taking the CPU away from the sender.
    pub pps_per_core: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub vips: usize,
    pub contender: Contender,
    pub samples: Vec<Sample>,
    /// Median of the per-core rates (delivered / CPU time); the headline number.
    pub median_pps: f64,
    /// Median of the wall-clock rates (delivered / wall time).
    pub median_wall_pps: f64,
    /// 1e9 / median_pps: the whole path's CPU time per packet.
    pub ns_per_packet: f64,
    pub ratio_to_baseline: f64,
    pub wall_ratio_to_baseline: f64,
    /// ns per packet added over the baseline.
    pub added_ns: f64,
    /// Spread of the per-core rates: (max - min) / median.
    pub spread: f64,
    /// Setup time for this VIP count (attach/reload, iptables-restore, nft -f).
    pub setup_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub layout: SkbLayout,
    pub rounds: usize,
    pub sample_secs: f64,
    pub cpu: usize,
    pub batch: usize,
    pub cells: Vec<Cell>,
}

impl Results {
    pub fn get(&self, vips: usize, c: Contender) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|x| x.vips == vips && x.contender == c)
    }
}

/// A sender namespace and a director namespace joined by a veth pair, with one
/// contender installed in the director.
struct Lab {
    contender: Contender,
    /// Kept alive with the lab (dropping it deletes the sender side).
    _gen_ns: NetNs,
    dir: NetNs,
    sender: Sender,
    frames: Vec<Vec<u8>>,
    pins: PinRoot,
    /// The attached empty program (EmptyTcx only).
    empty: Option<EmptyProgram>,
    /// The attached kernel-hash-map datapath (LvsHtab only).
    htab: Option<Datapath>,
}

/// The LVS-HOWTO recipe, one rule per VIP, the target VIP's rule last.
pub fn iptables_rules(n: usize, peer: [u8; 6]) -> String {
    let mut s = String::with_capacity(n * 140 + 64);
    s.push_str("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    let mac = format_mac(&peer);
    for v in workload::vips(n, workload::Target::V4) {
        let port = v.port.unwrap_or(0);
        s.push_str(&format!(
            "-A PREROUTING -d {}/32 -p tcp -m tcp --dport {port} -m mac ! --mac-source {mac} -j MARK --set-mark {:#x}\n",
            v.address, v.mark
        ));
    }
    s.push_str("COMMIT\n");
    s
}

/// keepalived-`nftables_ipvs`-style: one rule, a concatenated `daddr . dport` map to
/// marks and a peer set.
pub fn nft_ruleset(n: usize, peer: [u8; 6]) -> String {
    let mut s = String::with_capacity(n * 40 + 512);
    s.push_str("flush ruleset\ntable ip lvsbench {\n");
    s.push_str(&format!(
        "  set peers {{ type ether_addr; elements = {{ {} }} }}\n",
        format_mac(&peer)
    ));
    s.push_str("  map vips {\n    type ipv4_addr . inet_service : mark\n    elements = { ");
    for (i, v) in workload::vips(n, workload::Target::V4).iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!(
            "{} . {} : {:#x}",
            v.address,
            v.port.unwrap_or(0),
            v.mark
        ));
    }
    s.push_str(" }\n  }\n");
    s.push_str(
        "  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n",
    );
    s.push_str(
        "    ether saddr != @peers meta mark set ip daddr . tcp dport map @vips counter\n  }\n}\n",
    );
    s
}

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
    fn new(contender: Contender, i: usize, layout: SkbLayout) -> Result<Self> {
        let gen_ns = NetNs::new(&format!("bg{i}"));
        let dir = NetNs::new(&format!("bd{i}"));
        for ns in [&gen_ns, &dir] {
            // No IPv6 autoconfiguration chatter on the link during samples.
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        }
        veth(&gen_ns, GEN_IF, &dir, DIR_IF);
        dir.ip(&["addr", "add", DIR_ADDR, "dev", DIR_IF]);
        // The VIPs are local on a director (IPVS takes them at LOCAL_IN).
        dir.ip(&["route", "add", "local", "172.16.0.0/16", "dev", "lo"]);
        dir.ip(&["route", "add", "local", "10.0.0.0/8", "dev", "lo"]);
        let gen_mac = gen_ns.mac(GEN_IF);
        let dir_mac = dir.mac(DIR_IF);
        let frames = (0..BATCH)
            .map(|k| {
                let f = workload::tcp_rst_v4(
                    gen_mac,
                    dir_mac,
                    workload::CLIENT_V4,
                    workload::TARGET_V4,
                    20000 + k as u16,
                    workload::TARGET_V4_PORT,
                );
                match layout {
                    SkbLayout::Linear => vnet_hdr_linear(&f),
                    SkbLayout::Paged => f,
                }
            })
            .collect();
        let sender = Sender::open(&gen_ns, GEN_IF);
        if layout == SkbLayout::Linear {
            sender.enable_vnet_hdr().context("PACKET_VNET_HDR")?;
        }
        Ok(Self {
            contender,
            _gen_ns: gen_ns,
            dir,
            sender,
            frames,
            pins: PinRoot::new(&format!("bench{i}")),
            empty: None,
            htab: None,
        })
    }

    /// Installs `n` VIPs (the target last) and one peer.
    fn configure(&mut self, n: usize) -> Result<()> {
        match self.contender {
            Contender::None => {}
            Contender::EmptyTcx => {
                if self.empty.is_none() {
                    let mut e = EmptyProgram::load().context("loading the empty program")?;
                    let _g = self.dir.enter();
                    e.attach_tcx(DIR_IF)
                        .context("attaching the empty program")?;
                    self.empty = Some(e);
                }
            }
            Contender::LvsEbpf => {
                let mut config = workload::config(n, workload::Target::V4, 0);
                config.peers = vec![lvs_loader::config::Peer {
                    mac: PEER_MAC,
                    name: None,
                }];
                let _g = self.dir.enter();
                let opts = AttachOptions {
                    mode: ModeChoice::Tcx,
                    ..AttachOptions::default()
                };
                Attachment::create(&self.pins.path, &dir_if(), &config, opts)
                    .context("lvs-ebpf attach/reload")?;
            }
            Contender::LvsHtab => {
                let mut config = workload::config(n, workload::Target::V4, 0);
                config.peers = vec![lvs_loader::config::Peer {
                    mac: PEER_MAC,
                    name: None,
                }];
                if self.htab.is_none() {
                    let mut dp = Datapath::load_variant(Variant::Htab)
                        .context("loading the htab datapath")?;
                    dp.maps.apply(&config).context("htab: installing VIPs")?;
                    let _g = self.dir.enter();
                    bench_support::attach_tcx(&mut dp, DIR_IF).context("attaching htab")?;
                    self.htab = Some(dp);
                } else if let Some(dp) = &mut self.htab {
                    dp.maps.apply(&config).context("htab: reload")?;
                }
            }
            Contender::Iptables => {
                let mut cmd = self.dir.command("iptables-legacy-restore");
                cmd.arg("-w");
                try_run(&mut cmd, Some(iptables_rules(n, PEER_MAC).as_bytes()))?;
            }
            Contender::Nftables => {
                let mut cmd = self.dir.command("nft");
                cmd.args(["-f", "-"]);
                try_run(&mut cmd, Some(nft_ruleset(n, PEER_MAC).as_bytes()))?;
            }
        }
        Ok(())
    }

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

    fn sample(&mut self, n: usize, dur: Duration, cpu: usize) -> Result<Sample> {
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

pub fn run(p: &Params) -> Result<Results> {
    let cpu = super::bench_cpu();
    super::pin_to_cpu(cpu).context("pinning to a CPU")?;
    let mut labs: Vec<Lab> = Contender::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| Lab::new(*c, i, p.layout))
        .collect::<Result<_>>()?;
    let mut cells = Vec::new();
    for &n in &p.vip_counts {
        let mut setup_ms = Vec::new();
        for lab in &mut labs {
            let t0 = Instant::now();
            lab.configure(n)
                .with_context(|| format!("configuring {} with {n} VIPs", lab.contender.label()))?;
            setup_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            // Warm-up and a first correctness check.
            lab.sample(n, Duration::from_millis(100), cpu)?;
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); labs.len()];
        for _ in 0..p.rounds {
            for (i, lab) in labs.iter_mut().enumerate() {
                samples[i].push(lab.sample(n, p.sample, cpu)?);
            }
        }
        let per_core = |s: &[Sample]| s.iter().map(|x| x.pps_per_core).collect::<Vec<_>>();
        let medians: Vec<f64> = samples.iter().map(|s| median(&per_core(s))).collect();
        let wall: Vec<f64> = samples
            .iter()
            .map(|s| median(&s.iter().map(|x| x.pps).collect::<Vec<_>>()))
            .collect();
        let (base, wall_base) = (medians[0], wall[0]);
        for (i, lab) in labs.iter().enumerate() {
            let m = medians[i];
            let v = per_core(&samples[i]);
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            cells.push(Cell {
                vips: n,
                contender: lab.contender,
                samples: std::mem::take(&mut samples[i]),
                median_pps: m,
                median_wall_pps: wall[i],
                ns_per_packet: 1e9 / m,
                ratio_to_baseline: m / base,
                wall_ratio_to_baseline: wall[i] / wall_base,
                added_ns: 1e9 / m - 1e9 / base,
                spread: (hi - lo) / m,
                setup_ms: setup_ms[i],
            });
        }
        eprintln!(
            "  wholepath: {n:>6} VIPs: {}",
            labs.iter()
                .zip(&medians)
                .map(|(l, m)| format!("{} {:.0} pps", l.contender.key(), m))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for lab in &labs {
        if lab.contender == Contender::LvsEbpf {
            let _g = lab.dir.enter();
            let _ = Attachment::here(&lab.pins.path, &dir_if()).and_then(|a| a.detach());
        }
    }
    super::unpin().context("unpinning")?;
    Ok(Results {
        layout: p.layout,
        rounds: p.rounds,
        sample_secs: p.sample.as_secs_f64(),
        cpu,
        batch: BATCH,
        cells,
    })
}

/// A director namespace with an interface (one end of a veth pair that stays inside),
/// for the attach/reload measurements.
pub struct Director {
    pub ns: NetNs,
    pub iface: &'static str,
}

impl Director {
    pub fn new(tag: &str) -> Self {
        let ns = NetNs::new(tag);
        ns.ip(&[
            "link", "add", DIR_IF, "type", "veth", "peer", "name", GEN_IF,
        ]);
        ns.ip(&["link", "set", DIR_IF, "up"]);
        Self { ns, iface: DIR_IF }
    }
}

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
//!
//! Here: the parameters, results and [`run`]. `lab`: the namespaces and contenders (and
//! the [`Director`] of the attach/reload measurements); `rules`: the netfilter rule sets;
//! `sample`: one sample of a lab.

mod lab;
mod rules;
mod sample;

pub use lab::Director;
pub use rules::{iptables_rules, nft_ruleset};

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use lvs_loader::Attachment;
use serde::Serialize;

use super::median;
use lab::{BATCH, Lab, dir_if};

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
    /// Only the Ethernet header linear, the rest in a page fragment (what GRO'd or
    /// header-split NICs' packets look like): the frames padded to
    /// [`crate::sender::PAGED_FRAME_LEN`] bytes, which AF_PACKET builds that way, over a
    /// veth with a jumbo MTU. (A shorter frame it copies whole into the linear data.)
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

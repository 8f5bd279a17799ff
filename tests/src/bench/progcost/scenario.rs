//! What the program-cost benchmark measures: the datapaths ([`Dp`]: lvs-ebpf and its
//! kernel-hash-map contender) and the scenarios ([`Scenario`]), each with its frame, the
//! mark the program must leave, its VIP set and its trace filter.

use lvs_loader::datapath::Variant;
use serde::Serialize;

use crate::{
    bench::workload::{self, Target},
    frames::{ETH_P_8021Q, ETH_P_ARP, Frame, IPPROTO_TCP},
};

/// Which datapath a measurement is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dp {
    /// lvs-ebpf: call-free tables.
    Table,
    /// The contender: kernel hash maps.
    Htab,
}

impl Dp {
    pub const ALL: [Dp; 2] = [Dp::Table, Dp::Htab];

    pub fn label(self) -> &'static str {
        match self {
            Self::Table => "lvs-ebpf",
            Self::Htab => "lvs-ebpf (htab)",
        }
    }

    pub fn variant(self) -> Variant {
        match self {
            Self::Table => Variant::Table,
            Self::Htab => Variant::Htab,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The empty program (floor).
    Empty,
    HitNonPeer,
    HitPeer,
    Miss,
    NonIp,
    V6Hit,
    AnyPortHit,
    VlanHit,
    /// The VIP hit again, as the trace rows' baseline (tracing off: the default).
    TraceOff,
    /// The VIP hit with `lvs-loader trace` on and a filter this packet fails (another
    /// source MAC): what every packet pays while someone traces something else.
    TraceFiltered,
    /// The VIP hit with tracing on, matching, over the rate limit (suppressed): what the
    /// packets past the limit pay during a trace.
    TraceLimited,
}

impl Scenario {
    pub const LVS: [Scenario; 7] = [
        Self::HitNonPeer,
        Self::HitPeer,
        Self::Miss,
        Self::NonIp,
        Self::V6Hit,
        Self::AnyPortHit,
        Self::VlanHit,
    ];

    /// The trace rows (lvs-ebpf only, with the IPv4 VIP set).
    pub const TRACE: [Scenario; 3] = [Self::TraceOff, Self::TraceFiltered, Self::TraceLimited];

    /// The trace filter a scenario runs with (`None`: tracing off).
    pub fn trace_filter(self) -> Option<lvs_ebpf_common::TraceFilter> {
        use lvs_ebpf_common::{TRACE_MAC, TraceFilter, mac_word};
        match self {
            Self::TraceFiltered => Some(TraceFilter {
                flags: TRACE_MAC,
                mac: mac_word([0x02, 0, 0, 0, 0, 0x77]),
                cost_ns: 1,
                burst_ns: 1,
                ..TraceFilter::default()
            }),
            // No credit ever: every matching packet is suppressed.
            Self::TraceLimited => Some(TraceFilter {
                cost_ns: u64::MAX,
                burst_ns: 0,
                ..TraceFilter::default()
            }),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Empty => "empty program (floor)",
            Self::TraceOff => "VIP hit, trace off",
            Self::TraceFiltered => "VIP hit, trace on (filtered out)",
            Self::TraceLimited => "VIP hit, trace on (over the rate limit)",
            Self::HitNonPeer => "VIP hit, non-peer (marked)",
            Self::HitPeer => "VIP hit, from peer",
            Self::Miss => "VIP miss",
            Self::NonIp => "non-IP (ARP)",
            Self::V6Hit => "IPv6 VIP hit",
            Self::AnyPortHit => "any-port VIP hit",
            Self::VlanHit => "VLAN-tagged VIP hit",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::HitNonPeer => "hit_non_peer",
            Self::HitPeer => "hit_peer",
            Self::Miss => "miss",
            Self::NonIp => "non_ip",
            Self::V6Hit => "v6_hit",
            Self::AnyPortHit => "any_port_hit",
            Self::VlanHit => "vlan_hit",
            Self::TraceOff => "trace_off",
            Self::TraceFiltered => "trace_filtered",
            Self::TraceLimited => "trace_limited",
        }
    }

    /// Counts as a VIP hit for the "hit <= 2x floor" target.
    pub fn is_hit(self) -> bool {
        matches!(
            self,
            Self::HitNonPeer | Self::HitPeer | Self::V6Hit | Self::AnyPortHit | Self::VlanHit
        )
    }

    /// The VIP set the scenario needs.
    pub fn target(self) -> Target {
        match self {
            Self::V6Hit => Target::V6,
            Self::AnyPortHit => Target::AnyPort,
            _ => Target::V4,
        }
    }

    /// The frame and the mark the program must leave (mark in is 0).
    pub fn frame(self, n_peers: usize) -> (Vec<u8>, u32) {
        let v4 = |dst, dport| {
            Frame::v4(
                workload::NON_PEER,
                workload::CLIENT_V4,
                dst,
                IPPROTO_TCP,
                40000,
                dport,
            )
        };
        match self {
            Self::Empty
            | Self::HitNonPeer
            | Self::TraceOff
            | Self::TraceFiltered
            | Self::TraceLimited => (
                v4(workload::TARGET_V4, workload::TARGET_V4_PORT).bytes(),
                if self == Self::Empty {
                    0
                } else {
                    workload::TARGET_V4_MARK
                },
            ),
            Self::HitPeer => {
                let peer = workload::peer_mac(n_peers.saturating_sub(1));
                let f = Frame::v4(
                    peer,
                    workload::CLIENT_V4,
                    workload::TARGET_V4,
                    IPPROTO_TCP,
                    40000,
                    workload::TARGET_V4_PORT,
                );
                (f.bytes(), 0)
            }
            Self::Miss => (v4(workload::MISS_V4, workload::TARGET_V4_PORT).bytes(), 0),
            Self::NonIp => (
                Frame::raw(workload::NON_PEER, ETH_P_ARP, vec![0u8; 28]).bytes(),
                0,
            ),
            Self::V6Hit => (
                Frame::v6(
                    workload::NON_PEER,
                    workload::CLIENT_V6,
                    workload::TARGET_V6,
                    IPPROTO_TCP,
                    40000,
                    workload::TARGET_V6_PORT,
                )
                .bytes(),
                workload::TARGET_V6_MARK,
            ),
            Self::AnyPortHit => (
                v4(workload::TARGET_ANY, 12345).bytes(),
                workload::TARGET_ANY_MARK,
            ),
            Self::VlanHit => (
                v4(workload::TARGET_V4, workload::TARGET_V4_PORT)
                    .with_vlan(ETH_P_8021Q, 100)
                    .bytes(),
                workload::TARGET_V4_MARK,
            ),
        }
    }
}

//! `lvs-loader explain`: what the datapath does with a frame, and why, in one line.
//!
//! The verdict and its reason come from the kernel: the frame runs (BPF_PROG_TEST_RUN)
//! through `lvs_explain`, the twin of the attached program compiled from the same
//! decision code without counters, loaded privately and bound to the attachment's
//! pinned maps ([`Explainer::attached`]) or to private maps filled from a config file
//! ([`Explainer::from_config`]). Nothing live is changed and no counter moves.
//!
//! The words around the reason (the VIP's name, the peer's name from the applied config,
//! "this address has only :80/tcp") are read from the same maps; [`packet`] reads the
//! destination of the frame to name it.

pub mod packet;

use std::{net::IpAddr, os::fd::RawFd, path::Path};

use lvs_ebpf_common::{FAMILY_V4, Reason, VipKey};
use serde::Serialize;

use crate::{
    config::{self, Config, Protocol, format_endpoint, format_mac},
    datapath::Datapath,
    error::{Error, Result},
    maps::{LiveVip, MapSet},
    meta::Meta,
    testrun::{self, Explanation},
};

pub use packet::{Summary, summarize};

/// The Ethernet header: the kernel refuses to test-run shorter frames.
pub const MIN_FRAME: usize = 14;
/// A capture cut short (snapshot length) is padded back to its length on the wire up to
/// this many bytes (every test-run limit is above it: 4 KiB pages less headroom); its
/// headers are intact, and the lengths in them then agree with the frame again.
pub const MAX_PADDED: usize = 3000;

/// A VIP entry of the live configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipView {
    pub name: String,
    pub address: IpAddr,
    /// `None`: every port (an any-port entry).
    pub port: Option<u16>,
    #[serde(serialize_with = "ser_display")]
    pub protocol: Protocol,
    pub mark: u32,
    #[serde(skip)]
    pub slot: u32,
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl VipView {
    pub fn endpoint(&self) -> String {
        format_endpoint(self.address, self.port, self.protocol)
    }

    fn from_live(v: &LiveVip) -> Option<Self> {
        let address = key_address(&v.key);
        let port = (v.key.port != 0).then_some(v.key.port);
        let protocol = Protocol::from_number(v.key.proto)?;
        let n = (v.info.name_len as usize).min(v.info.name.len());
        let name = if n > 0 {
            String::from_utf8_lossy(&v.info.name[..n]).into_owned()
        } else {
            format_endpoint(address, port, protocol)
        };
        Some(Self {
            name,
            address,
            port,
            protocol,
            mark: v.value.mark,
            slot: v.value.index,
        })
    }
}

fn key_address(k: &VipKey) -> IpAddr {
    if k.family == FAMILY_V4 {
        IpAddr::from([k.addr[0], k.addr[1], k.addr[2], k.addr[3]])
    } else {
        IpAddr::from(k.addr)
    }
}

/// A peer director of the live configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    /// From the config file the live generation was applied from, when that file is
    /// still the one applied (same SHA-256).
    pub name: Option<String>,
}

fn ser_mac<S: serde::Serializer>(m: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_mac(m))
}

/// What happens to one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `marked`, `unmarked`, or `skipped` (the frame could not be run).
    pub verdict: &'static str,
    /// The kernel's reason code ([`Reason::name`]); `None` when skipped.
    pub reason: Option<&'static str>,
    /// The mark the program sets.
    pub mark: Option<u32>,
    /// The VIP that matched (marked, or from a peer).
    pub vip: Option<VipView>,
    /// Matched through the VIP's any-port entry.
    pub any_port: bool,
    /// The source MAC is this peer's.
    pub peer: Option<PeerView>,
    /// What the frame is addressed to.
    pub packet: Summary,
    /// The sentence: `marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)`.
    pub message: String,
    /// About the input (a capture cut short and padded back).
    pub note: Option<String>,
}

/// Explains frames against one set of maps.
pub struct Explainer {
    /// Holds the explaining program (`fd`) and its maps.
    _dp: Datapath,
    fd: RawFd,
    namer: Namer,
    /// Why peer names are missing, if they are.
    pub names_note: Option<String>,
}

/// What names a decision: the live VIPs and peers.
#[derive(Debug, Clone, Default)]
pub struct Namer {
    vips: Vec<VipView>,
    peers: Vec<PeerView>,
}

/// The names of the live configuration of an attachment (its maps, its record): VIPs
/// from the maps, peer names from the applied config file when it is unchanged; and why
/// peer names are missing, if they are.
pub(crate) fn live_namer(maps: &mut MapSet, meta: &Meta) -> Result<(Namer, Option<String>)> {
    let live = maps.active_generation()?;
    let generation = meta.generation(live);
    // Peer names live only in the config file: use them if the file is still the one the
    // live generation was applied from.
    let (names, names_note) = match &generation.config_path {
        None => (
            None,
            Some("the live config was not applied from a file".into()),
        ),
        Some(p) => match config::load(p) {
            Ok(c) if c.digest == generation.digest => (Some(c), None),
            Ok(_) => (
                None,
                Some(format!(
                    "peer names unknown: {} changed since it was applied",
                    crate::text::escape_path(p)
                )),
            ),
            Err(e) => (None, Some(format!("peer names unknown: {e}"))),
        },
    };
    let peers = named_peers(maps.live_peers()?, names.as_ref());
    Ok((
        Namer {
            vips: live_views(maps)?,
            peers,
        },
        names_note,
    ))
}

impl Explainer {
    /// Against the live maps of an attachment (its directory `dir`, its record `meta`;
    /// [`crate::Attachment::explainer`] checks they belong here).
    pub(crate) fn attached(dir: &Path, meta: &Meta) -> Result<Self> {
        let mut dp = Datapath::load_pinned(dir)?;
        let (namer, names_note) = live_namer(&mut dp.maps, meta)?;
        Self::finish(dp, namer, names_note)
    }

    /// Against private maps filled from `config` (nothing attached is consulted).
    pub fn from_config(config: &Config) -> Result<Self> {
        let mut dp = Datapath::load()?;
        dp.apply(config)?;
        let namer = Namer {
            peers: named_peers(dp.maps.live_peers()?, Some(config)),
            vips: live_views(&mut dp.maps)?,
        };
        Self::finish(dp, namer, None)
    }

    fn finish(mut dp: Datapath, namer: Namer, names_note: Option<String>) -> Result<Self> {
        let fd = dp.explain_fd()?;
        Ok(Self {
            _dp: dp,
            fd,
            namer,
            names_note,
        })
    }

    /// The live VIPs (config order).
    pub fn vips(&self) -> &[VipView] {
        &self.namer.vips
    }

    /// The explanation of one Ethernet frame. `wire_len`: its length on the wire when a
    /// capture cut it short.
    pub fn explain(&mut self, frame: &[u8], wire_len: Option<usize>) -> Result<Verdict> {
        let mut note = None;
        let padded;
        let mut frame = frame;
        if let Some(w) = wire_len.filter(|&w| w > frame.len()) {
            let got = frame.len();
            if w <= MAX_PADDED {
                let mut p = frame.to_vec();
                p.resize(w, 0);
                padded = p;
                frame = &padded;
                note = Some(format!(
                    "captured {got} of {w} bytes: padded with zeros to its {w} bytes on the wire"
                ));
            } else {
                note = Some(format!(
                    "captured {got} of {w} bytes: explained as cut (lengths in the headers may then say malformed)"
                ));
            }
        }
        let summary = summarize(frame);
        if frame.len() < MIN_FRAME {
            return Ok(skipped(
                summary,
                format!(
                    "skipped: {} bytes, shorter than an Ethernet header",
                    frame.len()
                ),
                note,
            ));
        }
        let e = match testrun::explain(self.fd, frame) {
            Ok(e) => e,
            Err(Error::TestRun(io)) if io.raw_os_error() == Some(libc::EINVAL) => {
                return Ok(skipped(
                    summary,
                    format!(
                        "skipped: {} bytes, more than the kernel's test run takes (about 3.5 KB on 4 KiB pages)",
                        frame.len()
                    ),
                    note,
                ));
            }
            Err(e) => return Err(e),
        };
        let mut v = self.namer.words(&e, summary);
        v.note = note;
        Ok(v)
    }
}

impl Namer {
    fn vip_of(&self, slot: u32) -> Option<&VipView> {
        self.vips.iter().find(|v| v.slot == slot)
    }

    /// The entries of the destination address, as `:80/tcp, :*/udp`.
    fn hint(&self, s: &Summary) -> Option<String> {
        let dst = s.dst?;
        let same: Vec<String> = self
            .vips
            .iter()
            .filter(|v| v.address == dst)
            .map(|v| {
                let port = v.port.map_or_else(|| "*".into(), |p| p.to_string());
                format!(":{port}/{}", v.protocol)
            })
            .collect();
        Some(match same.len() {
            0 => "no VIP has this address".into(),
            n if n <= 8 => format!("this address has only {}", same.join(", ")),
            n => format!(
                "this address has {n} VIP entries, e.g. {}",
                same[..4].join(", ")
            ),
        })
    }

    pub(crate) fn words(&self, e: &Explanation, s: Summary) -> Verdict {
        let vip = e.vip.and_then(|m| self.vip_of(m.slot).cloned());
        let vip_words = |v: &Option<VipView>, slot: Option<u32>| match v {
            Some(v) => format!("VIP {} ({})", crate::text::escape(&v.name), v.endpoint()),
            None => format!("the VIP in counter slot {}", slot.unwrap_or(u32::MAX)),
        };
        let proto_upper = s
            .protocol_name()
            .map_or_else(|| "transport".into(), |p| p.to_uppercase());
        let with_hint = |m: String| match self.hint(&s) {
            Some(h) => format!("{m} ({h})"),
            None => m,
        };
        let mut peer = None;
        let message = match e.reason {
            Reason::Marked => {
                let mut m = format!(
                    "marked {:#x} by {}",
                    e.mark.unwrap_or(0),
                    vip_words(&vip, e.vip.map(|v| v.slot))
                );
                match e.no_port {
                    Some(Reason::Fragment) => m.push_str(", as a non-first fragment (no port: matched the any-port VIP)"),
                    Some(_) => m.push_str(&format!(", {proto_upper} header cut short (no port: matched the any-port VIP)")),
                    None => {}
                }
                m
            }
            Reason::Peer => {
                let mac = s.src_mac.unwrap_or_default();
                let p = self
                    .peers
                    .iter()
                    .find(|p| p.mac == mac)
                    .cloned()
                    .unwrap_or(PeerView { mac, name: None });
                let who = match &p.name {
                    Some(n) => format!("peer {}", crate::text::escape(n)),
                    None => "a peer director".into(),
                };
                peer = Some(p);
                format!(
                    "unmarked: source {} is {who} (for {})",
                    format_mac(&mac),
                    vip_words(&vip, e.vip.map(|v| v.slot))
                )
            }
            Reason::NoVip => {
                let what = match (s.dst, s.protocol.and_then(Protocol::from_number)) {
                    (Some(a), Some(p)) => format_endpoint(a, s.port, p),
                    _ => "for this destination".into(),
                };
                with_hint(format!("unmarked: no VIP {what}"))
            }
            Reason::Fragment => {
                with_hint("unmarked: non-first fragment, only any-port VIPs can match".into())
            }
            Reason::L4Truncated => with_hint(format!(
                "unmarked: {proto_upper} header cut short, only any-port VIPs can match"
            )),
            Reason::OtherProtocol => format!(
                "unmarked: {} is not TCP, UDP or SCTP (no VIP can match)",
                s.protocol_name().unwrap_or_else(|| "the protocol".into())
            ),
            Reason::NotIp => match s.ethertype {
                Some(t) => format!("unmarked: not IPv4 or IPv6 (ethertype {t:#06x})"),
                None => "unmarked: not IPv4 or IPv6 (no EtherType)".into(),
            },
            Reason::Malformed => "unmarked: malformed IP packet (bad version or header length, lengths past the frame, or an unreadable IPv6 extension header chain; the kernel drops it)".into(),
            Reason::Nonlinear => "unmarked: a header starts more than 16 KiB into the packet (not read)".into(),
        };
        Verdict {
            verdict: if e.reason == Reason::Marked {
                "marked"
            } else {
                "unmarked"
            },
            reason: Some(e.reason.name()),
            mark: e.mark,
            vip,
            any_port: e.vip.is_some_and(|v| v.any_port),
            peer,
            packet: s,
            message,
            note: None,
        }
    }
}

fn skipped(packet: Summary, message: String, note: Option<String>) -> Verdict {
    Verdict {
        verdict: "skipped",
        reason: None,
        mark: None,
        vip: None,
        any_port: false,
        peer: None,
        packet,
        message,
        note,
    }
}

fn live_views(maps: &mut MapSet) -> Result<Vec<VipView>> {
    Ok(maps
        .live_vips()?
        .iter()
        .filter_map(VipView::from_live)
        .collect())
}

fn named_peers(macs: Vec<[u8; 6]>, config: Option<&Config>) -> Vec<PeerView> {
    macs.into_iter()
        .map(|mac| PeerView {
            mac,
            name: config.and_then(|c| {
                c.peers
                    .iter()
                    .find(|p| p.mac == mac)
                    .and_then(|p| p.name.clone())
            }),
        })
        .collect()
}

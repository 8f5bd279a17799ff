//! A lab: a sender namespace and a director namespace joined by a veth pair, one
//! contender installed in the director (none, the empty program, lvs-ebpf, its htab
//! variant, iptables or nftables) and the sender's frames; and the bare [`Director`] the
//! attach/reload measurements use.

use anyhow::{Context as _, Result};
use lvs_loader::{
    AttachOptions, Attachment, IfName, ModeChoice,
    bench_support::{self, EmptyProgram},
    datapath::{Datapath, Variant},
};

use super::{
    Contender, SkbLayout,
    rules::{iptables_rules, nft_ruleset},
};
use crate::{
    bench::workload,
    cmd::try_run,
    netns::{NetNs, PinRoot, veth},
    sender::{JUMBO_MTU, Sender, paged, vnet_hdr_linear},
};

const DIR_IF: &str = "d0";

pub(super) fn dir_if() -> IfName {
    IfName::new(DIR_IF).expect("DIR_IF is a valid interface name")
}
const GEN_IF: &str = "g0";
const DIR_ADDR: &str = "192.168.77.1/24";
/// A peer director's MAC: in every contender's peer set, never the sender's.
const PEER_MAC: [u8; 6] = [0x02, 0x50, 0, 0, 0, 0xfe];
pub(super) const BATCH: usize = 64;

/// A sender namespace and a director namespace joined by a veth pair, with one
/// contender installed in the director.
pub(super) struct Lab {
    pub(super) contender: Contender,
    /// Kept alive with the lab (dropping it deletes the sender side).
    _gen_ns: NetNs,
    pub(super) dir: NetNs,
    pub(super) sender: Sender,
    pub(super) frames: Vec<Vec<u8>>,
    pub(super) pins: PinRoot,
    /// The attached empty program (EmptyTcx only).
    empty: Option<EmptyProgram>,
    /// The attached kernel-hash-map datapath (LvsHtab only).
    pub(super) htab: Option<Datapath>,
}

impl Lab {
    pub(super) fn new(contender: Contender, i: usize, layout: SkbLayout) -> Result<Self> {
        let gen_ns = NetNs::new(&format!("bg{i}"));
        let dir = NetNs::new(&format!("bd{i}"));
        for ns in [&gen_ns, &dir] {
            // No IPv6 autoconfiguration chatter on the link during samples.
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        }
        veth(&gen_ns, GEN_IF, &dir, DIR_IF);
        if layout == SkbLayout::Paged {
            let mtu = JUMBO_MTU.to_string();
            gen_ns.ip(&["link", "set", GEN_IF, "mtu", &mtu]);
            dir.ip(&["link", "set", DIR_IF, "mtu", &mtu]);
        }
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
                    SkbLayout::Paged => paged(&f),
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
    pub(super) fn configure(&mut self, n: usize) -> Result<()> {
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

//! `import --verify`: the original rules and the imported config on the same frames.
//!
//! Frames: for every interface class the rules tell apart, every address they name (and
//! one they don't), TCP/UDP/SCTP to every port they name and the ports just outside each
//! range, ICMP, from every MAC they name and from a client MAC; plus, per address and
//! MAC, a non-first and a first IPv4 fragment, an IPv6 packet behind hop-by-hop and
//! destination-options headers, a non-first IPv6 fragment, and a VLAN-tagged frame.
//!
//! iptables side: [`super::scratch`] (iptables-legacy in an anonymous namespace, the mark
//! read right after mangle PREROUTING). lvs-ebpf side: the embedded program, loaded with
//! the imported config, through BPF_PROG_TEST_RUN.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{
    ImportResult, Imported,
    scratch::{Backend, DEV_MAC, Pinned, Scratch, VLAN_ID},
};
use crate::{
    config::{Protocol, format_endpoint, format_mac},
    datapath::Datapath,
    error::{Error, Result},
    frames::{ETH_P_8021Q, Ext, Frame, IPPROTO_ICMP, IPPROTO_ICMPV6},
    testrun,
};

/// One generated frame.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Index of the interface class it arrives on.
    pub link: usize,
    pub summary: String,
    pub frame: Vec<u8>,
    /// Its unique source address (the key of the iptables observation).
    pub src: IpAddr,
    /// `skb->mark` it arrives with (0, or [`PREMARK`] when the rules use partial masks).
    pub mark_in: u32,
}

/// The mark the second copy of every frame arrives with when some rule's mask is not
/// all 32 bits, so that what a mask keeps is compared too: every bit pattern of a
/// nibble, in every byte (`SO_MARK` on the iptables side, `ctx_in` on lvs-ebpf's).
pub const PREMARK: u32 = 0x5aa5_c33c;

/// One frame marked differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub summary: String,
    /// `iptables-legacy` or `iptables-nft`.
    pub reference: &'static str,
    pub iptables: u32,
    pub lvs_ebpf: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub frames: usize,
    /// Dropped by the rules (a DROP rule, a hot-dropping match): nothing to compare.
    pub dropped: usize,
    pub marked: usize,
    pub differences: Vec<Difference>,
    /// VLAN-tagged frames were left out: no 802.1Q support in this kernel.
    pub vlan_skipped: bool,
    /// The iptables back ends the rules ran on.
    pub references: Vec<&'static str>,
    /// Frames iptables-nft marks differently from iptables-legacy (the reference, whose
    /// xt-match semantics lvs-ebpf follows): (summary, legacy mark, nft mark).
    pub backend_differences: Vec<(String, u32, u32)>,
    /// Back ends left out, and why.
    pub skipped: Vec<String>,
}

impl Report {
    pub fn all_alike(&self) -> bool {
        self.differences.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let dropped = if self.dropped > 0 {
            format!(" ({} dropped by the rules, not compared)", self.dropped)
        } else {
            String::new()
        };
        if self.all_alike() {
            s.push_str(&format!(
                "verify: {} frames, all marked alike ({} marked){dropped}: iptables-legacy and lvs-ebpf\n",
                self.frames, self.marked
            ));
        } else {
            s.push_str(&format!(
                "verify: {} of {} frames marked differently{dropped}; the first ones:\n",
                self.differences.len(),
                self.frames
            ));
            for d in self.differences.iter().take(MAX_SHOWN) {
                s.push_str(&format!(
                    "  {}: {} {:#x}, lvs-ebpf {:#x}\n",
                    d.summary, d.reference, d.iptables, d.lvs_ebpf
                ));
            }
        }
        if self.references.contains(&"iptables-nft") {
            if self.backend_differences.is_empty() {
                s.push_str("verify: iptables-nft marks every frame like iptables-legacy\n");
            } else {
                s.push_str(&format!(
                    "verify: iptables-nft marks {} frame(s) unlike iptables-legacy (lvs-ebpf follows iptables-legacy's xt matches; nft reads ports of non-first fragments):\n",
                    self.backend_differences.len()
                ));
                for (sum, l, n) in self.backend_differences.iter().take(MAX_SHOWN / 2) {
                    s.push_str(&format!(
                        "  {sum}: iptables-legacy {l:#x}, iptables-nft {n:#x}\n"
                    ));
                }
            }
        }
        for sk in &self.skipped {
            s.push_str(&format!("verify: {sk}\n"));
        }
        if self.vlan_skipped {
            s.push_str("verify: VLAN-tagged frames left out (no 802.1Q support in this kernel: modprobe 8021q)\n");
        }
        s
    }
}

/// Differences printed at most.
pub const MAX_SHOWN: usize = 20;

/// The interface classes: the names the rules use, then one name they don't
/// ("every other interface"); and which config each gets.
pub fn classes(r: &ImportResult, configs: &[Imported]) -> Vec<(String, Option<usize>)> {
    let mut out: Vec<(String, Option<usize>)> = r
        .ifaces
        .iter()
        .map(|i| (i.clone(), configs.iter().position(|c| c.ifaces.contains(i))))
        .collect();
    let other = (0..)
        .map(|n| {
            if n == 0 {
                "lvsv-other".to_owned()
            } else {
                format!("lvsv-other{n}")
            }
        })
        .find(|n| !r.ifaces.contains(n))
        .expect("a free name");
    out.push((
        other,
        configs
            .iter()
            .position(|c| c.ifaces.iter().any(String::is_empty)),
    ));
    out
}

struct Gen {
    n: u32,
    probes: Vec<Probe>,
    mark_in: u32,
}

impl Gen {
    fn src(&mut self, v6: bool) -> IpAddr {
        self.n += 1;
        let n = self.n;
        if v6 {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0x5eed,
                0,
                0,
                0,
                0,
                (n >> 16) as u16,
                n as u16,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
        }
    }

    fn push(
        &mut self,
        link: usize,
        summary: String,
        build: impl FnOnce(IpAddr) -> Frame,
        v6: bool,
    ) {
        let src = self.src(v6);
        let frame = build(src).with_dst_mac(DEV_MAC).bytes();
        let summary = match self.mark_in {
            0 => summary,
            m => format!("{summary} arriving with mark {m:#x}"),
        };
        self.probes.push(Probe {
            link,
            summary,
            frame,
            src,
            mark_in: self.mark_in,
        });
    }
}

fn frame(mac: [u8; 6], src: IpAddr, dst: IpAddr, proto: u8, dport: u16) -> Frame {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Frame::v4(mac, s, d, proto, 40000, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => Frame::v6(mac, s, d, proto, 40000, dport),
        _ => unreachable!("families match"),
    }
}

/// The frames for `r` and its configs.
pub fn probes(
    classes: &[(String, Option<usize>)],
    r: &ImportResult,
    configs: &[Imported],
    vlan: &[bool],
) -> Vec<Probe> {
    let mut addrs: BTreeSet<IpAddr> = r.addresses.clone();
    let mut macs: BTreeSet<[u8; 6]> = r.macs.clone();
    let mut ports: BTreeSet<u16> = r.ports.clone();
    for c in configs {
        addrs.extend(c.config.vips.iter().map(|v| v.address));
        macs.extend(c.config.peers.iter().map(|p| p.mac));
        ports.extend(c.config.vips.iter().filter_map(|v| v.port));
    }
    let other4: IpAddr = [192, 0, 2, 99].into();
    let other6: IpAddr = "2001:db8:ffff::99".parse().expect("literal");
    if addrs.iter().any(IpAddr::is_ipv4) && !addrs.contains(&other4) {
        addrs.insert(other4);
    }
    if addrs.iter().any(IpAddr::is_ipv6) && !addrs.contains(&other6) {
        addrs.insert(other6);
    }
    let client = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    let client = if macs.contains(&client) {
        [0x02, 0x00, 0x5e, 0x10, 0x00, 0x09]
    } else {
        client
    };
    macs.insert(client);
    let mut test_ports: BTreeSet<u16> = BTreeSet::new();
    for &p in &ports {
        test_ports.insert(p);
        if p > 1 {
            test_ports.insert(p - 1);
        }
        if p < u16::MAX {
            test_ports.insert(p + 1);
        }
    }
    test_ports.remove(&0);
    test_ports.insert((33333..).find(|p| !ports.contains(p)).unwrap_or(33333));
    let first_port = *ports.iter().find(|&&p| p != 0).unwrap_or(&80);
    let mut g = Gen {
        n: 0,
        probes: Vec::new(),
        mark_in: 0,
    };
    // Partial masks anywhere: every frame once more, arriving already marked.
    let masked = r.masks.iter().any(|&m| m != u32::MAX)
        || configs
            .iter()
            .any(|c| c.config.vips.iter().any(|v| v.mark_mask != u32::MAX));
    let marks_in: &[u32] = if masked { &[0, PREMARK] } else { &[0] };
    for &mark_in in marks_in {
        g.mark_in = mark_in;
        for (li, (iface, _)) in classes.iter().enumerate() {
            let on = format!("on {iface}");
            for &dst in &addrs {
                let v6 = dst.is_ipv6();
                for &mac in &macs {
                    let from = format!("from {}", format_mac(&mac));
                    for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                        for &port in &test_ports {
                            g.push(
                                li,
                                format!("{} {from} {on}", format_endpoint(dst, Some(port), proto)),
                                |s| frame(mac, s, dst, proto.number(), port),
                                v6,
                            );
                        }
                    }
                    let icmp = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
                    g.push(
                        li,
                        format!("{dst} ICMP {from} {on}"),
                        |s| frame(mac, s, dst, icmp, 0),
                        v6,
                    );
                    let tcp = Protocol::Tcp.number();
                    let ep = format_endpoint(dst, Some(first_port), Protocol::Tcp);
                    if v6 {
                        g.push(
                            li,
                            format!("{ep} behind hop-by-hop and destination options {from} {on}"),
                            |s| {
                                frame(mac, s, dst, tcp, first_port)
                                    .with_ext(Ext::HopByHop { len8: 0 })
                                    .with_ext(Ext::DestOpts { len8: 1 })
                            },
                            v6,
                        );
                        g.push(
                            li,
                            format!("{ep} non-first IPv6 fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(100, true),
                            v6,
                        );
                    } else {
                        g.push(
                            li,
                            format!("{ep} non-first fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(100, true),
                            v6,
                        );
                        g.push(
                            li,
                            format!("{ep} first fragment {from} {on}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_fragment(0, true),
                            v6,
                        );
                    }
                    if vlan.get(li).copied().unwrap_or(false) {
                        g.push(
                            li,
                            format!("{ep} VLAN {VLAN_ID} tagged {from} {on}.{VLAN_ID}"),
                            |s| frame(mac, s, dst, tcp, first_port).with_vlan(ETH_P_8021Q, VLAN_ID),
                            v6,
                        );
                    }
                }
            }
        }
    }
    g.probes
}

fn sync_probe(link: usize, v6: bool) -> (IpAddr, Vec<u8>) {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "fd00:5eed:ffff::1".parse().expect("lit"),
            "2001:db8:ffff::fe".parse().expect("lit"),
        )
    } else {
        ([10, 255, 255, 254].into(), [192, 0, 2, 254].into())
    };
    let _ = link;
    (
        src,
        frame(
            [0x02, 0, 0x5e, 0x10, 0xff, 0xfe],
            src,
            dst,
            Protocol::Udp.number(),
            9,
        )
        .with_dst_mac(DEV_MAC)
        .bytes(),
    )
}

/// Marks seen per source address, and which links got a VLAN device.
type Observed = (BTreeMap<IpAddr, Vec<u32>>, Vec<bool>);

/// Runs the original rules on `probes` in the scratch namespace: source -> marks seen.
fn run_iptables(
    r: &ImportResult,
    ifaces: Vec<String>,
    probes: Vec<(usize, Vec<u8>, u32)>,
    vlan: bool,
    backend: Backend,
) -> Result<Observed> {
    let restore = r.restore.clone();
    std::thread::scope(|s| {
        s.spawn(move || -> Result<_> {
            let sc = Scratch::new(&ifaces, &restore, vlan, backend)?;
            let vlans: Vec<bool> = sc.links.iter().map(|l| l.vlan).collect();
            {
                let _pin = Pinned::here();
                for (link, f, mark_in) in &probes {
                    sc.send_marked(*link, f, *mark_in)?;
                }
                for v6 in [false, true] {
                    let (_, f) = sync_probe(0, v6);
                    sc.send(0, &f)?;
                }
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let seen = sc.seen()?;
                let synced = [false, true].iter().all(|&v6| seen.contains_key(&sync_probe(0, v6).0));
                if synced {
                    return Ok((seen, vlans));
                }
                if std::time::Instant::now() > deadline {
                    return Err(Error::Kernel("--verify: the frames never all reached netfilter in the scratch namespace (20 s)".into()));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Kernel("--verify: the scratch-namespace thread panicked".into())))
    })
}

/// Runs the whole verification.
pub fn verify(r: &ImportResult, configs: &[Imported]) -> Result<Report> {
    verify_iface(r, configs, None)
}

/// Like [`verify`], only for frames arriving on `iface` (`import --iface`): a name the
/// rules use with `-i`, or any other name for "the interfaces the rules don't name".
pub fn verify_iface(r: &ImportResult, configs: &[Imported], iface: Option<&str>) -> Result<Report> {
    crate::sys::check_privileges()?;
    let mut classes = classes(r, configs);
    if let Some(want) = iface {
        let named = r.ifaces.contains(want);
        let last = classes.len() - 1;
        classes = classes
            .into_iter()
            .enumerate()
            .filter(|(i, c)| if named { c.0 == want } else { *i == last })
            .map(|(_, c)| c)
            .collect();
    }
    let ifaces: Vec<String> = classes.iter().map(|c| c.0.clone()).collect();
    // VLAN frames only where no -i names an interface: iptables sees them on the VLAN
    // device, whose name the rules don't know.
    let want_vlan = r.ifaces.is_empty();
    // The probes assume VLAN devices; the links that could not get one skip those.
    let all = probes(&classes, r, configs, &vec![want_vlan; classes.len()]);
    let sends: Vec<(usize, Vec<u8>, u32)> = all
        .iter()
        .map(|p| (p.link, p.frame.clone(), p.mark_in))
        .collect();
    // lvs-ebpf: one loaded program per config, every frame once.
    let mut loaded: Vec<(Datapath, std::os::fd::RawFd)> = Vec::new();
    for c in configs {
        let mut dp = Datapath::load()?;
        dp.maps.apply(&c.config)?;
        let fd = dp.program_fd()?;
        loaded.push((dp, fd));
    }
    let mut bpf = Vec::with_capacity(all.len());
    for p in &all {
        bpf.push(match classes[p.link].1 {
            Some(ci) => testrun::run_skb(loaded[ci].1, &p.frame, p.mark_in, 1)?.mark,
            None => p.mark_in,
        });
    }
    let mut rep = Report::default();
    let mut legacy: Vec<Option<u32>> = Vec::new();
    for backend in [Backend::Legacy, Backend::Nft] {
        let (seen, vlans) = match run_iptables(r, ifaces.clone(), sends.clone(), want_vlan, backend)
        {
            Ok(x) => x,
            // iptables-legacy is the reference; iptables-nft is a second opinion.
            Err(e) if backend == Backend::Nft => {
                rep.skipped
                    .push(format!("{} left out: {e}", backend.name()));
                continue;
            }
            Err(e) => return Err(e),
        };
        rep.references.push(backend.name());
        if backend == Backend::Legacy {
            rep.vlan_skipped = want_vlan && !vlans.iter().all(|&v| v);
        }
        for (i, (p, &b)) in all.iter().zip(&bpf).enumerate() {
            let skip = !vlans[p.link] && p.summary.contains(" VLAN ");
            let got = if skip {
                None
            } else {
                seen.get(&p.src).map(|m| (m[0], m.len()))
            };
            if backend == Backend::Nft {
                let l = legacy.get(i).copied().flatten();
                if !skip && got.map(|g| g.0) != l {
                    rep.backend_differences.push((
                        p.summary.clone(),
                        l.unwrap_or(0),
                        got.map_or(0, |g| g.0),
                    ));
                }
                continue;
            }
            legacy.push(got.map(|g| g.0));
            if skip {
                continue;
            }
            rep.frames += 1;
            let Some((ipt, n)) = got else {
                rep.dropped += 1;
                continue;
            };
            if ipt != p.mark_in {
                rep.marked += 1;
            }
            if n > 1 || ipt != b {
                rep.differences.push(Difference {
                    summary: p.summary.clone(),
                    reference: backend.name(),
                    iptables: ipt,
                    lvs_ebpf: b,
                });
            }
        }
    }
    Ok(rep)
}

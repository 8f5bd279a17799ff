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
//!
//! Here: running both sides and comparing. `probe`: the frames; `report`: the result and
//! its rendering.

mod probe;
mod report;

pub use probe::{PREMARK, Probe, classes, probes};
pub use report::{Difference, MAX_SHOWN, Report};

use std::{collections::BTreeMap, net::IpAddr};

use super::{
    ImportResult, Imported,
    scratch::{Backend, Pinned, Scratch},
};
use crate::{
    datapath::Datapath,
    error::{Error, Result},
    testrun,
};
use probe::sync_probe;

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

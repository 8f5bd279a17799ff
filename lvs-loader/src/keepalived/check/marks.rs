//! keepalived.conf against vips.toml: every mark has its `virtual_server fwmark`, no
//! fwmark service lacks its VIPs, no VIP is scheduled by address, VRRP manages every VIP,
//! and keepalived's own marks (`nftables_ipvs`) stay clear of the config's.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    Fam, Finding, Level,
    model::{Keepalived, VsKind},
    suggest::suggest,
    vips_label,
};
use crate::{
    config::{Config, Vip, format_endpoint},
    keepalived::parse::Conf,
};

pub(super) fn check_keepalived(
    config: &Config,
    conf: &Conf,
    f: &mut Vec<Finding>,
    suggestions: &mut String,
) {
    let k = Keepalived::from_conf(conf);
    f.extend(conf.issues.iter().map(|i| Finding {
        level: Level::Problem,
        loc: Some(i.loc.clone()),
        message: i.message.clone(),
    }));
    f.extend(k.bad.iter().cloned());

    // Marks the config sets, per family.
    let mut marks: BTreeMap<(u32, Fam), Vec<&Vip>> = BTreeMap::new();
    for v in &config.vips {
        marks
            .entry((v.mark, Fam::of(v.address)))
            .or_default()
            .push(v);
    }
    let fws = k.fwmark_services();
    for ((mark, fam), vips) in &marks {
        if fws.iter().any(|(m, f, _)| m == mark && f == fam) {
            continue;
        }
        let other = fws.iter().find(|(m, _, _)| m == mark);
        let empty = k
            .services
            .iter()
            .find(|s| s.kind == VsKind::Fwmark(*mark) && s.real_servers == 0 && s.family == *fam);
        let (loc, message) = match (other, empty) {
            (_, Some(s)) => (
                Some(s.node.loc.clone()),
                format!(
                    "virtual_server fwmark {mark} has no real_server: keepalived ignores it, so mark {mark:#x} ({}) reaches no IPVS service",
                    vips_label(vips)
                ),
            ),
            (Some((_, f, s)), _) => (
                Some(s.node.loc.clone()),
                format!(
                    "virtual_server fwmark {mark} is {}, but mark {mark:#x} is set on {} VIPs ({}): add a `virtual_server fwmark {mark}` with `ip_family {}`",
                    f.name(),
                    if *fam == Fam::Inet6 { "IPv6" } else { "IPv4" },
                    vips_label(vips),
                    fam.name()
                ),
            ),
            (None, None) => (
                None,
                format!(
                    "mark {mark:#x} ({}) has no `virtual_server fwmark {mark}`{} in keepalived.conf: marked packets reach no IPVS service",
                    vips_label(vips),
                    if *fam == Fam::Inet6 {
                        " with ip_family inet6"
                    } else {
                        ""
                    }
                ),
            ),
        };
        f.push(Finding {
            level: Level::Problem,
            loc,
            message,
        });
        suggest(suggestions, *mark, *fam, vips, &k);
    }
    // Partial masks: IPVS matches `virtual_server fwmark N` against all 32 bits of
    // skb->mark (`__ip_vs_svc_fwm_find`: svc->fwmark == skb->mark), and on a miss falls
    // back to the address services.
    let mut masked: BTreeMap<(u32, u32), Vec<&Vip>> = BTreeMap::new();
    for v in config.vips.iter().filter(|v| v.mark_mask != u32::MAX) {
        masked.entry((v.mark, v.mark_mask)).or_default().push(v);
    }
    for ((mark, mask), vips) in &masked {
        let svc = fws.iter().find(|(m, _, _)| m == mark);
        f.push(Finding {
            level: Level::Warning,
            loc: svc.map(|(_, _, s)| s.node.loc.clone()),
            message: format!(
                "mark {mark:#x}/{mask:#x} ({}): lvs-ebpf sets only the bits {mask:#x}, but IPVS schedules `virtual_server fwmark {mark}` only when all 32 bits of the mark equal {mark}: a packet that arrives with any of the bits {:#x} set (by Cilium, Calico, another rule) misses the service and goes to the local stack or an address-based virtual_server; make sure nothing else sets them on VIP traffic, or clear them after routing, before IPVS (`iptables -t mangle -A INPUT -d VIP -j MARK --and-mark {mask:#x}`: mangle INPUT runs before IPVS's LOCAL_IN hook)",
                vips_label(vips),
                !mask
            ),
        });
    }
    let config_marks: BTreeSet<u32> = config.vips.iter().map(|v| v.mark).collect();
    for (m, fam, s) in &fws {
        if !config_marks.contains(m) {
            f.push(Finding { level: Level::Problem, loc: Some(s.node.loc.clone()), message: format!(
                "virtual_server fwmark {m} ({}): no VIP in the config has mark {m:#x}, so nothing is scheduled by it (unless something else marks packets {m})", fam.name()) });
        }
    }
    // VIP:port services for marked VIPs: the loop's cause.
    for (a, p, proto, s) in k.addr_services() {
        let hit = config.vips.iter().find(|v| {
            v.address == a
                && (v.port.is_none() || p.is_none() || v.port == p)
                && proto.is_none_or(|pr| pr == v.protocol)
        });
        if let Some(v) = hit {
            let port = p.map_or("*".to_owned(), |p| p.to_string());
            f.push(Finding { level: Level::Problem, loc: Some(s.node.loc.clone()), message: format!(
                "virtual_server {a} {port} schedules {} by address, not by mark: IPVS takes the packets the peer director already scheduled too (the forwarding loop); make it `virtual_server fwmark {}`",
                format_endpoint(v.address, v.port, v.protocol), v.mark) });
        }
    }
    // VIPs VRRP does not manage.
    let vrrp: BTreeSet<IpAddr> = k.vrrp_addrs.iter().map(|(a, _)| *a).collect();
    let addrs: BTreeSet<IpAddr> = config.vips.iter().map(|v| v.address).collect();
    for a in addrs.difference(&vrrp) {
        f.push(Finding { level: Level::Problem, loc: None, message: format!(
            "VIP {a} is in no vrrp_instance's virtual_ipaddress: keepalived does not move it between the directors") });
    }
    // keepalived's own marks.
    if let Some((start, loc)) = &k.nft_start {
        let n = k.auto_fwmarks() as u64;
        let end = u64::from(*start) + n;
        for m in &config_marks {
            let mu = u64::from(*m);
            if mu >= u64::from(*start) && mu < end {
                f.push(Finding { level: Level::Problem, loc: Some(loc.clone()), message: format!(
                    "mark {m:#x} ({m}) is one keepalived allocates itself: nftables_ipvs marks {n} virtual server group(s) from {start} up ({start}-{})", end - 1) });
            } else if mu >= end && n > 0 {
                f.push(Finding { level: Level::Warning, loc: Some(loc.clone()), message: format!(
                    "mark {m:#x} ({m}) is above keepalived's nftables_ipvs marks ({start}-{}): a new virtual_server_group would take it", end - 1) });
            }
        }
    }
}

//! One family's walk: every address class (VIP hosts, stand-ins for other addresses),
//! interface class, protocol, port class and source MAC through the chains, read back
//! as [`Entry`]s and problems.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    Entry,
    classes::{ClassResult, VIP_PROTOS, other_addrs, other_protos, port_intervals},
    ctx::Ctx,
};
use crate::{
    config::{Protocol, format_endpoint, format_mac},
    import::{Severity, eval::Packet, lex::Family, rule::Target},
};

/// Walks family `fam`'s packet classes; adds to `per_iface` the entries each interface
/// class marks and to `replaced_per_iface` the rules that take part.
pub(super) fn family(
    cx: &mut Ctx,
    fam: Family,
    macs: &BTreeSet<[u8; 6]>,
    client: [u8; 6],
    iface_classes: &[String],
    per_iface: &mut BTreeMap<String, Vec<Entry>>,
    replaced_per_iface: &mut BTreeMap<String, BTreeSet<usize>>,
) {
    let t = cx.t;
    let fam_rules: Vec<usize> = (0..t.rules.len())
        .filter(|&i| t.rules[i].family == fam)
        .collect();
    let mut hosts = BTreeSet::new();
    let mut prefixes = Vec::new();
    let mut protos = BTreeSet::new();
    for &i in &fam_rules {
        let r = &t.rules[i];
        if let Some(d) = &r.dst {
            if d.value.is_host() {
                hosts.insert(d.value.addr);
            } else {
                prefixes.push(d.value);
            }
        }
        if let Some(p) = &r.proto {
            protos.insert(p.value);
        }
    }
    let others = other_addrs(fam, &hosts, &prefixes);
    // Index: rules with `-d HOST` (not negated) by host; every other rule is general.
    let mut by_host: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
    let mut general = Vec::new();
    for &i in &fam_rules {
        match &t.rules[i].dst {
            Some(d) if d.value.is_host() && !d.negated => {
                by_host.entry(d.value.addr).or_default().push(i)
            }
            _ => general.push(i),
        }
    }
    let nonvip_protos = other_protos(&protos);
    let addrs: Vec<(IpAddr, bool)> = hosts
        .iter()
        .map(|a| (*a, true))
        .chain(others.iter().map(|a| (*a, false)))
        .collect();
    for (addr, is_host) in addrs {
        // Rules naming this host, plus those that name no single host.
        let mut relevant: Vec<usize> = general
            .iter()
            .copied()
            .filter(|&i| t.may_match_addr(&t.rules[i], addr))
            .collect();
        relevant.extend(by_host.get(&addr).into_iter().flatten().copied());
        relevant.sort_unstable();
        let keep = t.chains_for(&relevant);
        for iface in iface_classes {
            let shown_if = |what: String| {
                if iface.is_empty() {
                    what
                } else {
                    format!("{what} on {iface}")
                }
            };
            // Protocols that are no VIP protocol, and addresses that are no VIP,
            // must come out unmarked.
            let check_unmarked = |cx: &mut Ctx, p: &Packet, what: String| {
                let o = t.eval(fam, p, &keep);
                cx.note_uncertain(&o, &what);
                if o.mark != 0
                    && let Some(s) = o.setter
                {
                    cx.rule_problem(
                        s,
                        Severity::Error,
                        format!("marks {what} ({:#x}): vips.toml marks only tcp/udp/sctp packets to the VIP addresses it lists", o.mark),
                    );
                }
            };
            for &proto in &nonvip_protos {
                for mac in macs.iter().copied().chain([client]) {
                    let p = Packet {
                        iface,
                        addr,
                        proto,
                        port: None,
                        mac,
                    };
                    check_unmarked(cx, &p, shown_if(format!("protocol {proto} to {addr}")));
                }
            }
            for proto in VIP_PROTOS {
                let protocol = Protocol::from_number(proto).expect("vip proto");
                let intervals = port_intervals(t, &relevant, proto);
                if !is_host {
                    for &(lo, _) in &intervals {
                        for port in [Some(lo), None] {
                            for mac in macs.iter().copied().chain([client]) {
                                let p = Packet {
                                    iface,
                                    addr,
                                    proto,
                                    port,
                                    mac,
                                };
                                check_unmarked(
                                    cx,
                                    &p,
                                    shown_if(format!(
                                        "{} (an address the rules name no VIP for)",
                                        format_endpoint(addr, port, protocol)
                                    )),
                                );
                            }
                        }
                    }
                    continue;
                }
                let mut classes: Vec<ClassResult> = Vec::new();
                for class in intervals.iter().map(|&iv| Some(iv)).chain([None]) {
                    let port = class.map(|(lo, _)| lo);
                    let what = shown_if(match class {
                        Some((lo, hi)) if lo != hi => format!(
                            "{}-{hi}/{protocol}",
                            format_endpoint(addr, Some(lo), protocol)
                                .trim_end_matches(&format!("/{protocol}"))
                        ),
                        Some((lo, _)) => format_endpoint(addr, Some(lo), protocol),
                        None => format!(
                            "non-first fragments to {}",
                            format_endpoint(addr, None, protocol)
                        ),
                    });
                    // The same packet from a given source MAC.
                    let from = |mac| {
                        t.eval(
                            fam,
                            &Packet {
                                iface,
                                addr,
                                proto,
                                port,
                                mac,
                            },
                            &keep,
                        )
                    };
                    let c = from(client);
                    cx.note_uncertain(&c, &what);
                    let repl = replaced_per_iface.entry(iface.clone()).or_default();
                    if c.mark != 0 {
                        repl.extend(c.marked_by.iter().copied());
                        repl.extend(c.jumps.iter().copied());
                    }
                    let mut excluded = BTreeSet::new();
                    for &m in macs {
                        let o = from(m);
                        cx.note_uncertain(&o, &what);
                        if o.dropped || c.dropped {
                            continue;
                        }
                        if (o.mark, o.mask) == (c.mark, c.mask) {
                            continue;
                        }
                        let culprit = o
                            .setter
                            .or(c.setter)
                            .or_else(|| o.mac_rules.first().copied());
                        if c.mark != 0 && o.mark == 0 && o.mask == 0 {
                            excluded.insert(m);
                            let repl = replaced_per_iface.entry(iface.clone()).or_default();
                            repl.extend(o.mac_rules.iter().copied());
                            repl.extend(o.jumps.iter().copied());
                        } else if let Some(s) = culprit {
                            let reason = if c.mark == 0 {
                                format!(
                                    "marks {what} only from {} ({:#x}): vips.toml marks every source but the peers alike",
                                    format_mac(&m),
                                    o.mark
                                )
                            } else {
                                format!(
                                    "{what}: source {} gets mark {:#x}, other sources {:#x}: vips.toml marks every source but the peers alike",
                                    format_mac(&m),
                                    o.mark,
                                    c.mark
                                )
                            };
                            cx.rule_problem(s, Severity::Error, reason);
                        }
                    }
                    if c.mark != 0 && !c.dropped {
                        let mut rules: BTreeSet<usize> = c.setter.into_iter().collect();
                        rules.extend(c.jumps.iter().copied());
                        // Overwritten marks: iptables applies the last, and so do we.
                        let distinct: BTreeSet<u32> = c
                            .marked_by
                            .iter()
                            .filter_map(|&i| match t.rules[i].target {
                                Target::Mark { value, .. } => Some(value),
                                _ => None,
                            })
                            .collect();
                        if distinct.len() > 1
                            && let Some(s) = c.setter
                        {
                            for &i in &c.marked_by {
                                let (a, b) = (&t.rules[i], &t.rules[s]);
                                // Only rules for the same VIP:port (an any-port rule
                                // under an exact one is the recipe's normal layering).
                                let same_spec = a.dst == b.dst
                                    && a.proto == b.proto
                                    && a.dports == b.dports
                                    && a.iface == b.iface;
                                if i != s && a.target != b.target && same_spec {
                                    cx.rule_problem(i, Severity::Warning, format!(
                                        "its mark is overwritten for {what} by line {} ({:#x}); the config uses {:#x}, as iptables does",
                                        t.rules[s].line, c.mark, c.mark));
                                }
                            }
                        }
                        rules.extend(c.marked_by.iter().copied().filter(|&i| Some(i) == c.setter));
                        classes.push((class, (c.mark, c.mask), excluded, rules));
                    }
                }
                // Any-port: the non-first fragment class is marked.
                let frag = classes.iter().find(|c| c.0.is_none()).cloned();
                let entries = per_iface.entry(iface.clone()).or_default();
                if let Some((_, fmark, fpeers, frules)) = &frag {
                    entries.push(Entry {
                        addr,
                        port: None,
                        proto: protocol,
                        mark: fmark.0,
                        mask: fmark.1,
                        peers: fpeers.clone(),
                        rules: frules.clone(),
                    });
                }
                // Port intervals.
                let marked: BTreeSet<(u16, u16)> = classes.iter().filter_map(|c| c.0).collect();
                for &(lo, hi) in &intervals {
                    let cl = classes.iter().find(|c| c.0 == Some((lo, hi)));
                    match (cl, &frag) {
                        (Some((_, m, peers, rules)), Some((_, fm, fpeers, _)))
                            if m == fm && peers == fpeers =>
                        {
                            let _ = rules;
                        }
                        (Some((_, m, peers, rules)), _) => {
                            let first = lo.max(1);
                            if lo == 0
                                && let Some(&s) = rules.iter().next()
                            {
                                cx.rule_problem(
                                    s,
                                    Severity::Error,
                                    format!(
                                        "marks port 0 of {}: vips.toml ports are 1-65535",
                                        format_endpoint(addr, None, protocol)
                                    ),
                                );
                            }
                            for port in first..=hi {
                                if lo == 0 && hi == 0 {
                                    break;
                                }
                                entries.push(Entry {
                                    addr,
                                    port: Some(port),
                                    proto: protocol,
                                    mark: m.0,
                                    mask: m.1,
                                    peers: peers.clone(),
                                    rules: rules.clone(),
                                });
                            }
                        }
                        (None, Some((_, _, _, frules))) => {
                            if let Some(&s) = frules.iter().next() {
                                let what = shown_if(format!("{}:{lo}-{hi}/{protocol}", addr));
                                cx.rule_problem(s, Severity::Error, format!(
                                    "marks every port of {} (fragments too) but not {what}: vips.toml can't express an any-port VIP with holes",
                                    format_endpoint(addr, None, protocol)));
                            }
                        }
                        (None, None) => {}
                    }
                }
                let _ = marked;
            }
        }
    }
}

//! From rules to VIPs: every packet class the rules can tell apart (destination address,
//! protocol, destination-port interval or non-first fragment, source MAC, input
//! interface) is walked through the chains once ([`super::eval`]), and the outcomes are
//! read back as vips.toml entries: a VIP is what a client (a MAC no rule names) gets
//! marked for, its peers are the MACs that get no mark there.
//!
//! Whatever vips.toml can't say is a [`Problem`] naming the rule that causes it: marks
//! that depend on unmodelled matches, marks on addresses or protocols that are no VIP,
//! marks that differ between source MACs, any-port marks with holes, and VIPs with
//! different peer sets (peers are global in vips.toml).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{
    Problem, Severity,
    eval::{Outcome, Packet, Tables},
    lex::Family,
    rule::Target,
};
use crate::config::{Protocol, format_endpoint, format_mac};

/// The interface class of rules without `-i` matching every other interface.
pub const OTHER_IFACE: &str = "";

/// One VIP as the rules mark it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub proto: Protocol,
    pub mark: u32,
    /// The bits of the mark the rules set ([`super::eval::Outcome::mask`]).
    pub mask: u32,
    /// MACs whose packets the rules leave unmarked here.
    pub peers: BTreeSet<[u8; 6]>,
    /// Rule indices that set the mark.
    pub rules: BTreeSet<usize>,
}

/// The result for one interface class.
#[derive(Clone, Debug, Default)]
pub struct IfaceResult {
    pub entries: Vec<Entry>,
    /// The peers of the config (all entries share them, or a problem says otherwise).
    pub peers: BTreeSet<[u8; 6]>,
    /// peer MAC -> rule indices naming it.
    pub peer_rules: BTreeMap<[u8; 6], BTreeSet<usize>>,
    /// Rules this config replaces (MARK rules, jumps to them, peer exclusions).
    pub replaced: BTreeSet<usize>,
}

#[derive(Default)]
pub struct Analysis {
    /// Interface name (or [`OTHER_IFACE`]) -> result.
    pub ifaces: BTreeMap<String, IfaceResult>,
    pub problems: Vec<Problem>,
    /// Rules some config replaces (MARK rules and peer exclusions that took part).
    pub replaced: BTreeSet<usize>,
}

pub struct Options {
    /// Take the union of differing peer sets instead of failing.
    pub merge_peers: bool,
}

const CLIENT_MACS: [[u8; 6]; 3] = [
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01],
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02],
    [0x02, 0x00, 0x5e, 0x10, 0x00, 0x03],
];
const VIP_PROTOS: [u8; 3] = [6, 17, 132];

fn other_protos(mentioned: &BTreeSet<u8>) -> Vec<u8> {
    let mut v: Vec<u8> = mentioned
        .iter()
        .copied()
        .filter(|p| !VIP_PROTOS.contains(p))
        .collect();
    if let Some(p) = [47u8, 50, 1, 2, 253]
        .into_iter()
        .find(|p| !mentioned.contains(p))
    {
        v.push(p);
    }
    v
}

/// Addresses no rule names and inside no named prefix... plus one inside each non-host
/// prefix: stand-ins for "any other address".
fn other_addrs(
    family: Family,
    hosts: &BTreeSet<IpAddr>,
    prefixes: &[super::rule::Net],
) -> Vec<IpAddr> {
    let cands: Vec<IpAddr> = match family {
        Family::V4 => [
            [192, 0, 2, 77],
            [198, 51, 100, 77],
            [203, 0, 113, 77],
            [100, 64, 7, 77],
            [10, 254, 253, 77],
        ]
        .into_iter()
        .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
        .collect(),
        Family::V6 => [
            "2001:db8:ffff::77",
            "3fff:ffff::77",
            "fd00:ffff::77",
            "2001:db8:fffe::77",
        ]
        .into_iter()
        .map(|s| s.parse().expect("literal"))
        .collect(),
    };
    let mut out = Vec::new();
    if let Some(a) = cands
        .iter()
        .find(|a| !hosts.contains(a) && !prefixes.iter().any(|p| p.contains(**a)))
    {
        out.push(*a);
    }
    for p in prefixes {
        for k in 1u32..8 {
            let a = match p.addr {
                IpAddr::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n).wrapping_add(k))),
                IpAddr::V6(n) => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(n).wrapping_add(u128::from(k))))
                }
            };
            if p.contains(a) && !hosts.contains(&a) {
                if !out.contains(&a) {
                    out.push(a);
                }
                break;
            }
        }
    }
    out
}

/// Port classes of `addr`/`proto`: the starts of intervals on which every port range of
/// the relevant rules is constant.
fn port_intervals(t: &Tables, relevant: &[usize], proto: u8) -> Vec<(u16, u16)> {
    let mut cuts: BTreeSet<u32> = [0u32, 65536].into();
    for &i in relevant {
        let r = &t.rules[i];
        if r.proto
            .as_ref()
            .is_some_and(|p| !p.negated && p.value != proto)
        {
            continue;
        }
        if let Some(d) = &r.dports {
            for &(lo, hi) in &d.value {
                cuts.insert(u32::from(lo));
                cuts.insert(u32::from(hi) + 1);
            }
        }
    }
    let c: Vec<u32> = cuts.into_iter().collect();
    c.windows(2)
        .map(|w| (w[0] as u16, (w[1] - 1) as u16))
        .collect()
}

/// A port class's outcome: (ports, or `None` for non-first fragments; client mark and
/// mask; excluded MACs; rules that set the mark).
type ClassResult = (
    Option<(u16, u16)>,
    (u32, u32),
    BTreeSet<[u8; 6]>,
    BTreeSet<usize>,
);

struct Ctx<'a> {
    t: &'a Tables,
    problems: BTreeMap<(usize, String), Problem>,
}

impl Ctx<'_> {
    /// One message per rule and severity (the first packet class that shows it).
    fn rule_problem(&mut self, idx: usize, severity: Severity, reason: String) {
        let r = &self.t.rules[idx];
        let key = (idx, format!("{severity:?}"));
        self.problems.entry(key).or_insert(Problem {
            line: Some(r.line),
            text: r.text.clone(),
            reason,
            severity,
        });
    }

    fn note_uncertain(&mut self, o: &Outcome, what: &str) {
        for &u in &o.uncertain {
            let r = &self.t.rules[u];
            let why = if !r.unknown.is_empty() {
                format!(
                    "its match {} can't be translated and decides the mark of {what}",
                    r.unknown.join(", ")
                )
            } else {
                match &r.target {
                    Target::OtherMark(s) => {
                        format!("{s} changes marks in a way vips.toml can't express ({what})")
                    }
                    Target::Jump(c) | Target::Goto(c) => format!(
                        "jumps to {c}, which is neither a chain of this table nor a known target ({what})"
                    ),
                    Target::Other(s) => {
                        format!("target {s} is not modelled and decides what happens to {what}")
                    }
                    _ => format!("decides the mark of {what} in a way that can't be modelled"),
                }
            };
            self.rule_problem(u, Severity::Error, why);
        }
        if let Some((idx, why)) = &o.broken {
            self.rule_problem(*idx, Severity::Error, why.clone());
        }
    }
}

/// Analyses the mangle chains in `t`.
pub fn analyse(t: &Tables, opts: &Options) -> Analysis {
    let mut cx = Ctx {
        t,
        problems: BTreeMap::new(),
    };
    let mut an = Analysis::default();
    let families: BTreeSet<Family> = t.chains.keys().map(|k| k.0).collect();
    let mut macs: BTreeSet<[u8; 6]> = BTreeSet::new();
    let mut ifaces: BTreeSet<String> = BTreeSet::new();
    for r in &t.rules {
        macs.extend(r.macs.iter().map(|m| m.value));
        if let Some(i) = &r.iface {
            ifaces.insert(i.value.clone());
        }
    }
    let client = CLIENT_MACS
        .into_iter()
        .find(|m| !macs.contains(m))
        .unwrap_or([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    let mut iface_classes: Vec<String> = ifaces.iter().cloned().collect();
    iface_classes.push(OTHER_IFACE.to_owned());
    // Per interface class: entries keyed by (addr, port, proto).
    let mut per_iface: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut replaced_per_iface: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();

    for fam in families {
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
            for iface in &iface_classes {
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
                        check_unmarked(
                            &mut cx,
                            &p,
                            shown_if(format!("protocol {proto} to {addr}")),
                        );
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
                                        &mut cx,
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
                        let c = t.eval(
                            fam,
                            &Packet {
                                iface,
                                addr,
                                proto,
                                port,
                                mac: client,
                            },
                            &keep,
                        );
                        cx.note_uncertain(&c, &what);
                        let repl = replaced_per_iface.entry(iface.clone()).or_default();
                        if c.mark != 0 {
                            repl.extend(c.marked_by.iter().copied());
                            repl.extend(c.jumps.iter().copied());
                        }
                        let mut excluded = BTreeSet::new();
                        for &m in &macs {
                            let o = t.eval(
                                fam,
                                &Packet {
                                    iface,
                                    addr,
                                    proto,
                                    port,
                                    mac: m,
                                },
                                &keep,
                            );
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
                            rules.extend(
                                c.marked_by.iter().copied().filter(|&i| Some(i) == c.setter),
                            );
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

    // Peers per interface class.
    for (iface, entries) in per_iface {
        if entries.is_empty() {
            continue;
        }
        let replaced = replaced_per_iface.remove(&iface).unwrap_or_default();
        an.replaced.extend(replaced.iter().copied());
        let mut res = IfaceResult {
            entries,
            replaced,
            ..IfaceResult::default()
        };
        let mut sets: BTreeMap<BTreeSet<[u8; 6]>, Vec<usize>> = BTreeMap::new();
        for (i, e) in res.entries.iter().enumerate() {
            sets.entry(e.peers.clone()).or_default().push(i);
            res.peers.extend(e.peers.iter().copied());
        }
        for t_rule in 0..t.rules.len() {
            for m in &t.rules[t_rule].macs {
                if res.peers.contains(&m.value) && res.replaced.contains(&t_rule) {
                    res.peer_rules.entry(m.value).or_default().insert(t_rule);
                }
            }
        }
        let on = if iface.is_empty() {
            String::new()
        } else {
            format!(" on {iface}")
        };
        if sets.len() > 1 {
            let mut msg = format!(
                "the VIPs{on} exclude different peer MACs, and vips.toml's peers are global:"
            );
            for (set, idx) in &sets {
                let names: Vec<String> = idx
                    .iter()
                    .take(4)
                    .map(|&i| {
                        let e = &res.entries[i];
                        let lines: Vec<String> = e
                            .rules
                            .iter()
                            .map(|&r| t.rules[r].line.to_string())
                            .collect();
                        format!(
                            "{} (line {})",
                            format_endpoint(e.addr, e.port, e.proto),
                            lines.join(",")
                        )
                    })
                    .collect();
                let more = if idx.len() > 4 {
                    format!(" and {} more", idx.len() - 4)
                } else {
                    String::new()
                };
                let peers: Vec<String> = set.iter().map(format_mac).collect();
                msg.push_str(&format!(
                    "\n    peers {{{}}}: {}{more}",
                    peers.join(", "),
                    names.join(", ")
                ));
            }
            if opts.merge_peers {
                msg.push_str("\n    --merge-peers: using the union; exact only as long as each merged MAC never sends to the VIPs that did not exclude it (e.g. it sits on another NIC's segment)");
            } else {
                msg.push_str("\n    split the rules per interface (-i), or use --merge-peers when each peer MAC can only reach its own VIPs (one MAC per NIC, as in the two-NIC seed example)");
            }
            cx.problems.insert(
                (usize::MAX, format!("peers{iface}")),
                Problem {
                    line: None,
                    text: String::new(),
                    reason: msg,
                    severity: if opts.merge_peers {
                        Severity::Warning
                    } else {
                        Severity::Error
                    },
                },
            );
        }
        if res.peers.is_empty() {
            let e = &res.entries[0];
            let line = e.rules.iter().next().map(|&r| t.rules[r].line);
            cx.problems.insert((usize::MAX - 1, format!("nopeers{iface}")), Problem {
                line,
                text: line.and_then(|_| e.rules.iter().next().map(|&r| t.rules[r].text.clone())).unwrap_or_default(),
                reason: format!("the rules{on} mark packets from every source MAC (no `-m mac ! --mac-source PEER`): that is not the recipe, and vips.toml needs at least one peer"),
                severity: Severity::Error,
            });
        }
        an.ifaces.insert(iface, res);
    }
    an.problems = cx.problems.into_values().collect();
    an
}

//! `check --keepalived`: does keepalived.conf use the marks vips.toml sets, and does the
//! peer director's vips.toml fit this one?
//!
//! What keepalived does with the configuration (from its sources):
//! * `virtual_server fwmark N` (`alloc_vs`), family from `ip_family`, else from its real
//!   (or sorry) servers' addresses, else IPv4 (`vs_end_handler`); a virtual server with
//!   no `real_server` is dropped ("has no real servers - ignoring");
//! * `virtual_server group NAME` with `virtual_server_group NAME { fwmark N [inet|inet6]
//!   ... IP PORT ... }` (`alloc_vsg_entry`);
//! * with `nftables_ipvs` in global_defs, every virtual server whose group has no
//!   `fwmark` entry gets a mark of keepalived's own per protocol, counting up from
//!   `nftables_ipvs_start_fwmark` (default 1000, `get_next_fwmark()` in
//!   check_nftables.c): vips.toml must not use those.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
};

use super::parse::{Conf, Loc, Node};
use crate::config::{Config, Protocol, Vip, format_endpoint, format_mac};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Exit 1.
    Problem,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub loc: Option<Loc>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fam {
    Inet,
    Inet6,
}

impl Fam {
    fn of(a: IpAddr) -> Self {
        if a.is_ipv6() { Self::Inet6 } else { Self::Inet }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
        }
    }
}

/// A `virtual_server` block.
#[derive(Clone, Debug)]
pub struct VirtualServer<'a> {
    pub node: &'a Node,
    pub kind: VsKind,
    pub family: Fam,
    pub protocol: Option<Protocol>,
    pub real_servers: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsKind {
    Fwmark(u32),
    Addr(IpAddr, Option<u16>),
    Group(String),
}

/// A `virtual_server_group`.
#[derive(Clone, Debug)]
pub struct Group {
    /// `fwmark N [inet|inet6]` entries.
    pub fwmarks: Vec<(u32, Option<Fam>)>,
    /// `IP[-range|/mask] [PORT]` entries (first address).
    pub addrs: Vec<(IpAddr, Option<u16>)>,
    pub loc: Loc,
}

/// What keepalived.conf says, as far as the marks are concerned.
#[derive(Debug, Default)]
pub struct Keepalived<'a> {
    pub services: Vec<VirtualServer<'a>>,
    pub groups: BTreeMap<String, Group>,
    /// Addresses of `virtual_ipaddress` / `virtual_ipaddress_excluded` of vrrp_instances.
    pub vrrp_addrs: Vec<(IpAddr, Loc)>,
    /// `nftables_ipvs` given: keepalived's marks start here.
    pub nft_start: Option<(u32, Loc)>,
    pub bad: Vec<Finding>,
}

fn parse_u32(s: &str) -> Option<u32> {
    // keepalived reads these with strtoul base 10 (read_unsigned).
    s.parse().ok()
}

fn addr_of(s: &str) -> Option<IpAddr> {
    s.split('/').next()?.parse().ok()
}

fn protocol_of(node: &Node) -> Option<Protocol> {
    node.all("protocol")
        .last()
        .and_then(|p| p.arg(1))
        .and_then(|p| p.parse().ok())
}

impl<'a> Keepalived<'a> {
    pub fn from_conf(conf: &'a Conf) -> Self {
        let mut k = Keepalived::default();
        for n in &conf.top {
            match n.keyword() {
                "global_defs" => {
                    if let Some(nf) = n.all("nftables_ipvs").last() {
                        let start = n
                            .all("nftables_ipvs_start_fwmark")
                            .last()
                            .and_then(|s| s.arg(1))
                            .and_then(parse_u32)
                            .unwrap_or(1000);
                        k.nft_start = Some((start, nf.loc.clone()));
                    }
                }
                "virtual_server" => k.virtual_server(n),
                "virtual_server_group" => {
                    let Some(name) = n.arg(1) else { continue };
                    let mut fw = Vec::new();
                    let mut addrs = Vec::new();
                    for e in &n.children {
                        if e.keyword() == "fwmark" {
                            if let Some(m) = e.arg(1).and_then(parse_u32) {
                                let fam = match e.arg(2) {
                                    Some("inet6") => Some(Fam::Inet6),
                                    Some("inet") => Some(Fam::Inet),
                                    _ => None,
                                };
                                fw.push((m, fam));
                            }
                        } else if let Some(a) = addr_of(e.keyword().split('-').next().unwrap_or(""))
                        {
                            addrs.push((
                                a,
                                e.arg(1)
                                    .and_then(|p| p.parse().ok())
                                    .filter(|&p: &u16| p != 0),
                            ));
                        }
                    }
                    k.groups.insert(
                        name.to_owned(),
                        Group {
                            fwmarks: fw,
                            addrs,
                            loc: n.loc.clone(),
                        },
                    );
                }
                "vrrp_instance" => {
                    for kw in ["virtual_ipaddress", "virtual_ipaddress_excluded"] {
                        for block in n.all(kw) {
                            for e in &block.children {
                                if let Some(a) = addr_of(e.keyword()) {
                                    k.vrrp_addrs.push((a, e.loc.clone()));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        k
    }

    fn virtual_server(&mut self, n: &'a Node) {
        let (Some(a1), a2) = (n.arg(1), n.arg(2)) else {
            self.bad.push(Finding {
                level: Level::Problem,
                loc: Some(n.loc.clone()),
                message: "virtual_server without an address, fwmark or group".into(),
            });
            return;
        };
        let kind = match a1 {
            "fwmark" => match a2.and_then(parse_u32) {
                Some(m) => VsKind::Fwmark(m),
                None => {
                    self.bad.push(Finding {
                        level: Level::Problem,
                        loc: Some(n.loc.clone()),
                        message: format!(
                            "virtual_server fwmark {:?}: not a mark",
                            a2.unwrap_or("")
                        ),
                    });
                    return;
                }
            },
            "group" => VsKind::Group(a2.unwrap_or("").to_owned()),
            a => match a.parse::<IpAddr>() {
                Ok(ip) => VsKind::Addr(
                    ip,
                    a2.and_then(|p| p.parse().ok()).filter(|&p: &u16| p != 0),
                ),
                Err(_) => {
                    self.bad.push(Finding {
                        level: Level::Problem,
                        loc: Some(n.loc.clone()),
                        message: format!(
                            "virtual_server {}: not an address",
                            crate::text::excerpt(a, 64)
                        ),
                    });
                    return;
                }
            },
        };
        let rs: Vec<&Node> = n.all("real_server").collect();
        let family = match n.all("ip_family").last().and_then(|f| f.arg(1)) {
            Some("inet6") => Fam::Inet6,
            Some(_) => Fam::Inet,
            None => match &kind {
                VsKind::Addr(a, _) => Fam::of(*a),
                _ => rs
                    .iter()
                    .chain(n.all("sorry_server").collect::<Vec<_>>().iter())
                    .find_map(|r| r.arg(1).and_then(addr_of))
                    .map_or(Fam::Inet, Fam::of),
            },
        };
        self.services.push(VirtualServer {
            node: n,
            kind,
            family,
            protocol: protocol_of(n),
            real_servers: rs.len(),
        });
    }

    /// (mark, family) of every fwmark service keepalived would install, with its block.
    fn fwmark_services(&self) -> Vec<(u32, Fam, &VirtualServer<'a>)> {
        let mut out = Vec::new();
        for s in &self.services {
            if s.real_servers == 0 {
                continue;
            }
            match &s.kind {
                VsKind::Fwmark(m) => out.push((*m, s.family, s)),
                VsKind::Group(g) => {
                    if let Some(grp) = self.groups.get(g) {
                        for (m, f) in &grp.fwmarks {
                            out.push((*m, f.unwrap_or(s.family), s));
                        }
                    }
                }
                VsKind::Addr(..) => {}
            }
        }
        out
    }

    /// Address services (VIP:port, not fwmark): (addr, port, protocol, block).
    fn addr_services(&self) -> Vec<(IpAddr, Option<u16>, Option<Protocol>, &VirtualServer<'a>)> {
        let mut out = Vec::new();
        for s in &self.services {
            match &s.kind {
                VsKind::Addr(a, p) => out.push((*a, *p, s.protocol, s)),
                VsKind::Group(g) => {
                    if let Some(grp) = self.groups.get(g) {
                        out.extend(grp.addrs.iter().map(|(a, p)| (*a, *p, s.protocol, s)));
                    }
                }
                VsKind::Fwmark(_) => {}
            }
        }
        out
    }

    /// How many marks keepalived allocates itself (nftables_ipvs): one per protocol of
    /// every virtual server whose group has no fwmark entry.
    fn auto_fwmarks(&self) -> usize {
        let mut seen = BTreeSet::new();
        for s in &self.services {
            if let VsKind::Group(g) = &s.kind
                && let Some(grp) = self.groups.get(g)
                && grp.fwmarks.is_empty()
            {
                seen.insert((g.clone(), s.protocol.unwrap_or(Protocol::Tcp)));
            }
        }
        seen.len()
    }
}

fn vips_label(vips: &[&Vip]) -> String {
    let mut v: Vec<String> = vips
        .iter()
        .take(3)
        .map(|v| format_endpoint(v.address, v.port, v.protocol))
        .collect();
    if vips.len() > 3 {
        v.push(format!("and {} more", vips.len() - 3));
    }
    v.join(", ")
}

/// MACs of this host's interfaces in the current network namespace (if_nameindex and
/// SIOCGIFHWADDR: /sys/class/net would show the namespace sysfs was mounted in), with
/// their names.
pub fn local_macs() -> BTreeMap<[u8; 6], String> {
    let mut out = BTreeMap::new();
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return out;
    }
    // SAFETY: if_nameindex returns a list ending with a zero entry, freed below.
    let list = unsafe { libc::if_nameindex() };
    if !list.is_null() {
        let mut p = list;
        // SAFETY: walking the list up to its terminator.
        while unsafe { (*p).if_index } != 0 {
            // SAFETY: if_name is a NUL-terminated string of at most IFNAMSIZ bytes.
            let name = unsafe { std::ffi::CStr::from_ptr((*p).if_name) };
            // SAFETY: an all-zero ifreq is valid; the name fits (kernel names do).
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, s) in req
                .ifr_name
                .iter_mut()
                .zip(name.to_bytes().iter().take(libc::IFNAMSIZ - 1))
            {
                *d = *s as libc::c_char;
            }
            // SAFETY: SIOCGIFHWADDR fills req.ifr_ifru.
            // `as _`: the request is a c_ulong in glibc's ioctl and a c_int in musl's (the
            // package's static build).
            if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR as _, &mut req) } == 0 {
                // SAFETY: the kernel filled ifru_hwaddr.
                let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
                let mut mac = [0u8; 6];
                for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
                    *m = *b as u8;
                }
                if mac != [0; 6] {
                    out.entry(mac)
                        .or_insert_with(|| name.to_string_lossy().into_owned());
                }
            }
            // SAFETY: still inside the list.
            p = unsafe { p.add(1) };
        }
        // SAFETY: returned by if_nameindex.
        unsafe { libc::if_freenameindex(list) };
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    out
}

/// Everything `check --keepalived` reports.
pub struct Report {
    pub findings: Vec<Finding>,
    /// `--suggest`: keepalived blocks for the missing services.
    pub suggestions: String,
}

/// The cross-check. `local` are this host's MACs (for the peer checks).
/// `conf` `None`: only the peer checks.
pub fn check(
    config: &Config,
    conf: Option<&Conf>,
    peer: Option<&Config>,
    local: &BTreeMap<[u8; 6], String>,
) -> Report {
    let mut f = Vec::new();
    let mut suggestions = String::new();
    if let Some(conf) = conf {
        check_keepalived(config, conf, &mut f, &mut suggestions);
    }
    if let Some(p) = peer {
        check_peer(config, p, local, &mut f);
    }
    f.sort_by(|a, b| {
        (a.level, a.loc.as_ref().map(|l| (l.file.clone(), l.line)))
            .cmp(&(b.level, b.loc.as_ref().map(|l| (l.file.clone(), l.line))))
    });
    Report {
        findings: f,
        suggestions,
    }
}

fn check_keepalived(config: &Config, conf: &Conf, f: &mut Vec<Finding>, suggestions: &mut String) {
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

fn check_peer(
    config: &Config,
    p: &Config,
    local: &BTreeMap<[u8; 6], String>,
    f: &mut Vec<Finding>,
) {
    {
        let own_peers: BTreeSet<[u8; 6]> = config.peers.iter().map(|x| x.mac).collect();
        let their_peers: BTreeSet<[u8; 6]> = p.peers.iter().map(|x| x.mac).collect();
        for m in own_peers.intersection(&their_peers) {
            f.push(Finding { level: Level::Problem, loc: None, message: format!(
                "{} is a peer in both configs: each lists the OTHER director's MACs, so one MAC can't be in both", format_mac(m)) });
        }
        if !local.is_empty() {
            for m in &their_peers {
                if !local.contains_key(m) && !own_peers.contains(m) {
                    f.push(Finding { level: Level::Problem, loc: None, message: format!(
                        "the peer config lists {} as its peer (this director), but no interface of this host has that MAC: the peer will mark, and schedule again, what this director forwards to it", format_mac(m)) });
                }
            }
            for m in &own_peers {
                if let Some(dev) = local.get(m) {
                    f.push(Finding { level: Level::Problem, loc: None, message: format!(
                        "peer {} is this host's own MAC ({}): the peer list must name the OTHER director's MACs", format_mac(m), crate::text::escape(dev)) });
                }
            }
        }
        let key = |v: &Vip| (v.address, v.port, v.protocol);
        let theirs: BTreeMap<_, &Vip> = p.vips.iter().map(|v| (key(v), v)).collect();
        for v in &config.vips {
            match theirs.get(&key(v)) {
                Some(t) if t.mark == v.mark => f.push(Finding { level: Level::Warning, loc: None, message: format!(
                    "{} has mark {:#x} on both directors: it works (marks never leave the host), but distinct marks per director (the recipe's 3/4) tell in ipvsadm and captures which director classified a packet",
                    format_endpoint(v.address, v.port, v.protocol), v.mark) }),
                Some(_) => {}
                None => f.push(Finding { level: Level::Warning, loc: None, message: format!(
                    "{} is marked here but not by the peer director: packets it receives for it are not marked there",
                    format_endpoint(v.address, v.port, v.protocol)) }),
            }
        }
    }
}

/// Renders a node back as keepalived text.
fn render(out: &mut String, n: &Node, indent: usize) {
    let words: Vec<String> = n
        .words
        .iter()
        .map(|w| {
            if w.contains([' ', '\t', '#', '!', '{', '}']) || w.is_empty() {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect();
    let pad = "    ".repeat(indent);
    if n.has_block {
        let _ = writeln!(out, "{pad}{} {{", words.join(" "));
        for c in &n.children {
            render(out, c, indent + 1);
        }
        let _ = writeln!(out, "{pad}}}");
    } else {
        let _ = writeln!(out, "{pad}{}", words.join(" "));
    }
}

fn suggest(out: &mut String, mark: u32, fam: Fam, vips: &[&Vip], k: &Keepalived) {
    let _ = writeln!(out, "# for {}", vips_label(vips));
    // Reuse the body of the old VIP:port service when there is one.
    let old = k.services.iter().find(|s| matches!(s.kind, VsKind::Addr(a, p) if vips.iter().any(|v| v.address == a && (v.port == p || v.port.is_none()))));
    let _ = writeln!(out, "virtual_server fwmark {mark} {{");
    if fam == Fam::Inet6 {
        out.push_str("    ip_family inet6\n");
    }
    match old {
        Some(s) => {
            let _ = writeln!(
                out,
                "    # body of `virtual_server {}` ({}), which this replaces",
                s.node.words[1..].join(" "),
                s.node.loc
            );
            for c in s.node.children.iter().filter(|c| c.keyword() != "protocol") {
                render(out, c, 1);
            }
        }
        None => {
            // No `protocol` and no real-server ports: keepalived ignores both for fwmark
            // services (and warns).
            let (this, peer) = if fam == Fam::Inet6 {
                ("2001:db8::1", "2001:db8::2")
            } else {
                ("192.0.2.1", "192.0.2.2")
            };
            let _ = writeln!(
                out,
                "    delay_loop 6\n    lb_algo rr\n    lb_kind DR\n    real_server {this} {{   # THIS director's address\n        weight 1\n    }}\n    real_server {peer} {{   # the PEER director's address\n        weight 1\n    }}"
            );
        }
    }
    out.push_str("}\n\n");
}

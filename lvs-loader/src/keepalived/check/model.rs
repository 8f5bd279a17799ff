//! What keepalived.conf says, as far as the marks are concerned: virtual servers (by
//! mark, address or group), groups, VRRP addresses and `nftables_ipvs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{Fam, Finding, Level};
use crate::{
    config::Protocol,
    keepalived::parse::{Conf, Loc, Node},
};

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
    pub(super) fn fwmark_services(&self) -> Vec<(u32, Fam, &VirtualServer<'a>)> {
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
    pub(super) fn addr_services(
        &self,
    ) -> Vec<(IpAddr, Option<u16>, Option<Protocol>, &VirtualServer<'a>)> {
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
    pub(super) fn auto_fwmarks(&self) -> usize {
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

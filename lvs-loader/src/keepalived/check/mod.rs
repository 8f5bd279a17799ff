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
//!
//! Here: the findings and the cross-check's entry point. `model`: what keepalived.conf
//! says; `marks`: keepalived.conf against vips.toml; `peer`: the peer director's
//! vips.toml against this one; `suggest`: `--suggest`; `local`: this host's MACs.

mod local;
mod marks;
mod model;
mod peer;
mod suggest;

use std::{collections::BTreeMap, net::IpAddr};

pub use local::local_macs;
use marks::check_keepalived;
pub use model::{Group, Keepalived, VirtualServer, VsKind};
use peer::check_peer;

use super::parse::{Conf, Loc};
use crate::config::{Config, Vip, format_endpoint};

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

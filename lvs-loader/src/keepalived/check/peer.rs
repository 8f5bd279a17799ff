//! This director's vips.toml against the peer director's: peer MACs on the right sides,
//! the same VIPs marked on both, distinct marks.

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Level};
use crate::config::{Config, Vip, format_endpoint, format_mac};

pub(super) fn check_peer(
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

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
//!
//! Here: the result types and the analysis's outline. `classes`: the packet classes
//! tried; `walk`: one family's walk; `peers`: the peer sets per interface; `ctx`: the
//! problems collected.

mod classes;
mod ctx;
mod peers;
mod walk;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use classes::CLIENT_MACS;
use ctx::Ctx;

use super::{Problem, eval::Tables, lex::Family};
use crate::config::Protocol;

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
        walk::family(
            &mut cx,
            fam,
            &macs,
            client,
            &iface_classes,
            &mut per_iface,
            &mut replaced_per_iface,
        );
    }

    // Peers per interface class.
    peers::per_iface(&mut cx, &mut an, opts, per_iface, replaced_per_iface);
    an.problems = cx.problems.into_values().collect();
    an
}

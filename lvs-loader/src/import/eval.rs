//! Walks a family's `mangle PREROUTING` (and the chains it jumps to) for one abstract
//! packet, exactly as `ipt_do_table` would: first rule first, `MARK` is not terminating
//! (a later match overwrites), `RETURN` leaves a user chain (and ends the built-in one),
//! `ACCEPT`/`DROP` end the table, `-g` returns to the caller's caller.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    lex::Family,
    rule::{Rule, Target},
};

/// Everything a modelled match can look at.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub iface: &'a str,
    pub addr: IpAddr,
    pub proto: u8,
    /// `None`: a non-first fragment (no ports).
    pub port: Option<u16>,
    pub mac: [u8; 6],
}

/// How the walk ended for one packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The mark a packet that arrived unmarked leaves with.
    pub mark: u32,
    /// The bits the MARK rules on the way own (the union of their masks): a packet that
    /// arrived with mark `m` leaves with `(m & !mask) ^ mark` (xt_MARK composes).
    pub mask: u32,
    /// Index (into [`Tables::rules`]) of the rule that set the final mark.
    pub setter: Option<usize>,
    /// MARK rules that set a mark on the way, in order.
    pub marked_by: Vec<usize>,
    /// Rules with a MAC match that matched (the recipe's peer exclusions).
    pub mac_rules: Vec<usize>,
    /// Jumps and gotos taken, in order.
    pub jumps: Vec<usize>,
    pub dropped: bool,
    /// Rules whose unmodelled matches decide the outcome (treated as not matching).
    pub uncertain: BTreeSet<usize>,
    /// The walk could not be finished (loop, missing chain): the rule that broke it.
    pub broken: Option<(usize, String)>,
}

/// (family, chain) -> rule indices in chain order.
pub type ChainMap = BTreeMap<(Family, String), Vec<usize>>;

/// The mangle chains of both families.
pub struct Tables {
    pub rules: Vec<Rule>,
    /// (family, chain) -> indices into `rules`, in chain order.
    pub chains: ChainMap,
    /// Rules to leave out of the walk (`--partial`: untranslatable ones).
    pub ignored: BTreeSet<usize>,
}

const MAX_DEPTH: usize = 64;

impl Tables {
    fn matches(&self, r: &Rule, p: &Packet) -> bool {
        if let Some(i) = &r.iface
            && (i.value == p.iface) == i.negated
        {
            return false;
        }
        if let Some(d) = &r.dst
            && d.value.contains(p.addr) == d.negated
        {
            return false;
        }
        if let Some(pr) = &r.proto
            && (pr.value == p.proto) == pr.negated
        {
            return false;
        }
        if r.needs_ports {
            // tcp_mt/udp_mt/sctp_mt/multiport: a non-first fragment never matches.
            let Some(port) = p.port else { return false };
            if let Some(d) = &r.dports {
                let inside = d.value.iter().any(|&(lo, hi)| lo <= port && port <= hi);
                if inside == d.negated {
                    return false;
                }
            }
        }
        r.macs.iter().all(|m| (m.value == p.mac) != m.negated)
    }

    /// Whether a rule could ever match packets to `addr` (for indexing per address).
    pub fn may_match_addr(&self, r: &Rule, addr: IpAddr) -> bool {
        match &r.dst {
            None => true,
            Some(d) => d.value.contains(addr) != d.negated,
        }
    }

    /// The chains restricted to `relevant` rules (indices grow along every chain, so
    /// sorting keeps chain order).
    pub fn chains_for(&self, relevant: &[usize]) -> ChainMap {
        let mut m: ChainMap = BTreeMap::new();
        let mut idx = relevant.to_vec();
        idx.sort_unstable();
        idx.dedup();
        for i in idx {
            let r = &self.rules[i];
            m.entry((r.family, r.chain.clone())).or_default().push(i);
        }
        // Jump targets must exist even when none of their rules is relevant (an empty
        // chain returns at once; a missing one would be an unknown target).
        for k in self.chains.keys() {
            m.entry(k.clone()).or_default();
        }
        m
    }

    /// Walks `family`'s mangle PREROUTING for `p` over `chains` (all of [`Self::chains`],
    /// or those of [`Self::chains_for`]).
    pub fn eval(&self, family: Family, p: &Packet, chains: &ChainMap) -> Outcome {
        let mut out = Outcome::default();
        let Some(start) = chains.get(&(family, "PREROUTING".to_owned())) else {
            return out;
        };
        // Stack of (chain rules, next position).
        let mut stack: Vec<(&[usize], usize)> = vec![(start.as_slice(), 0)];
        while let Some((chain, pos)) = stack.pop() {
            let mut pos = pos;
            let mut next_frame: Option<(&[usize], usize)> = None;
            let mut leave = false;
            while pos < chain.len() {
                let idx = chain[pos];
                pos += 1;
                if self.ignored.contains(&idx) {
                    continue;
                }
                let r = &self.rules[idx];
                if !self.matches(r, p) {
                    continue;
                }
                if !r.macs.is_empty() {
                    out.mac_rules.push(idx);
                }
                if !r.unknown.is_empty() {
                    if r.affects_marks() {
                        out.uncertain.insert(idx);
                    }
                    continue;
                }
                match &r.target {
                    Target::None | Target::Neutral(_) => {}
                    Target::Mark { value, mask } => {
                        out.mark = (out.mark & !mask) ^ value;
                        out.mask |= mask;
                        out.setter = Some(idx);
                        out.marked_by.push(idx);
                    }
                    Target::OtherMark(_) | Target::Other(_) => {
                        out.uncertain.insert(idx);
                    }
                    Target::Return => {
                        leave = true;
                        break;
                    }
                    Target::Accept => return out,
                    Target::Drop => {
                        out.dropped = true;
                        return out;
                    }
                    Target::Jump(c) | Target::Goto(c) => {
                        let Some(sub) = chains.get(&(family, c.clone())) else {
                            out.uncertain.insert(idx);
                            continue;
                        };
                        if stack.len() + 1 >= MAX_DEPTH {
                            out.broken = Some((
                                idx,
                                format!("jumps nest deeper than {MAX_DEPTH} chains (a loop?)"),
                            ));
                            return out;
                        }
                        out.jumps.push(idx);
                        if matches!(r.target, Target::Jump(_)) {
                            stack.push((chain, pos));
                        }
                        next_frame = Some((sub.as_slice(), 0));
                        break;
                    }
                }
            }
            if let Some(f) = next_frame {
                stack.push(f);
                continue;
            }
            let _ = leave;
            // End of chain or RETURN: back to the caller (stack pop); the built-in chain
            // ending ends the walk (stack empty).
        }
        out
    }
}

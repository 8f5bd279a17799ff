//! One iptables rule's arguments, parsed into what the marking analysis models
//! (`-i`, `-d`, `-p`, destination ports, source MACs, the target) and what it does not
//! (everything else, kept as text so it can be reported).
//!
//! Here: the parsed rule's types. `args`: the walk over the arguments; `values`:
//! addresses, ports, protocols and marks; `target`: what `-j` does.

mod args;
mod target;
#[cfg(test)]
mod tests;
mod values;

use std::net::IpAddr;

pub use args::parse;
pub use values::parse_port_range;

use super::lex::{Family, RawRule};

/// A match, possibly negated with `!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neg<T> {
    pub value: T,
    pub negated: bool,
}

impl<T> Neg<T> {
    fn new(value: T, negated: bool) -> Self {
        Self { value, negated }
    }
}

/// An address with a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    pub fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.len))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.len))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn max_len(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No `-j`: a counting rule.
    None,
    /// `MARK --set-xmark value/mask`: `mark = (mark & !mask) ^ value` (`--set-mark v/m`
    /// is `--set-xmark v/(v|m)`, as libxt_MARK translates it).
    Mark {
        value: u32,
        mask: u32,
    },
    /// Any other way of changing `skb->mark` (`--and-mark`, `CONNMARK --restore-mark`...).
    OtherMark(String),
    Return,
    Accept,
    Drop,
    Jump(String),
    Goto(String),
    /// Does not change the mark and does not stop the traversal (LOG, TOS, ...).
    Neutral(String),
    /// A target whose effect on marks and traversal is not modelled.
    Other(String),
}

/// A parsed rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub line: usize,
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub iface: Option<Neg<String>>,
    pub dst: Option<Neg<Net>>,
    /// Protocol number; `None` = any (`-p all` or no `-p`).
    pub proto: Option<Neg<u8>>,
    /// Destination port ranges (inclusive), from `--dport` or `-m multiport --dports`.
    pub dports: Option<Neg<Vec<(u16, u16)>>>,
    /// A tcp/udp/sctp/multiport match is used: never matches a non-first fragment.
    pub needs_ports: bool,
    /// Every `-m mac [!] --mac-source` (all must hold).
    pub macs: Vec<Neg<[u8; 6]>>,
    /// Matches the analysis does not model, as written (`-s 10.0.0.0/8`, `-m conntrack ...`).
    pub unknown: Vec<String>,
    pub comment: Option<String>,
    pub target: Target,
    /// The arguments as given (for iptables-restore).
    pub args: Vec<String>,
    pub text: String,
}

impl Rule {
    /// Whether the target can change the mark or the traversal, i.e. matters to marks.
    pub fn affects_marks(&self) -> bool {
        !matches!(
            self.target,
            Target::None | Target::Neutral(_) | Target::Drop
        )
    }
}

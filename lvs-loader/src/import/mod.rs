//! `lvs-loader import`: the iptables MAC/MARK recipe (iptables-save, ip6tables-save,
//! iptables command lines or firewalld direct rules) translated into vips.toml.
//!
//! * [`lex`]: input formats, `-A`/`-I` order, families.
//! * [`rule`]: one rule's arguments, modelled or kept as text.
//! * [`eval`]: the chain walk of `mangle PREROUTING` for one packet.
//! * [`translate`]: every packet class the rules tell apart, read back as VIPs and peers.
//! * [`emit`]: the commented vips.toml, validated by [`crate::config::parse`].
//! * [`verify`]: the original rules in a scratch network namespace and the config in the
//!   loaded program, on the same frames.

pub mod emit;
pub mod eval;
pub mod lex;
pub mod rule;
pub mod scratch;
pub mod translate;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

pub use lex::{Family, Format};

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Not translated exactly: `import` fails unless `--partial`.
    Error,
    /// Translated, but worth knowing (overwritten marks, merged peers, ignored rules).
    Warning,
}

/// Something about the input the config does not (exactly) reproduce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based input line, when one rule is to blame.
    pub line: Option<usize>,
    /// That line.
    pub text: String,
    pub reason: String,
    pub severity: Severity,
}

impl Problem {
    /// `NAME:LINE: error: reason` plus the rule, escaped for a terminal.
    pub fn render(&self, name: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "not translated",
            Severity::Warning => "note",
        };
        let reason: Vec<String> = self
            .reason
            .split('\n')
            .map(|l| crate::text::escape(l).into_owned())
            .collect();
        let reason = reason.join("\n");
        let mut s = match self.line {
            Some(l) => format!("{name}:{l}: {sev}: {reason}"),
            None => format!("{name}: {sev}: {reason}"),
        };
        if !self.text.is_empty() {
            s.push_str(&format!(
                "\n    | {}",
                crate::text::excerpt(&self.text, 240)
            ));
        }
        s
    }
}

/// Options of an import.
#[derive(Clone, Debug)]
pub struct Options {
    pub format: Format,
    pub merge_peers: bool,
    /// Name of the input in messages and comments.
    pub source_name: String,
}

/// One output config and the interfaces it is for.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Interface names; empty string = every interface the rules don't name.
    pub ifaces: Vec<String>,
    pub toml: String,
    pub config: Config,
}

/// The whole result.
#[derive(Clone, Debug)]
pub struct ImportResult {
    pub configs: Vec<Imported>,
    pub problems: Vec<Problem>,
    /// The format read.
    pub format: Format,
    /// The mangle table as read, per family, as iptables-restore input (for `--verify`).
    pub restore: BTreeMap<Family, String>,
    /// Interface names the rules use with `-i`.
    pub ifaces: BTreeSet<String>,
    /// Every MAC the rules name.
    pub macs: BTreeSet<[u8; 6]>,
    /// Every host address the rules name, and the port ranges per protocol they name.
    pub addresses: BTreeSet<std::net::IpAddr>,
    pub ports: BTreeSet<u16>,
    /// Every mask of a `-j MARK` rule (`--verify` adds frames that arrive marked when one
    /// is not all 32 bits).
    pub masks: BTreeSet<u32>,
}

impl ImportResult {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Hooks that run before mangle PREROUTING (netfilter priorities): a mark set there used
/// to be overwritten by the recipe and would now win over lvs-ebpf's.
fn runs_before_mangle_prerouting(table: &str, chain: &str) -> bool {
    table == "raw" && chain == "PREROUTING"
}

/// (family, chain) -> rules of other built-in chains jumping to it: (line, text, chain).
type ChainUsers = BTreeMap<(Family, String), Vec<(usize, String, String)>>;

/// Imports `text`.
pub fn import(text: &str, opts: &Options) -> ImportResult {
    let lexed = lex::lex(text, opts.format);
    let mut problems: Vec<Problem> = lexed
        .problems
        .iter()
        .map(|p| Problem {
            line: Some(p.line),
            text: p.text.trim().to_owned(),
            reason: p.reason.clone(),
            severity: if p.warning {
                Severity::Warning
            } else {
                Severity::Error
            },
        })
        .collect();
    let mut rules = Vec::new();
    let mut chains: BTreeMap<(Family, String), Vec<usize>> = BTreeMap::new();
    let mut restore: BTreeMap<Family, String> = BTreeMap::new();
    let mut user_chains: BTreeMap<Family, BTreeSet<String>> = BTreeMap::new();
    for (fam, table, chain) in &lexed.user_chains {
        if table == "mangle" {
            user_chains.entry(*fam).or_default().insert(chain.clone());
        }
    }
    let mut mangle_users: ChainUsers = BTreeMap::new();
    for ((fam, table, chain), raws) in &lexed.chains {
        for raw in raws {
            let r = match rule::parse(raw) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(Problem {
                        line: Some(raw.line),
                        text: raw.text.clone(),
                        reason: format!("cannot parse the rule: {e}"),
                        severity: Severity::Error,
                    });
                    continue;
                }
            };
            if table != "mangle" {
                if matches!(
                    r.target,
                    rule::Target::Mark { .. } | rule::Target::OtherMark(_)
                ) {
                    let before = runs_before_mangle_prerouting(table, chain);
                    problems.push(Problem {
                        line: Some(r.line),
                        text: r.text.clone(),
                        reason: if before {
                            format!("sets marks in {table} {chain}, which runs before mangle PREROUTING: the recipe used to overwrite these marks, lvs-ebpf (in TC, before netfilter) would not")
                        } else {
                            format!("sets marks in {table} {chain}: not part of the recipe, stays in place and still applies after lvs-ebpf's marking")
                        },
                        severity: if before { Severity::Error } else { Severity::Warning },
                    });
                }
                continue;
            }
            if !matches!(chain.as_str(), "PREROUTING")
                && !user_chains.get(fam).is_some_and(|u| u.contains(chain))
                && !chains.contains_key(&(*fam, chain.clone()))
            {
                // A built-in chain other than PREROUTING (INPUT, FORWARD, ...).
                let builtin = matches!(
                    chain.as_str(),
                    "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
                );
                if builtin {
                    if let rule::Target::Jump(c) | rule::Target::Goto(c) = &r.target {
                        mangle_users.entry((*fam, c.clone())).or_default().push((
                            r.line,
                            r.text.clone(),
                            chain.clone(),
                        ));
                    }
                    if matches!(
                        r.target,
                        rule::Target::Mark { .. } | rule::Target::OtherMark(_)
                    ) {
                        problems.push(Problem {
                            line: Some(r.line),
                            text: r.text.clone(),
                            reason: format!("sets marks in mangle {chain}: not part of the recipe, stays in place and still applies after lvs-ebpf's marking"),
                            severity: Severity::Warning,
                        });
                    }
                    continue;
                }
            }
            let idx = rules.len();
            rules.push(r);
            chains.entry((*fam, chain.clone())).or_default().push(idx);
        }
    }
    // Chains of the recipe that other built-in chains jump to: they must stay.
    for ((fam, c), users) in &mangle_users {
        if chains.contains_key(&(*fam, c.clone())) {
            for (line, text, chain) in users {
                problems.push(Problem {
                    line: Some(*line),
                    text: text.clone(),
                    reason: format!("mangle {chain} jumps to {c}, which the marking rules use too: keep {c} when you remove the recipe"),
                    severity: Severity::Warning,
                });
            }
        }
    }
    // iptables-restore input of the mangle table, per family (for --verify).
    for ((fam, table, chain), raws) in &lexed.chains {
        if table != "mangle" {
            continue;
        }
        let s = restore.entry(*fam).or_default();
        for raw in raws {
            s.push_str(&format!("-A {chain} {}\n", emit::restore_args(&raw.args)));
        }
    }
    let mut addresses = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut macs = BTreeSet::new();
    let mut ifaces = BTreeSet::new();
    let mut masks = BTreeSet::new();
    for r in &rules {
        if let rule::Target::Mark { mask, .. } = r.target {
            masks.insert(mask);
        }
        if let Some(d) = &r.dst
            && d.value.is_host()
        {
            addresses.insert(d.value.addr);
        }
        if let Some(d) = &r.dports {
            for &(lo, hi) in &d.value {
                ports.insert(lo);
                ports.insert(hi);
            }
        }
        macs.extend(r.macs.iter().map(|m| m.value));
        if let Some(i) = &r.iface {
            ifaces.insert(i.value.clone());
        }
    }
    let tables = eval::Tables {
        rules,
        chains,
        ignored: BTreeSet::new(),
    };
    let an = translate::analyse(
        &tables,
        &translate::Options {
            merge_peers: opts.merge_peers,
        },
    );
    problems.extend(an.problems.iter().cloned());
    // Masks translate into mark_mask; what xt_MARK does with value bits outside the mask
    // (toggles another user's bits) vips.toml refuses.
    for &i in &an.replaced {
        let r = &tables.rules[i];
        if let rule::Target::Mark { value, mask } = r.target
            && value & !mask != 0
        {
            problems.push(Problem {
                line: Some(r.line),
                text: r.text.clone(),
                reason: format!(
                    "--set-xmark {value:#x}/{mask:#x} has value bits outside its mask ({:#x}): xt_MARK toggles them in the mark a packet arrives with; vips.toml keeps a mark inside its mark_mask",
                    value & !mask
                ),
                severity: Severity::Error,
            });
        }
    }
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.severity));
    problems.dedup();

    // iptables-restore input: user chains declared, then the rules.
    let builtin = |c: &str| {
        matches!(
            c,
            "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
        )
    };
    let mut restore_full = BTreeMap::new();
    for (fam, body) in restore {
        let mut declared: BTreeSet<String> = user_chains.get(&fam).cloned().unwrap_or_default();
        for (f, t, c) in lexed.chains.keys() {
            if *f == fam && t == "mangle" && !builtin(c) {
                declared.insert(c.clone());
            }
        }
        let mut s = String::from("*mangle\n");
        for c in &declared {
            s.push_str(&format!(":{c} - [0:0]\n"));
        }
        s.push_str(&body);
        s.push_str("COMMIT\n");
        restore_full.insert(fam, s);
    }

    let (configs, emit_problems) = emit::configs(
        &tables,
        &an,
        opts,
        lexed.format.unwrap_or(Format::IptablesSave),
        &problems,
    );
    problems.extend(emit_problems);
    ImportResult {
        configs,
        problems,
        format: lexed.format.unwrap_or(Format::IptablesSave),
        restore: restore_full,
        ifaces,
        macs,
        addresses,
        ports,
        masks,
    }
}

//! Peers per interface class: the MACs the VIPs exclude, which must be one set (peers
//! are global in vips.toml) unless `--merge-peers`, and at least one.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analysis, Entry, IfaceResult, Options, ctx::Ctx};
use crate::{
    config::{format_endpoint, format_mac},
    import::{Problem, Severity},
};

/// Turns each interface class's entries into its [`IfaceResult`] in `an`.
pub(super) fn per_iface(
    cx: &mut Ctx,
    an: &mut Analysis,
    opts: &Options,
    per_iface: BTreeMap<String, Vec<Entry>>,
    mut replaced_per_iface: BTreeMap<String, BTreeSet<usize>>,
) {
    let t = cx.t;
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
}

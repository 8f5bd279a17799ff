//! The commented vips.toml an import prints, one per group of interfaces that get the
//! same VIPs and peers. Every text goes through [`crate::config::parse`] before it is
//! returned, so what `import` prints is always a config `check` and `attach` accept.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    Format, Imported, Options, Problem, Severity,
    eval::Tables,
    translate::{Analysis, Entry},
};
use crate::config::{self, format_mac};
use lvs_ebpf_common::MAX_NAME_LEN as MAX_NAME_LEN_BYTES;

/// A word for iptables-restore: quoted when it holds anything but plain characters.
pub fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/,!+=@%".contains(c))
    {
        return w.to_owned();
    }
    let mut s = String::from("\"");
    for c in w.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

pub fn restore_args(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `# ...` with everything unprintable escaped, on one line.
fn comment(out: &mut String, s: &str) {
    let _ = writeln!(out, "# {}", crate::text::excerpt(s, 300));
}

/// A VIP name from a rule comment, when it is one vips.toml takes.
fn name_from(comment: Option<&str>) -> Option<String> {
    let c = comment?.trim();
    (!c.is_empty() && c.len() <= MAX_NAME_LEN_BYTES && !c.chars().any(char::is_control))
        .then(|| c.to_owned())
}

fn ifaces_label(ifaces: &[String]) -> String {
    let named: Vec<&str> = ifaces
        .iter()
        .filter(|i| !i.is_empty())
        .map(String::as_str)
        .collect();
    let other = ifaces.iter().any(String::is_empty);
    match (named.is_empty(), other) {
        (true, _) => "every interface (the rules have no -i)".to_owned(),
        (false, false) => named.join(", "),
        (false, true) => format!(
            "{} and every interface the rules don't name",
            named.join(", ")
        ),
    }
}

type Signature = (
    Vec<[u8; 6]>,
    Vec<(std::net::IpAddr, Option<u16>, config::Protocol, u32, u32)>,
);

/// Builds and validates the configs.
pub fn configs(
    t: &Tables,
    an: &Analysis,
    opts: &Options,
    format: Format,
    problems: &[Problem],
) -> (Vec<Imported>, Vec<Problem>) {
    let mut groups: BTreeMap<Signature, Vec<String>> = BTreeMap::new();
    for (iface, res) in &an.ifaces {
        // Value bits outside the mask: reported against their rule, left out here.
        let mut entries: Vec<&Entry> = res
            .entries
            .iter()
            .filter(|e| e.mark & !e.mask == 0)
            .collect();
        entries.sort_by_key(|e| (e.addr.is_ipv6(), e.addr, e.proto, e.port));
        let sig = (
            res.peers.iter().copied().collect(),
            entries
                .iter()
                .map(|e| (e.addr, e.port, e.proto, e.mark, e.mask))
                .collect(),
        );
        groups.entry(sig).or_default().push(iface.clone());
    }
    let mut out = Vec::new();
    let mut extra = Vec::new();
    if an.ifaces.is_empty() {
        extra.push(Problem {
            line: None,
            text: String::new(),
            reason: "no rule marks any VIP packet: nothing to import (the recipe is `-t mangle -A PREROUTING -d VIP ... -m mac ! --mac-source PEER -j MARK --set-mark M`)".into(),
            severity: Severity::Error,
        });
    }
    for (_, ifaces) in groups {
        let res = &an.ifaces[&ifaces[0]];
        let mut s = String::new();
        let fmt = match format {
            Format::Firewalld => "firewalld direct rules",
            _ => "iptables rules",
        };
        comment(
            &mut s,
            &format!(
                "vips.toml imported by `lvs-loader import` from {} ({fmt})",
                opts.source_name
            ),
        );
        comment(&mut s, &format!("for: {}", ifaces_label(&ifaces)));
        let errors = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        if errors > 0 {
            comment(
                &mut s,
                &format!(
                    "PARTIAL: {errors} rule problem(s) were not translated (see import's messages)"
                ),
            );
        }
        s.push_str("#\n# It replaces these rules (delete them once lvs-ebpf is attached;\n# `lvs-loader export --iptables` prints the equivalent rules back):\n");
        let mut used: Vec<usize> = ifaces
            .iter()
            .flat_map(|i| an.ifaces[i].replaced.iter().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        used.sort_by_key(|&i| t.rules[i].line);
        for (n, &i) in used.iter().enumerate() {
            if n == 40 {
                comment(&mut s, &format!("  ... and {} more", used.len() - 40));
                break;
            }
            comment(
                &mut s,
                &format!("  line {}: {}", t.rules[i].line, t.rules[i].text),
            );
        }
        s.push('\n');
        for mac in &res.peers {
            s.push_str("[[peer]]\n");
            if let Some(rules) = res.peer_rules.get(mac) {
                let mut rules: Vec<usize> = rules.iter().copied().collect();
                rules.sort_by_key(|&i| t.rules[i].line);
                for &i in rules.iter().take(3) {
                    comment(
                        &mut s,
                        &format!("line {}: {}", t.rules[i].line, t.rules[i].text),
                    );
                }
            }
            let _ = writeln!(s, "mac = {}\n", toml_str(&format_mac(mac)));
        }
        // Value bits outside the mask: reported against their rule, left out here.
        let mut entries: Vec<&Entry> = res
            .entries
            .iter()
            .filter(|e| e.mark & !e.mask == 0)
            .collect();
        entries.sort_by_key(|e| (e.addr.is_ipv6(), e.addr, e.proto, e.port));
        let mut per_rule: BTreeMap<usize, usize> = BTreeMap::new();
        for e in &entries {
            for &r in &e.rules {
                *per_rule.entry(r).or_default() += 1;
            }
        }
        for e in entries {
            s.push_str("[[vip]]\n");
            let mut name = None;
            let mut rules: Vec<usize> = e.rules.iter().copied().collect();
            rules.sort_by_key(|&i| t.rules[i].line);
            for &r in &rules {
                let rule = &t.rules[r];
                if per_rule[&r] <= 8 {
                    comment(&mut s, &format!("line {}: {}", rule.line, rule.text));
                } else {
                    comment(&mut s, &format!("line {} (listed above)", rule.line));
                }
                if per_rule[&r] == 1 {
                    name = name.or_else(|| name_from(rule.comment.as_deref()));
                }
            }
            let _ = writeln!(s, "address = {}", toml_str(&e.addr.to_string()));
            if let Some(p) = e.port {
                let _ = writeln!(s, "port = {p}");
            }
            let _ = writeln!(s, "protocol = {}", toml_str(e.proto.as_str()));
            let _ = writeln!(s, "mark = {:#x}", e.mark);
            if e.mask != u32::MAX {
                let _ = writeln!(s, "mark_mask = {:#x}", e.mask);
            }
            if let Some(n) = name {
                let _ = writeln!(s, "name = {}", toml_str(&n));
            }
            s.push('\n');
        }
        match config::parse(&s, "imported vips.toml") {
            Ok(config) => out.push(Imported {
                ifaces,
                toml: s,
                config,
            }),
            Err(e) => extra.push(Problem {
                line: None,
                text: String::new(),
                reason: format!(
                    "the translated config for {} is not valid: {e}",
                    ifaces_label(&ifaces)
                ),
                severity: Severity::Error,
            }),
        }
    }
    (out, extra)
}

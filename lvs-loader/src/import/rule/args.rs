//! The argument walk of one rule: which options are modelled (`-i`, `-d`, `-p`, ports,
//! source MACs, the target) and which are kept as text.

use super::{
    Neg, RawRule, Rule, Target,
    target::target,
    values::{parse_net, parse_port_range, proto_number},
};
use crate::config::parse_mac;

const TOP_LEVEL: &[&str] = &[
    "-d",
    "--destination",
    "--dst",
    "-s",
    "--source",
    "--src",
    "-p",
    "--protocol",
    "-i",
    "--in-interface",
    "-o",
    "--out-interface",
    "-f",
    "--fragment",
    "-m",
    "--match",
    "-j",
    "--jump",
    "-g",
    "--goto",
    "-c",
    "--set-counters",
];

/// Parses one rule. `Err` = the arguments are not even valid iptables syntax (as far as
/// this parser knows); the message says why.
pub fn parse(raw: &RawRule) -> Result<Rule, String> {
    let mut r = Rule {
        line: raw.line,
        family: raw.family,
        table: raw.table.clone(),
        chain: raw.chain.clone(),
        iface: None,
        dst: None,
        proto: None,
        dports: None,
        needs_ports: false,
        macs: Vec::new(),
        unknown: Vec::new(),
        comment: None,
        target: Target::None,
        args: raw.args.clone(),
        text: raw.text.clone(),
    };
    let a = &raw.args;
    let mut i = 0;
    let mut module: Option<String> = None;
    let mut neg = false;
    let value = |i: usize, opt: &str| -> Result<String, String> {
        a.get(i + 1)
            .cloned()
            .ok_or_else(|| format!("{opt} needs a value"))
    };
    while i < a.len() {
        let w = a[i].as_str();
        if w == "!" {
            neg = true;
            i += 1;
            continue;
        }
        let was_neg = std::mem::take(&mut neg);
        let shown = |n: usize| -> String {
            let mut s = if was_neg {
                "! ".to_owned()
            } else {
                String::new()
            };
            s.push_str(&a[i..(i + n).min(a.len())].join(" "));
            s
        };
        match w {
            "-d" | "--destination" | "--dst" => {
                let v = value(i, w)?;
                if v.contains(',') {
                    r.unknown.push(format!("{} (address list)", shown(2)));
                } else {
                    match parse_net(&v, raw.family) {
                        Ok(net) => r.dst = Some(Neg::new(net, was_neg)),
                        Err(e) => r.unknown.push(format!("{} ({e})", shown(2))),
                    }
                }
                i += 2;
            }
            "-s" | "--source" | "--src" | "-o" | "--out-interface" => {
                value(i, w)?;
                r.unknown.push(shown(2));
                i += 2;
            }
            "-f" | "--fragment" => {
                r.unknown.push(shown(1));
                i += 1;
            }
            "-c" | "--set-counters" => i += 3,
            "-p" | "--protocol" => {
                let v = value(i, w)?;
                match proto_number(&v, raw.family) {
                    Some(Some(n)) => r.proto = Some(Neg::new(n, was_neg)),
                    Some(None) if !was_neg => r.proto = None,
                    _ => r.unknown.push(shown(2)),
                }
                i += 2;
            }
            "-i" | "--in-interface" => {
                let v = value(i, w)?;
                if v.ends_with('+') {
                    r.unknown.push(format!("{} (interface wildcard)", shown(2)));
                } else {
                    r.iface = Some(Neg::new(v, was_neg));
                }
                i += 2;
            }
            "-m" | "--match" => {
                let m = value(i, w)?;
                i += 2;
                match m.as_str() {
                    "tcp" | "udp" | "sctp" | "multiport" => {
                        r.needs_ports = true;
                        module = Some(m);
                    }
                    "mac" | "comment" => module = Some(m),
                    _ => {
                        // Unmodelled match: keep it and its options as text.
                        let start = i - 2;
                        let mut j = i;
                        while j < a.len() && !is_top_level(a, j) {
                            j += 1;
                        }
                        let s = a[start..j].join(" ");
                        r.unknown.push(s);
                        i = j;
                        module = None;
                    }
                }
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                let implicit = module.is_none()
                    && matches!(
                        r.proto,
                        Some(Neg {
                            value: 6 | 17 | 132,
                            negated: false
                        })
                    );
                let is_multi = w.ends_with('s');
                let ok_module = match module.as_deref() {
                    Some("multiport") => is_multi,
                    Some("tcp" | "udp" | "sctp") => !is_multi,
                    None => implicit && !is_multi,
                    _ => false,
                };
                if !ok_module {
                    return Err(format!("{w} outside a tcp/udp/sctp/multiport match"));
                }
                if implicit {
                    r.needs_ports = true;
                }
                let v = value(i, w)?;
                let mut ranges = Vec::new();
                let parts: Vec<&str> = if is_multi {
                    v.split(',').collect()
                } else {
                    vec![v.as_str()]
                };
                let mut bad = None;
                for p in parts {
                    match parse_port_range(p) {
                        Ok(rg) => ranges.push(rg),
                        Err(e) => bad = Some(e),
                    }
                }
                match bad {
                    Some(e) => r.unknown.push(format!("{} ({e})", shown(2))),
                    None => r.dports = Some(Neg::new(ranges, was_neg)),
                }
                i += 2;
            }
            "--mac-source" => {
                if module.as_deref() != Some("mac") {
                    return Err("--mac-source outside -m mac".into());
                }
                let mut v = value(i, w)?;
                let mut negated = was_neg;
                let mut step = 2;
                if v == "!" {
                    // Old syntax: --mac-source ! MAC
                    v = a.get(i + 2).cloned().ok_or("--mac-source ! needs a MAC")?;
                    negated = true;
                    step = 3;
                }
                let mac = parse_mac(&v).map_err(|e| format!("--mac-source: {e}"))?;
                r.macs.push(Neg::new(mac, negated));
                i += step;
            }
            "--comment" => {
                r.comment = Some(value(i, w)?);
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let t = value(i, w)?;
                let opts = &a[i + 2..];
                r.target = target(&t, opts, w.starts_with("-g") || w == "--goto")?;
                // Target options run to the end (iptables-save puts -j last).
                i = a.len();
            }
            _ => {
                // An option of a module we model but do not translate (--sport,
                // --tcp-flags, --syn, --chunk-types...).
                let mut j = i + 1;
                while j < a.len() && !a[j].starts_with('-') && a[j] != "!" {
                    j += 1;
                }
                if module.is_none() && w.starts_with('-') && !w.starts_with("--") {
                    return Err(format!("unknown option {:?}", crate::text::excerpt(w, 32)));
                }
                r.unknown.push(format!(
                    "{}{}",
                    module
                        .as_deref()
                        .map(|m| format!("-m {m} "))
                        .unwrap_or_default(),
                    shown(j - i)
                ));
                i = j;
            }
        }
    }
    if r.needs_ports
        && !matches!(
            r.proto,
            Some(Neg {
                value: 6 | 17 | 132,
                negated: false
            })
        )
    {
        return Err("a tcp/udp/sctp/multiport match needs -p tcp, udp or sctp".into());
    }
    Ok(r)
}

fn is_top_level(a: &[String], j: usize) -> bool {
    let w = a[j].as_str();
    if TOP_LEVEL.contains(&w) {
        return true;
    }
    w == "!"
        && a.get(j + 1)
            .is_some_and(|n| TOP_LEVEL.contains(&n.as_str()))
}

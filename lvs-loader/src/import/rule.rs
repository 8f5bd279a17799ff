//! One iptables rule's arguments, parsed into what the marking analysis models
//! (`-i`, `-d`, `-p`, destination ports, source MACs, the target) and what it does not
//! (everything else, kept as text so it can be reported).

use std::net::IpAddr;

use super::lex::{Family, RawRule};
use crate::config::parse_mac;

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

const NEUTRAL_TARGETS: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "TRACE",
    "TOS",
    "DSCP",
    "TTL",
    "HL",
    "TCPMSS",
    "ECN",
    "CHECKSUM",
    "CLASSIFY",
    "IDLETIMER",
    "LED",
    "AUDIT",
    "SECMARK",
    "CONNSECMARK",
    "RATEEST",
    "NOTRACK",
    "CT",
];

fn proto_number(s: &str, family: Family) -> Option<Option<u8>> {
    Some(Some(match s.to_ascii_lowercase().as_str() {
        "all" | "0" => return Some(None),
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" => 1,
        "icmpv6" | "ipv6-icmp" => 58,
        "udplite" => 136,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        "igmp" => 2,
        "dccp" => 33,
        "mh" | "ipv6-mh" => 135,
        n => {
            let _ = family;
            n.parse::<u8>().ok()?
        }
    }))
}

fn parse_net(s: &str, family: Family) -> Result<Net, String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| {
        format!(
            "{:?} is not an IP address (host names and lists are not translated)",
            crate::text::excerpt(s, 64)
        )
    })?;
    if (family == Family::V6) != addr.is_ipv6() {
        return Err(format!(
            "{addr} is not an {} address",
            if family == Family::V6 { "IPv6" } else { "IPv4" }
        ));
    }
    let max = max_len(addr);
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                // A dotted netmask (255.255.255.0).
                let m: std::net::Ipv4Addr = l.parse().map_err(|_| {
                    format!("bad prefix length in {:?}", crate::text::excerpt(s, 64))
                })?;
                let m = u32::from(m);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(format!("non-contiguous netmask in {s}"));
                }
                m.leading_ones() as u8
            }
        },
    };
    Ok(Net { addr, len })
}

/// `80`, `8000:8100`, `:1024`, `1024:` (iptables' range syntax).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!(
            "{:?} is not a port or port range (service names are not translated)",
            crate::text::excerpt(s, 32)
        )
    };
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (
            if a.is_empty() {
                0
            } else {
                a.parse().map_err(|_| bad())?
            },
            if b.is_empty() {
                65535
            } else {
                b.parse().map_err(|_| bad())?
            },
        ),
        None => {
            let p = s.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    // iptables swaps a reversed range.
    Ok(if lo <= hi { (lo, hi) } else { (hi, lo) })
}

/// `V` or `V/M`, hex or decimal (iptables' strtoul base 0).
fn parse_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_mark_mask(s: &str) -> Option<(u32, Option<u32>)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, Some(parse_u32(m)?))),
        None => Some((parse_u32(s)?, None)),
    }
}

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

fn target(t: &str, opts: &[String], goto: bool) -> Result<Target, String> {
    if goto {
        return Ok(Target::Goto(t.to_owned()));
    }
    Ok(match t {
        "MARK" => {
            let (op, v) = match opts {
                [op, v, ..] => (op.as_str(), v.as_str()),
                _ => return Err("-j MARK without --set-mark/--set-xmark".into()),
            };
            let Some((value, mask)) = parse_mark_mask(v) else {
                return Err(format!(
                    "MARK {op} {:?}: not a mark",
                    crate::text::excerpt(v, 32)
                ));
            };
            match op {
                "--set-xmark" => Target::Mark {
                    value,
                    mask: mask.unwrap_or(u32::MAX),
                },
                "--set-mark" => Target::Mark {
                    value,
                    mask: value | mask.unwrap_or(u32::MAX),
                },
                _ => Target::OtherMark(format!("-j MARK {}", opts.join(" "))),
            }
        }
        "CONNMARK" if !opts.iter().any(|o| o == "--restore-mark") => {
            Target::Neutral(format!("CONNMARK {}", opts.join(" ")))
        }
        "CONNMARK" | "TPROXY" => Target::OtherMark(format!("-j {t} {}", opts.join(" "))),
        "RETURN" => Target::Return,
        "ACCEPT" => Target::Accept,
        "DROP" | "REJECT" => Target::Drop,
        t if NEUTRAL_TARGETS.contains(&t) => Target::Neutral(t.to_owned()),
        t if t
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && t.chars().any(|c| c.is_ascii_uppercase())
            && !opts.is_empty() =>
        {
            Target::Other(format!("-j {t} {}", opts.join(" ")))
        }
        t => Target::Jump(t.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Result<Rule, String> {
        let fam = if args.contains("::") {
            Family::V6
        } else {
            Family::V4
        };
        parse(&RawRule {
            line: 1,
            family: fam,
            table: "mangle".into(),
            chain: "PREROUTING".into(),
            args: super::super::lex::shell_words(args).unwrap(),
            text: args.into(),
        })
    }

    #[test]
    fn the_recipe_in_iptables_save_form() {
        let r = p("-d 172.17.85.56/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -m comment --comment \"web vip\" -j MARK --set-xmark 0x3/0xffffffff").unwrap();
        assert_eq!(
            r.dst.as_ref().unwrap().value,
            Net {
                addr: "172.17.85.56".parse().unwrap(),
                len: 32
            }
        );
        assert!(!r.dst.as_ref().unwrap().negated);
        assert_eq!(r.proto, Some(Neg::new(6, false)));
        assert_eq!(r.dports, Some(Neg::new(vec![(80, 80)], false)));
        assert!(r.needs_ports);
        assert_eq!(r.macs, [Neg::new([0, 0x0c, 0x29, 0x57, 0x88, 0xce], true)]);
        assert_eq!(r.comment.as_deref(), Some("web vip"));
        assert_eq!(
            r.target,
            Target::Mark {
                value: 3,
                mask: u32::MAX
            }
        );
        assert!(r.unknown.is_empty());
    }

    #[test]
    fn set_mark_forms() {
        assert_eq!(
            p("-j MARK --set-mark 0x3").unwrap().target,
            Target::Mark {
                value: 3,
                mask: u32::MAX
            }
        );
        assert_eq!(
            p("-j MARK --set-mark 3/0xff").unwrap().target,
            Target::Mark {
                value: 3,
                mask: 0xff
            }
        );
        assert_eq!(
            p("-j MARK --set-mark 0x100/0xff").unwrap().target,
            Target::Mark {
                value: 0x100,
                mask: 0x1ff
            }
        );
        assert_eq!(
            p("-j MARK --set-xmark 0x3/0xff").unwrap().target,
            Target::Mark {
                value: 3,
                mask: 0xff
            }
        );
        assert_eq!(
            p("-j MARK --set-mark 010").unwrap().target,
            Target::Mark {
                value: 8,
                mask: u32::MAX
            }
        );
        assert!(matches!(
            p("-j MARK --or-mark 1").unwrap().target,
            Target::OtherMark(_)
        ));
        assert!(p("-j MARK").is_err());
        assert!(p("-j MARK --set-mark x").is_err());
    }

    #[test]
    fn old_mac_negation_and_multiport() {
        let r = p("-d 10.0.0.1 -p udp -m multiport --dports 53,8000:8100,:10 -m mac --mac-source ! 00:0c:29:57:88:ce -j MARK --set-mark 5").unwrap();
        assert_eq!(r.dports.unwrap().value, [(53, 53), (8000, 8100), (0, 10)]);
        assert!(r.macs[0].negated);
        assert_eq!(r.dst.unwrap().value.len, 32);
    }

    #[test]
    fn implicit_protocol_module() {
        let r = p("-d 10.0.0.1 -p tcp --dport 443 -j MARK --set-mark 5").unwrap();
        assert_eq!(r.dports.unwrap().value, [(443, 443)]);
        assert!(r.needs_ports);
        assert!(p("-d 10.0.0.1 --dport 443 -j ACCEPT").is_err());
        assert!(p("-d 10.0.0.1 -p icmp -m tcp -j ACCEPT").is_err());
    }

    #[test]
    fn unmodelled_matches_are_kept_as_text() {
        let r = p("-s 10.0.0.0/8 -d 10.0.0.1 -p tcp -m tcp --dport 80 --tcp-flags SYN,ACK SYN -m conntrack --ctstate NEW,ESTABLISHED ! -d 10.0.0.2 -j MARK --set-mark 1").unwrap();
        assert_eq!(
            r.unknown,
            [
                "-s 10.0.0.0/8",
                "-m tcp --tcp-flags SYN,ACK SYN",
                "-m conntrack --ctstate NEW,ESTABLISHED"
            ]
        );
        // The later ! -d replaced the first (iptables would refuse two -d; we keep the last).
        assert!(r.dst.unwrap().negated);
        let r = p("-i eth+ -j RETURN").unwrap();
        assert_eq!(r.unknown.len(), 1);
        let r = p("-d 10.0.0.0/255.255.255.0 -j RETURN").unwrap();
        assert_eq!(r.dst.unwrap().value.len, 24);
        let r = p("-d 10.0.0.0/255.0.255.0 -j RETURN").unwrap();
        assert_eq!(r.unknown.len(), 1);
    }

    #[test]
    fn targets() {
        assert_eq!(p("-j RETURN").unwrap().target, Target::Return);
        assert_eq!(p("-j ACCEPT").unwrap().target, Target::Accept);
        assert_eq!(p("-j DROP").unwrap().target, Target::Drop);
        assert_eq!(
            p("-j LVS_VIP1").unwrap().target,
            Target::Jump("LVS_VIP1".into())
        );
        assert_eq!(
            p("-g LVS_VIP1").unwrap().target,
            Target::Goto("LVS_VIP1".into())
        );
        assert_eq!(
            p("-j LOG --log-prefix x").unwrap().target,
            Target::Neutral("LOG".into())
        );
        assert!(matches!(
            p("-j CONNMARK --restore-mark").unwrap().target,
            Target::OtherMark(_)
        ));
        assert!(matches!(
            p("-j CONNMARK --save-mark").unwrap().target,
            Target::Neutral(_)
        ));
        assert_eq!(p("-p tcp").unwrap().target, Target::None);
    }

    #[test]
    fn nets() {
        let n = Net {
            addr: "10.1.2.0".parse().unwrap(),
            len: 24,
        };
        assert!(n.contains("10.1.2.255".parse().unwrap()));
        assert!(!n.contains("10.1.3.0".parse().unwrap()));
        assert!(!n.is_host());
        let h = Net {
            addr: "2001:db8::1".parse().unwrap(),
            len: 128,
        };
        assert!(h.is_host());
        assert!(h.contains("2001:db8::1".parse().unwrap()));
        assert!(!h.contains("2001:db8::2".parse().unwrap()));
        let all = Net {
            addr: "0.0.0.0".parse().unwrap(),
            len: 0,
        };
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_port_range("100:10").unwrap(), (10, 100));
        assert_eq!(parse_port_range("1024:").unwrap(), (1024, 65535));
        assert!(parse_port_range("http").is_err());
        assert!(parse_port_range("70000").is_err());
    }
}

//! Values inside a rule's arguments: protocols, addresses with prefixes, port ranges and
//! marks, read as iptables reads them.

use std::net::IpAddr;

use super::{Family, Net, max_len};

pub(super) fn proto_number(s: &str, family: Family) -> Option<Option<u8>> {
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

pub(super) fn parse_net(s: &str, family: Family) -> Result<Net, String> {
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

pub(super) fn parse_mark_mask(s: &str) -> Option<(u32, Option<u32>)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, Some(parse_u32(m)?))),
        None => Some((parse_u32(s)?, None)),
    }
}

//! Single values of a config: MAC addresses, VIP addresses, port ranges, names.
//!
//! Every message that repeats what the file said does so through [`quote`]: escaped and
//! cut at [`text::EXCERPT_CHARS`] characters.

use std::{
    fmt::Display,
    net::{IpAddr, Ipv4Addr},
};

use lvs_ebpf_common::MAX_NAME_LEN;

use crate::text;

/// `"..."`: an escaped, bounded excerpt of a value from the file, for messages.
pub(super) fn quote(s: &str) -> String {
    Quoted(s).to_string()
}

/// [`quote`] as a `Display`: made only when a message is.
#[derive(Clone, Copy)]
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", text::excerpt(self.0, text::EXCERPT_CHARS))
    }
}

/// `00:0C:29:57:88:CE` or `00-0c-29-57-88-ce`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || {
        format!(
            "{} is not a MAC address: expected six two-digit hex bytes separated by ':' or '-', e.g. \"00:0C:29:57:88:CE\"",
            quote(s)
        )
    };
    let sep = if s.contains(':') { ':' } else { '-' };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for b in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac == [0; 6] {
        return Err(format!(
            "{} is the all-zero MAC, not a director's address",
            quote(s)
        ));
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "{} is a multicast/broadcast MAC and can never be a source address",
            quote(s)
        ));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A VIP address: any unicast address a packet from the network can be delivered to.
///
/// Rejected, each with its reason (measured on Linux 6.18 with iptables-legacy, see
/// the README and `tests/config_iptables.rs`): the unspecified addresses, multicast,
/// 255.255.255.255, loopback (127.0.0.0/8 is dropped as a martian after PREROUTING
/// unless `route_localnet` is set; `::1` is dropped before PREROUTING), IPv4-mapped
/// `::ffff:a.b.c.d` (iptables installs it as the IPv4 address, ip6tables as an IPv6
/// address no client sends to: ambiguous, so the message asks for the IPv4 form) and the
/// deprecated IPv4-compatible `::a.b.c.d`.
pub(super) fn parse_address(s: &str) -> Result<IpAddr, String> {
    let q = Quoted(s);
    let addr: IpAddr = s.trim().parse().map_err(|_| {
        if s.contains(':') {
            format!("{q} is not a valid IPv6 address")
        } else {
            format!("{q} is not a valid IPv4 address (four numbers 0-255 separated by dots)")
        }
    })?;
    if s.trim() != s {
        return Err(format!("{q} has surrounding whitespace"));
    }
    if addr.is_unspecified() {
        return Err(format!("{q} is the unspecified address, not a VIP"));
    }
    if addr.is_multicast() {
        return Err(format!("{q} is a multicast address, not a VIP"));
    }
    match addr {
        IpAddr::V4(a) => {
            if a.is_broadcast() {
                return Err(format!("{q} is the broadcast address, not a VIP"));
            }
            if a.is_loopback() {
                return Err(format!(
                    "{q} is a loopback address (127.0.0.0/8): the kernel drops packets to it that arrive on a network interface (martian destination, unless route_localnet is set), so clients cannot reach it as a VIP; use the address clients connect to"
                ));
            }
        }
        IpAddr::V6(a) => {
            if a.is_loopback() {
                return Err(format!(
                    "{q} is the IPv6 loopback address: the kernel drops packets to ::1 that arrive on any interface but lo, before netfilter and TC see them as a VIP; use the address clients connect to"
                ));
            }
            if let Some(v4) = a.to_ipv4_mapped() {
                return Err(format!(
                    "{q} is an IPv4-mapped IPv6 address: clients reach it over IPv4 (iptables installs it as -d {v4}/32, ip6tables as an IPv6 address no client sends to); write the IPv4 VIP \"{v4}\""
                ));
            }
            let o = a.octets();
            if o[..12] == [0; 12] {
                let v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
                return Err(format!(
                    "{q} is a deprecated IPv4-compatible IPv6 address (::a.b.c.d, RFC 4291 2.5.5.1): write the IPv4 VIP \"{v4}\", or the IPv6 address clients really connect to"
                ));
            }
        }
    }
    Ok(addr)
}

/// An inclusive port range from a string `"FIRST-LAST"`, FIRST < LAST (as iptables'
/// `-m multiport --dports FIRST:LAST` requires).
pub(super) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let q = Quoted(s);
    let Some((a, b)) = s.split_once('-') else {
        if let Some((a, b)) = s.split_once(':') {
            return Err(format!(
                "{q} is iptables syntax: write the range as \"{}-{}\"",
                text::excerpt(a, 8),
                text::excerpt(b, 8)
            ));
        }
        if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{q} is a string: write a single port as a number (port = {}), a range as \"FIRST-LAST\"",
                text::excerpt(s, 8)
            ));
        }
        return Err(format!(
            "{q} is not a port range: expected \"FIRST-LAST\", e.g. \"8000-8100\""
        ));
    };
    let first = range_end(a, q)?;
    let last = range_end(b, q)?;
    if first >= last {
        return Err(format!(
            "{q}: a range needs FIRST < LAST (like iptables' multiport); write a single port as a number"
        ));
    }
    Ok((first, last))
}

fn range_end(s: &str, q: Quoted<'_>) -> Result<u16, String> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{q} is not a port range: expected \"FIRST-LAST\" with two numbers, e.g. \"8000-8100\""
        ));
    }
    match s.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!(
            "{q}: {s} is not a port in 1-65535 (omit `port` to cover every port)"
        )),
    }
}

/// A single port from an integer.
pub(super) fn port_number(n: Option<i128>, literal: &dyn Display) -> Result<u16, String> {
    match n {
        Some(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!(
            "{} is not a port in 1-65535 (omit `port` to cover every port)",
            text::excerpt(&literal.to_string(), 24)
        )),
    }
}

/// A mark from an integer.
pub(super) fn mark_number(n: Option<i128>, literal: &dyn Display) -> Result<u32, String> {
    match n {
        Some(0) => Err("must not be 0 (0 means \"unmarked\" to keepalived and IPVS)".into()),
        Some(m @ 1..=0xffff_ffff) => Ok(m as u32),
        _ => Err(format!(
            "{} is outside 1-0xffffffff",
            text::excerpt(&literal.to_string(), 24)
        )),
    }
}

/// A `mark_mask` from an integer: the bits of `skb->mark` lvs-ebpf owns (xt_MARK's
/// mask). 0 would leave it nothing to set.
pub(super) fn mask_number(n: Option<i128>, literal: &dyn Display) -> Result<u32, String> {
    match n {
        Some(0) => Err(
            "must not be 0 (no bit of the mark would be lvs-ebpf's; omit it for all 32 bits)"
                .into(),
        ),
        Some(m @ 1..=0xffff_ffff) => Ok(m as u32),
        _ => Err(format!(
            "{} is outside 0x1-0xffffffff",
            text::excerpt(&literal.to_string(), 24)
        )),
    }
}

/// A label (`vip.name`, `peer.name`): printed by `check`, `stats` and `status`, so it must
/// print as it reads.
pub(super) fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (omit it instead)".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !text::is_safe_char(*c)) {
        return Err(format!(
            "{} contains control characters or invisible/bidi format characters ({} at character {}): a name must print as it reads",
            quote(s),
            text::escape(c.encode_utf8(&mut [0; 4])),
            i + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("8000-8100"), Ok((8000, 8100)));
        assert_eq!(parse_port_range("1-65535"), Ok((1, 65535)));
        assert_eq!(parse_port_range("1-2"), Ok((1, 2)));
        for bad in [
            "0-10",
            "1-65536",
            "10-10",
            "11-10",
            "-10",
            "10-",
            "a-b",
            "1-2-3",
            " 1-2",
            "1 -2",
            "",
            "80",
            "80:90",
            "123456-123457",
            "+1-2",
        ] {
            assert!(parse_port_range(bad).is_err(), "{bad:?}");
        }
        assert!(parse_port_range("80:90").unwrap_err().contains("\"80-90\""));
        assert!(parse_port_range("80").unwrap_err().contains("port = 80"));
    }

    #[test]
    fn numbers() {
        assert_eq!(port_number(Some(1), &"1"), Ok(1));
        assert_eq!(port_number(Some(65535), &"65535"), Ok(65535));
        assert!(port_number(Some(0), &"0").is_err());
        assert!(port_number(Some(65536), &"65536").is_err());
        assert!(port_number(None, &"9999999999999999999999999999999999999999").is_err());
        assert_eq!(mark_number(Some(1), &"1"), Ok(1));
        assert_eq!(mark_number(Some(0xffff_ffff), &"x"), Ok(u32::MAX));
        assert!(mark_number(Some(0x1_0000_0000), &"x").is_err());
        assert!(mark_number(Some(-1), &"-1").is_err());
    }

    #[test]
    fn mac_with_seven_parts_or_hostile_text() {
        assert!(parse_mac("00:0C:29:57:88:CE:11").is_err());
        let e = parse_mac("\x1b[31m").unwrap_err();
        assert!(e.contains("\\x1b[31m") && !e.contains('\x1b'), "{e}");
    }
}

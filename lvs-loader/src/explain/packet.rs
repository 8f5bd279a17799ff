//! What a frame is addressed to, for the explanation's words only: source MAC,
//! destination address, protocol and port. The verdict and its reason never come from
//! here: they come from the kernel (`lvs_explain`); this reads just enough of the headers
//! to name the packet and to compute hints ("this address has only :80/tcp").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::config::{Protocol, format_endpoint, format_mac};

/// What the headers of a frame say, as far as they can be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Frame length in bytes.
    pub len: usize,
    #[serde(serialize_with = "ser_mac")]
    pub src_mac: Option<[u8; 6]>,
    /// After at most two VLAN tags.
    pub ethertype: Option<u16>,
    pub dst: Option<IpAddr>,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: Option<u8>,
    /// Destination port, when the packet carries a readable one.
    pub port: Option<u16>,
}

fn ser_mac<S: serde::Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format_mac(m)),
        None => s.serialize_none(),
    }
}

impl Summary {
    pub fn protocol_name(&self) -> Option<String> {
        let p = self.protocol?;
        Some(match Protocol::from_number(p) {
            Some(p) => p.to_string(),
            None => match p {
                1 => "icmp".into(),
                58 => "ipv6-icmp".into(),
                50 => "esp".into(),
                51 => "ah".into(),
                47 => "gre".into(),
                112 => "vrrp".into(),
                n => format!("protocol {n}"),
            },
        })
    }

    /// `00:0c:29:dc:d2:6b > 172.17.85.56:80/tcp`, with `?` for what could not be read.
    pub fn describe(&self) -> String {
        let mac = self.src_mac.map_or_else(|| "?".into(), |m| format_mac(&m));
        let dst = match (self.dst, self.protocol.and_then(Protocol::from_number)) {
            (Some(a), Some(p)) if self.port.is_some() => format_endpoint(a, self.port, p),
            (Some(a), Some(p)) => match a {
                IpAddr::V4(_) => format!("{a}/{p}"),
                IpAddr::V6(_) => format!("[{a}]/{p}"),
            },
            (Some(a), None) => match self.protocol_name() {
                Some(p) => format!("{a} {p}"),
                None => a.to_string(),
            },
            (None, _) => match self.ethertype {
                Some(t) => format!("ethertype {t:#06x}"),
                None => "?".into(),
            },
        };
        format!("{mac} > {dst}")
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the headers of `frame` (an Ethernet frame) as far as they go.
pub fn summarize(frame: &[u8]) -> Summary {
    let mut s = Summary {
        len: frame.len(),
        ..Summary::default()
    };
    if let Some(m) = frame.get(6..12) {
        s.src_mac = m.try_into().ok();
    }
    let Some(mut proto) = be16(frame, 12) else {
        return s;
    };
    let mut l3 = 14;
    for _ in 0..2 {
        if proto != 0x8100 && proto != 0x88a8 {
            break;
        }
        let Some(p) = be16(frame, l3 + 2) else {
            return s;
        };
        proto = p;
        l3 += 4;
    }
    s.ethertype = Some(proto);
    match proto {
        0x0800 => v4(frame, l3, &mut s),
        0x86dd => v6(frame, l3, &mut s),
        _ => {}
    }
    s
}

fn port_at(frame: &[u8], l4: usize, end: usize, proto: u8) -> Option<u16> {
    let need = match Protocol::from_number(proto)? {
        Protocol::Tcp => 20,
        Protocol::Udp => 8,
        Protocol::Sctp => 12,
    };
    if l4 + need > end {
        return None;
    }
    be16(frame, l4 + 2)
}

fn v4(f: &[u8], l3: usize, s: &mut Summary) {
    let Some(h) = f.get(l3..l3 + 20) else {
        return;
    };
    s.dst = Some(IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])));
    s.protocol = Some(h[9]);
    let ihl = usize::from(h[0] & 0xf) * 4;
    let tot = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let frag = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
    if !frag && ihl >= 20 && tot >= ihl {
        s.port = port_at(f, l3 + ihl, (l3 + tot).min(f.len()), h[9]);
    }
}

fn v6(f: &[u8], l3: usize, s: &mut Summary) {
    let Some(h) = f.get(l3..l3 + 40) else {
        return;
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(&h[24..40]);
    s.dst = Some(IpAddr::V6(Ipv6Addr::from(a)));
    let end = (l3 + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]))).min(f.len());
    let mut next = h[6];
    let mut at = l3 + 40;
    for _ in 0..32 {
        let (Some(&n), Some(&len)) = (f.get(at), f.get(at + 1)) else {
            return;
        };
        let len = usize::from(len);
        match next {
            0 | 43 | 60 => at += (len + 1) * 8,
            51 => at += (len + 2) * 4,
            44 => {
                let Some(off) = be16(f, at + 2) else { return };
                if off & !7 != 0 {
                    s.protocol = Some(n);
                    return;
                }
                at += 8;
            }
            _ => break,
        }
        next = n;
    }
    s.protocol = Some(next);
    s.port = port_at(f, at, end, next);
}

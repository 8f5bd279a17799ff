//! The VIP sets, peers and frames every part of the benchmark uses.
//!
//! * Filler VIPs `10.a.b.c:80/tcp` (as many as needed, up to 2^24), never hit.
//! * Targets, the VIPs traffic is sent to: [`TARGET_V4`] exact, [`TARGET_V6`] exact,
//!   [`TARGET_ANY`] any-port; [`MISS_V4`] is in no set.
//! * Peers `02:50:00:00:hh:ll`; the non-peer sender is [`NON_PEER`].

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use lvs_loader::config::{Config, Peer, Protocol, Vip, format_mac};

use crate::frames::{self, Frame, IPPROTO_TCP};

pub const TARGET_V4: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
pub const TARGET_V4_PORT: u16 = 80;
pub const TARGET_V4_MARK: u32 = 0x3;
pub const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const TARGET_V6_PORT: u16 = 443;
pub const TARGET_V6_MARK: u32 = 0x6;
pub const TARGET_ANY: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
pub const TARGET_ANY_MARK: u32 = 0x7;
pub const MISS_V4: Ipv4Addr = Ipv4Addr::new(172, 16, 9, 9);
pub const FILLER_MARK: u32 = 0x1000;
pub const NON_PEER: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);

/// Which target VIP a VIP set contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    V4,
    V6,
    AnyPort,
}

impl Target {
    pub fn vip(self) -> Vip {
        let (address, port, mark, name) = match self {
            Self::V4 => (
                IpAddr::V4(TARGET_V4),
                Some(TARGET_V4_PORT),
                TARGET_V4_MARK,
                "target-v4",
            ),
            Self::V6 => (
                IpAddr::V6(TARGET_V6),
                Some(TARGET_V6_PORT),
                TARGET_V6_MARK,
                "target-v6",
            ),
            Self::AnyPort => (IpAddr::V4(TARGET_ANY), None, TARGET_ANY_MARK, "target-any"),
        };
        Vip {
            address,
            port,
            protocol: Protocol::Tcp,
            mark,
            mark_mask: u32::MAX,
            name: Some(name.into()),
        }
    }
}

pub fn filler_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Filler VIP number `i` (distinct for i < 2^24).
pub fn filler(i: usize) -> Vip {
    Vip {
        address: IpAddr::V4(filler_addr(i)),
        port: Some(80),
        protocol: Protocol::Tcp,
        mark: FILLER_MARK,
        mark_mask: u32::MAX,
        name: None,
    }
}

pub fn peer_mac(i: usize) -> [u8; 6] {
    [0x02, 0x50, 0, 0, (i >> 8) as u8, i as u8]
}

pub fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| Peer {
            mac: peer_mac(i),
            name: None,
        })
        .collect()
}

/// `n` VIPs in all: `n - 1` fillers, then `target` (so it is last in iptables order).
pub fn vips(n: usize, target: Target) -> Vec<Vip> {
    vips_from(0, n, target)
}

/// Like [`vips`] with fillers `offset..`: a set sharing no filler with `vips(n, ..)` when
/// `offset >= n`.
pub fn vips_from(offset: usize, n: usize, target: Target) -> Vec<Vip> {
    let mut v: Vec<Vip> = (offset..offset + n.saturating_sub(1)).map(filler).collect();
    v.push(target.vip());
    v
}

pub fn config(n_vips: usize, target: Target, n_peers: usize) -> Config {
    Config {
        peers: peers(n_peers),
        vips: vips(n_vips, target),
        digest: [0; 32],
        path: None,
    }
}

/// The same config as `vips.toml` text (for the CLI measurements).
pub fn toml(config: &Config) -> String {
    let mut s = String::with_capacity(64 * config.vips.len() + 64 * config.peers.len());
    for p in &config.peers {
        let _ = writeln!(s, "[[peer]]\nmac = \"{}\"", format_mac(&p.mac));
    }
    for v in &config.vips {
        let _ = writeln!(s, "[[vip]]\naddress = \"{}\"", v.address);
        if let Some(port) = v.port {
            let _ = writeln!(s, "port = {port}");
        }
        let _ = writeln!(
            s,
            "protocol = \"{}\"\nmark = {:#x}",
            v.protocol.as_str(),
            v.mark
        );
        if let Some(name) = &v.name {
            // Our names are plain ASCII: Rust's escaping is valid TOML.
            let _ = writeln!(s, "name = {name:?}");
        }
    }
    s
}

/// A TCP RST `src -> dst:dport` with a valid TCP checksum: a director with the VIP local
/// and no listener drops it in `tcp_v4_rcv` after counting it (Tcp InSegs) and sends
/// nothing back (no RST answers a RST), so the receive path ends cleanly.
pub fn tcp_rst_v4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut f = Frame::v4(src_mac, src, dst, IPPROTO_TCP, sport, dport)
        .with_dst_mac(dst_mac)
        .bytes();
    let l4 = 14 + 20;
    f[l4 + 13] = 0x04; // RST
    f[l4 + 16] = 0;
    f[l4 + 17] = 0;
    let mut pseudo = Vec::with_capacity(12 + 20);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, IPPROTO_TCP, 0, 20]);
    pseudo.extend_from_slice(&f[l4..l4 + 20]);
    let csum = frames::checksum(&pseudo);
    f[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_checksum_verifies() {
        let f = tcp_rst_v4(NON_PEER, [2, 0, 0, 0, 0, 1], CLIENT_V4, TARGET_V4, 1234, 80);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&f[34..54]);
        assert_eq!(frames::checksum(&pseudo), 0);
    }

    #[test]
    fn target_is_last_and_fillers_distinct() {
        let v = vips(1000, Target::V4);
        assert_eq!(v.len(), 1000);
        assert_eq!(v[999].mark, TARGET_V4_MARK);
        let keys: std::collections::BTreeSet<_> = v.iter().map(Vip::key).collect();
        assert_eq!(keys.len(), 1000);
        let c = lvs_loader::config::parse(&toml(&config(50, Target::AnyPort, 3)), "t")
            .expect("generated TOML is valid");
        assert_eq!(c.vips, vips(50, Target::AnyPort));
        assert_eq!(c.peers.len(), 3);
    }
}

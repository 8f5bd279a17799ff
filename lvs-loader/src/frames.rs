//! Hand-built Ethernet frames (used by `import --verify` and by the tests crate): VLAN tags, IPv4 with options and fragments, IPv6 with
//! extension headers, TCP/UDP/SCTP headers (possibly cut short), arbitrary payloads.
//! IPv4 header checksums are correct so the kernel's `ip_rcv` accepts the frames.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_ESP: u8 = 50;
pub const NEXTHDR_AUTH: u8 = 51;
pub const NEXTHDR_NONE: u8 = 59;
pub const NEXTHDR_DEST: u8 = 60;

/// Transport header bytes: source and destination port plus the rest of the header
/// (zeros, or a valid TCP data offset), `len` bytes in all (cut short or padded).
pub fn l4_header(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let len = match proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP => 8,
        IPPROTO_SCTP => 12,
        _ => 8,
    };
    let mut h = vec![0u8; len];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    match proto {
        IPPROTO_TCP => {
            h[12] = 5 << 4; // data offset
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
        }
        IPPROTO_UDP => h[4..6].copy_from_slice(&8u16.to_be_bytes()),
        _ => {}
    }
    h
}

/// An IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options, `(len8 + 1) * 8` bytes, filled with PadN.
    HopByHop { len8: u8 },
    /// Destination options, like hop-by-hop.
    DestOpts { len8: u8 },
    /// Routing header type 0/2/4-ish with `segments_left`, `(len8 + 1) * 8` bytes.
    Routing { len8: u8, segments_left: u8 },
    /// Fragment header: offset in 8-byte units, more-fragments flag.
    Fragment { offset: u16, more: bool, id: u32 },
    /// Authentication header, `(len4 + 2) * 4` bytes.
    Auth { len4: u8 },
}

impl Ext {
    pub fn number(&self) -> u8 {
        match self {
            Ext::HopByHop { .. } => NEXTHDR_HOP,
            Ext::DestOpts { .. } => NEXTHDR_DEST,
            Ext::Routing { .. } => NEXTHDR_ROUTING,
            Ext::Fragment { .. } => NEXTHDR_FRAGMENT,
            Ext::Auth { .. } => NEXTHDR_AUTH,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match *self {
            Ext::HopByHop { len8 } | Ext::DestOpts { len8 } => {
                let total = (usize::from(len8) + 1) * 8;
                let mut h = vec![0u8; total];
                h[0] = next;
                h[1] = len8;
                // One unknown option with action "skip" (type 0x1e) covering the rest: the
                // kernel accepts it (a PadN longer than 7 bytes would be dropped).
                h[2] = 0x1e;
                h[3] = (total - 4) as u8;
                h
            }
            Ext::Routing {
                len8,
                segments_left,
            } => {
                let total = (usize::from(len8) + 1) * 8;
                let mut h = vec![0u8; total];
                h[0] = next;
                h[1] = len8;
                h[2] = 0; // type 0 (deprecated; kernel ignores it with segments_left 0)
                h[3] = segments_left;
                h
            }
            Ext::Fragment { offset, more, id } => {
                let mut h = vec![0u8; 8];
                h[0] = next;
                let fo = (offset << 3) | u16::from(more);
                h[2..4].copy_from_slice(&fo.to_be_bytes());
                h[4..8].copy_from_slice(&id.to_be_bytes());
                h
            }
            Ext::Auth { len4 } => {
                let total = (usize::from(len4) + 2) * 4;
                let mut h = vec![0u8; total];
                h[0] = next;
                h[1] = len4;
                h
            }
        }
    }
}

/// The network layer of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L3 {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        /// IP options, padded to a multiple of 4 with zeros (EOL).
        options: Vec<u8>,
        /// Fragment offset in 8-byte units.
        frag_offset: u16,
        more_fragments: bool,
        ttl: u8,
        /// Bytes after the IP header (transport header and payload).
        payload: Vec<u8>,
        /// Overrides the computed total length.
        tot_len: Option<u16>,
        /// Overrides the version/IHL byte.
        ver_ihl: Option<u8>,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ext: Vec<Ext>,
        /// Next header after the extension headers.
        proto: u8,
        payload: Vec<u8>,
        payload_len: Option<u16>,
        hop_limit: u8,
    },
    /// Any other ethertype with raw bytes.
    Raw { ethertype: u16, bytes: Vec<u8> },
}

/// A whole Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// In-band tags, outermost first: (TPID, TCI).
    pub vlans: Vec<(u16, u16)>,
    pub l3: L3,
    /// Pad with zeros to at least this many bytes (60 = Ethernet minimum without FCS).
    pub min_len: usize,
    /// Cut the final frame to at most this many bytes.
    pub cut_to: Option<usize>,
}

pub const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

impl Frame {
    /// IPv4 `src -> dst` with a `proto` header to `dport`.
    pub fn v4(
        src_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Self {
        Self {
            dst_mac: DEFAULT_DST_MAC,
            src_mac,
            vlans: Vec::new(),
            l3: L3::V4 {
                src,
                dst,
                proto,
                options: Vec::new(),
                frag_offset: 0,
                more_fragments: false,
                ttl: 64,
                payload: l4_header(proto, sport, dport),
                tot_len: None,
                ver_ihl: None,
            },
            min_len: 60,
            cut_to: None,
        }
    }

    /// IPv6 `src -> dst` with a `proto` header to `dport`.
    pub fn v6(
        src_mac: [u8; 6],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Self {
        Self {
            dst_mac: DEFAULT_DST_MAC,
            src_mac,
            vlans: Vec::new(),
            l3: L3::V6 {
                src,
                dst,
                ext: Vec::new(),
                proto,
                payload: l4_header(proto, sport, dport),
                payload_len: None,
                hop_limit: 64,
            },
            min_len: 60,
            cut_to: None,
        }
    }

    pub fn raw(src_mac: [u8; 6], ethertype: u16, bytes: Vec<u8>) -> Self {
        Self {
            dst_mac: DEFAULT_DST_MAC,
            src_mac,
            vlans: Vec::new(),
            l3: L3::Raw { ethertype, bytes },
            min_len: 60,
            cut_to: None,
        }
    }

    pub fn with_dst_mac(mut self, mac: [u8; 6]) -> Self {
        self.dst_mac = mac;
        self
    }

    pub fn with_vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid));
        self
    }

    /// Appends payload bytes after the transport header.
    pub fn with_payload(mut self, extra: &[u8]) -> Self {
        match &mut self.l3 {
            L3::V4 { payload, .. } | L3::V6 { payload, .. } => payload.extend_from_slice(extra),
            L3::Raw { bytes, .. } => bytes.extend_from_slice(extra),
        }
        self
    }

    /// Keeps only the first `n` bytes of the transport header/payload (lengths follow).
    pub fn with_l4_len(mut self, n: usize) -> Self {
        match &mut self.l3 {
            L3::V4 { payload, .. } | L3::V6 { payload, .. } => payload.truncate(n),
            L3::Raw { bytes, .. } => bytes.truncate(n),
        }
        self
    }

    pub fn with_ipv4_options(mut self, opts: &[u8]) -> Self {
        if let L3::V4 { options, .. } = &mut self.l3 {
            *options = opts.to_vec();
        }
        self
    }

    pub fn with_fragment(mut self, offset: u16, more: bool) -> Self {
        match &mut self.l3 {
            L3::V4 {
                frag_offset,
                more_fragments,
                ..
            } => {
                *frag_offset = offset;
                *more_fragments = more;
            }
            L3::V6 { ext, .. } => ext.push(Ext::Fragment {
                offset,
                more,
                id: 0x1234,
            }),
            L3::Raw { .. } => {}
        }
        self
    }

    pub fn with_ext(mut self, e: Ext) -> Self {
        if let L3::V6 { ext, .. } = &mut self.l3 {
            ext.push(e);
        }
        self
    }

    pub fn cut(mut self, n: usize) -> Self {
        self.cut_to = Some(n);
        self
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        let ethertype = match &self.l3 {
            L3::V4 { .. } => ETH_P_IP,
            L3::V6 { .. } => ETH_P_IPV6,
            L3::Raw { ethertype, .. } => *ethertype,
        };
        for (tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        match &self.l3 {
            L3::V4 {
                src,
                dst,
                proto,
                options,
                frag_offset,
                more_fragments,
                ttl,
                payload,
                tot_len,
                ver_ihl,
            } => {
                let mut opts = options.clone();
                while opts.len() % 4 != 0 {
                    opts.push(0);
                }
                let hlen = 20 + opts.len();
                let total = tot_len.unwrap_or((hlen + payload.len()) as u16);
                let mut h = vec![0u8; 20];
                h[0] = ver_ihl.unwrap_or(0x40 | (hlen / 4) as u8);
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
                let fo = (frag_offset & 0x1fff) | if *more_fragments { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&fo.to_be_bytes());
                h[8] = *ttl;
                h[9] = *proto;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                h.extend_from_slice(&opts);
                let csum = checksum(&h);
                h[10..12].copy_from_slice(&csum.to_be_bytes());
                f.extend_from_slice(&h);
                f.extend_from_slice(payload);
            }
            L3::V6 {
                src,
                dst,
                ext,
                proto,
                payload,
                payload_len,
                hop_limit,
            } => {
                let mut body = Vec::new();
                for (i, e) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(*proto, Ext::number);
                    body.extend_from_slice(&e.bytes(next));
                }
                body.extend_from_slice(payload);
                let first = ext.first().map_or(*proto, Ext::number);
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&payload_len.unwrap_or(body.len() as u16).to_be_bytes());
                h[6] = first;
                h[7] = *hop_limit;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&dst.octets());
                f.extend_from_slice(&h);
                f.extend_from_slice(&body);
            }
            L3::Raw { bytes, .. } => f.extend_from_slice(bytes),
        }
        while f.len() < self.min_len {
            f.push(0);
        }
        if let Some(n) = self.cut_to {
            f.truncate(n);
        }
        f
    }
}

/// RFC 1071 Internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

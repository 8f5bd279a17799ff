//! Reading packet captures (`tcpdump -w`): classic pcap (microsecond and nanosecond,
//! either byte order) and pcapng, Ethernet and Linux "cooked" (`tcpdump -i any`: SLL and
//! SLL2) link types, for `lvs-loader explain --pcap`.
//!
//! Bounded like config reading: a regular file only (checked before it is opened and on
//! the open descriptor), at most [`MAX_CAPTURE_BYTES`], at most [`MAX_PACKETS`] packets,
//! records of at most [`MAX_RECORD`] bytes. The whole file is parsed before any packet is
//! used: a truncated or inconsistent capture is refused with the offset of the problem.

use std::path::Path;

use crate::{
    bounded::{self, ReadError},
    text,
};

/// Largest capture accepted: 64 MiB (`tcpdump -c N` or `editcap -r` cut a larger one).
pub const MAX_CAPTURE_BYTES: u64 = 64 << 20;
/// Most packets explained from one capture.
pub const MAX_PACKETS: usize = 100_000;
/// Largest record (tcpdump's largest snapshot length).
pub const MAX_RECORD: u32 = 262_144;

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;
const ARPHRD_ETHER: u16 = 1;
const PACKET_OUTGOING: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{file}: cannot read capture: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a capture file: it is {kind}")]
    NotRegularFile { file: String, kind: &'static str },
    #[error(
        "{file}: capture too large: {size} bytes (at most {MAX_CAPTURE_BYTES}; cut it with `tcpdump -r IN -c N -w OUT`)"
    )]
    TooLarge { file: String, size: u64 },
    #[error("{file}: not a pcap or pcapng capture (first bytes {magic})")]
    BadMagic { file: String, magic: String },
    #[error("{file}: byte {offset}: {what}")]
    Malformed {
        file: String,
        offset: usize,
        what: String,
    },
    #[error("{file}: more than {MAX_PACKETS} packets (cut it with `tcpdump -r IN -c N -w OUT`)")]
    TooManyPackets { file: String },
}

/// One packet of a capture, as an Ethernet frame when its link type allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// 1-based, as `tcpdump -r` and Wireshark number them.
    pub number: usize,
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Bytes on the wire (`orig_len`); more than `data.len()` when the capture cut it.
    pub wire_len: u32,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An Ethernet frame (from a cooked capture: source MAC and EtherType from the
    /// cooked header, destination MAC zero).
    Ethernet(Vec<u8>),
    /// Sent by this host (cooked capture): TC ingress never sees it.
    Outgoing,
    /// A link type or cooked hardware type that is not Ethernet.
    NotEthernet(String),
}

/// Every packet of the capture at `path`.
pub fn read(path: &Path) -> Result<Vec<Packet>, PcapError> {
    let file = text::escape_path(path);
    let io = |source| PcapError::Io {
        file: file.clone(),
        source,
    };
    let bytes = bounded::read_regular(path, MAX_CAPTURE_BYTES).map_err(|e| match e {
        ReadError::Io(source) => io(source),
        ReadError::NotRegularFile(kind) => PcapError::NotRegularFile {
            file: file.clone(),
            kind,
        },
        ReadError::TooLarge(size) => PcapError::TooLarge {
            file: file.clone(),
            size,
        },
    })?;
    parse(&bytes, &file)
}

/// Every packet of a capture held in `bytes` (`file` names it in messages).
pub fn parse(bytes: &[u8], file: &str) -> Result<Vec<Packet>, PcapError> {
    let magic = bytes.get(..4).unwrap_or(bytes);
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => Ng { bytes, file }.packets(),
        _ => classic(bytes, file),
    }
}

fn malformed(file: &str, offset: usize, what: impl Into<String>) -> PcapError {
    PcapError::Malformed {
        file: file.to_owned(),
        offset,
        what: what.into(),
    }
}

/// A little reader of u16/u32 in the capture's byte order.
#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let x = [b[at], b[at + 1]];
        if self.big {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        }
    }
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }
}

fn classic(bytes: &[u8], file: &str) -> Result<Vec<Packet>, PcapError> {
    let bad_magic = || PcapError::BadMagic {
        file: file.to_owned(),
        magic: bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    if bytes.len() < 4 {
        return Err(bad_magic());
    }
    let m = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (big, nanos) = match m {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        _ => return Err(bad_magic()),
    };
    let o = Order { big };
    if bytes.len() < 24 {
        return Err(malformed(
            file,
            bytes.len(),
            "the file header is cut short (24 bytes)",
        ));
    }
    let linktype = o.u32(bytes, 20) & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        if bytes.len() - at < 16 {
            return Err(malformed(
                file,
                at,
                format!(
                    "packet {}: record header cut short (capture truncated?)",
                    out.len() + 1
                ),
            ));
        }
        let secs = u64::from(o.u32(bytes, at));
        let frac = u64::from(o.u32(bytes, at + 4));
        let caplen = o.u32(bytes, at + 8);
        let wire_len = o.u32(bytes, at + 12);
        let number = out.len() + 1;
        let data = record(bytes, at + 16, caplen, wire_len, number, file)?;
        let time_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        push(&mut out, number, time_ns, wire_len, linktype, data, file)?;
        at += 16 + caplen as usize;
    }
    Ok(out)
}

/// The `caplen` bytes of packet `number` at `at`, checked.
fn record<'a>(
    bytes: &'a [u8],
    at: usize,
    caplen: u32,
    wire_len: u32,
    number: usize,
    file: &str,
) -> Result<&'a [u8], PcapError> {
    if caplen > MAX_RECORD {
        return Err(malformed(
            file,
            at,
            format!(
                "packet {number}: {caplen} bytes captured, more than any snapshot length ({MAX_RECORD})"
            ),
        ));
    }
    if wire_len < caplen {
        return Err(malformed(
            file,
            at,
            format!("packet {number}: {caplen} bytes captured of a {wire_len}-byte packet"),
        ));
    }
    bytes.get(at..at + caplen as usize).ok_or_else(|| {
        malformed(
            file,
            at,
            format!(
                "packet {number}: {caplen} bytes announced, {} left (capture truncated?)",
                bytes.len() - at
            ),
        )
    })
}

fn push(
    out: &mut Vec<Packet>,
    number: usize,
    time_ns: u64,
    wire_len: u32,
    linktype: u32,
    data: &[u8],
    file: &str,
) -> Result<(), PcapError> {
    if out.len() >= MAX_PACKETS {
        return Err(PcapError::TooManyPackets {
            file: file.to_owned(),
        });
    }
    // Cooked headers replace the Ethernet header: the wire length of the frame differs
    // by the difference.
    let (data, wire_len) = link(linktype, data, wire_len);
    out.push(Packet {
        number,
        time_ns,
        wire_len,
        data,
    });
    Ok(())
}

/// The Ethernet frame of a record of `linktype`.
fn link(linktype: u32, d: &[u8], wire_len: u32) -> (Data, u32) {
    // (hardware type, packet type, address length, address, protocol, header length)
    let cooked = match linktype {
        LINKTYPE_ETHERNET => return (Data::Ethernet(d.to_vec()), wire_len),
        LINKTYPE_LINUX_SLL if d.len() >= 16 => Some((
            u16::from_be_bytes([d[2], d[3]]),
            u16::from_be_bytes([d[0], d[1]]) as u8,
            u16::from_be_bytes([d[4], d[5]]),
            &d[6..14],
            u16::from_be_bytes([d[14], d[15]]),
            16usize,
        )),
        LINKTYPE_LINUX_SLL2 if d.len() >= 20 => Some((
            u16::from_be_bytes([d[8], d[9]]),
            d[10],
            u16::from(d[11]),
            &d[12..20],
            u16::from_be_bytes([d[0], d[1]]),
            20usize,
        )),
        LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2 => None,
        other => {
            return (
                Data::NotEthernet(format!("link type {other} is not Ethernet")),
                wire_len,
            );
        }
    };
    let Some((hw, pkttype, alen, addr, proto, hlen)) = cooked else {
        return (
            Data::NotEthernet("cooked header cut short".into()),
            wire_len,
        );
    };
    if pkttype == PACKET_OUTGOING {
        return (Data::Outgoing, wire_len);
    }
    if hw != ARPHRD_ETHER || alen != 6 {
        return (
            Data::NotEthernet(format!(
                "captured on a link of hardware type {hw}, not Ethernet"
            )),
            wire_len,
        );
    }
    let mut f = Vec::with_capacity(14 + d.len() - hlen);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&addr[..6]);
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(&d[hlen..]);
    (
        Data::Ethernet(f),
        (wire_len + 14).saturating_sub(hlen as u32),
    )
}

/// pcapng: sections of blocks; interfaces (link type, time resolution) per section.
struct Ng<'a> {
    bytes: &'a [u8],
    file: &'a str,
}

const NG_SHB: u32 = 0x0a0d_0d0a;
const NG_IDB: u32 = 1;
const NG_SPB: u32 = 3;
const NG_EPB: u32 = 6;

/// An interface of a pcapng section: link type, snapshot length, ticks per second.
struct Iface {
    linktype: u32,
    snaplen: u32,
    ticks: u64,
}

impl Ng<'_> {
    fn packets(&self) -> Result<Vec<Packet>, PcapError> {
        let b = self.bytes;
        let mut out = Vec::new();
        let mut ifaces: Vec<Iface> = Vec::new();
        let mut o = Order { big: false };
        let mut at = 0;
        while at < b.len() {
            if b.len() - at < 12 {
                return Err(self.bad(at, "block header cut short (capture truncated?)"));
            }
            let kind = o.u32(b, at);
            if kind == NG_SHB {
                o = match u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) {
                    0x1a2b_3c4d => Order { big: false },
                    0x4d3c_2b1a => Order { big: true },
                    _ => return Err(self.bad(at + 8, "bad byte-order magic")),
                };
                ifaces.clear();
            }
            let len = o.u32(b, at + 4) as usize;
            if len < 12 || !len.is_multiple_of(4) || len > b.len() - at {
                return Err(self.bad(
                    at,
                    format!(
                        "block of {len} bytes ({} left; capture truncated?)",
                        b.len() - at
                    ),
                ));
            }
            if o.u32(b, at + len - 4) as usize != len {
                return Err(self.bad(at, "block lengths disagree"));
            }
            let body = &b[at + 8..at + len - 4];
            match kind {
                NG_IDB => {
                    if body.len() < 8 {
                        return Err(self.bad(at, "interface block cut short"));
                    }
                    ifaces.push(Iface {
                        linktype: u32::from(o.u16(body, 0)),
                        snaplen: o.u32(body, 4),
                        ticks: tsresol(&body[8..], o),
                    });
                }
                NG_EPB => {
                    if body.len() < 20 {
                        return Err(self.bad(at, "packet block cut short"));
                    }
                    let id = o.u32(body, 0) as usize;
                    let Some(i) = ifaces.get(id) else {
                        return Err(self.bad(at, format!("packet of undeclared interface {id}")));
                    };
                    let ts = u64::from(o.u32(body, 4)) << 32 | u64::from(o.u32(body, 8));
                    let caplen = o.u32(body, 12);
                    let wire = o.u32(body, 16);
                    let number = out.len() + 1;
                    let data = record(body, 20, caplen, wire, number, self.file)
                        .map_err(|e| self.shift(e, at + 8))?;
                    let time_ns = to_ns(ts, i.ticks);
                    push(&mut out, number, time_ns, wire, i.linktype, data, self.file)?;
                }
                NG_SPB => {
                    if body.len() < 4 {
                        return Err(self.bad(at, "packet block cut short"));
                    }
                    let Some(i) = ifaces.first() else {
                        return Err(self.bad(at, "packet before any interface block"));
                    };
                    let wire = o.u32(body, 0);
                    let caplen = match i.snaplen {
                        0 => wire,
                        s => wire.min(s),
                    }
                    .min((body.len() - 4) as u32);
                    let number = out.len() + 1;
                    let data = record(body, 4, caplen, wire, number, self.file)
                        .map_err(|e| self.shift(e, at + 8))?;
                    push(&mut out, number, 0, wire, i.linktype, data, self.file)?;
                }
                _ => {}
            }
            at += len;
        }
        Ok(out)
    }

    fn bad(&self, offset: usize, what: impl Into<String>) -> PcapError {
        malformed(self.file, offset, what)
    }

    /// An error whose offset is relative to a block body.
    fn shift(&self, e: PcapError, base: usize) -> PcapError {
        match e {
            PcapError::Malformed { file, offset, what } => PcapError::Malformed {
                file,
                offset: offset + base,
                what,
            },
            e => e,
        }
    }
}

/// Ticks per second from an interface block's options (`if_tsresol`, default 10^6).
fn tsresol(mut opts: &[u8], o: Order) -> u64 {
    while opts.len() >= 4 {
        let code = o.u16(opts, 0);
        let len = usize::from(o.u16(opts, 2));
        let padded = (len + 3) & !3;
        if code == 0 || opts.len() < 4 + padded {
            break;
        }
        if code == 9 && len >= 1 {
            let v = opts[4];
            let e = u32::from(v & 0x7f);
            return if v & 0x80 == 0 {
                10u64.checked_pow(e).unwrap_or(0)
            } else {
                2u64.checked_pow(e).unwrap_or(0)
            };
        }
        opts = &opts[4 + padded..];
    }
    1_000_000
}

fn to_ns(ticks: u64, per_sec: u64) -> u64 {
    if per_sec == 0 {
        return 0;
    }
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(per_sec);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic_file(linktype: u32, packets: &[(&[u8], u32)]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&linktype.to_le_bytes());
        for (i, (d, wire)) in packets.iter().enumerate() {
            f.extend_from_slice(&(1000 + i as u32).to_le_bytes());
            f.extend_from_slice(&5u32.to_le_bytes());
            f.extend_from_slice(&(d.len() as u32).to_le_bytes());
            f.extend_from_slice(&wire.to_le_bytes());
            f.extend_from_slice(d);
        }
        f
    }

    #[test]
    fn classic_records_and_errors() {
        let f = classic_file(1, &[(&[1; 60], 60), (&[2; 20], 1500)]);
        let p = parse(&f, "c").expect("parse");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].time_ns, 1000 * 1_000_000_000 + 5000);
        assert_eq!(p[1].wire_len, 1500);
        assert_eq!(p[1].data, Data::Ethernet(vec![2; 20]));
        // Cut anywhere inside the last record: refused with an offset.
        for cut in [f.len() - 1, f.len() - 20, f.len() - 30, 23] {
            let e = parse(&f[..cut], "c").expect_err("truncated");
            assert!(matches!(e, PcapError::Malformed { .. }), "{cut}: {e}");
        }
        assert!(matches!(
            parse(b"hello world, not a capture", "c"),
            Err(PcapError::BadMagic { .. })
        ));
        assert!(matches!(parse(b"", "c"), Err(PcapError::BadMagic { .. })));
        // caplen > wire length, caplen past every snapshot length.
        let mut bad = classic_file(1, &[(&[1; 60], 60)]);
        bad[24 + 12..24 + 16].copy_from_slice(&10u32.to_le_bytes());
        assert!(parse(&bad, "c").is_err());
        let mut huge = classic_file(1, &[(&[1; 60], 60)]);
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[24 + 12..24 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = parse(&huge, "c").expect_err("huge record");
        assert!(e.to_string().contains("snapshot length"), "{e}");
    }

    #[test]
    fn cooked_captures_become_ethernet() {
        let mut sll = vec![
            0, 0, 0, 1, 0, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0, 0, 0x08, 0x00,
        ];
        sll.extend_from_slice(&[0x45; 20]);
        let f = classic_file(113, &[(&sll, sll.len() as u32)]);
        let p = parse(&f, "c").expect("parse");
        let Data::Ethernet(e) = &p[0].data else {
            panic!("{:?}", p[0].data)
        };
        assert_eq!(&e[6..14], &[0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00]);
        assert_eq!(e.len(), 34);
        assert_eq!(p[0].wire_len, 34);
        let mut out = sll.clone();
        out[1] = 4;
        let f = classic_file(113, &[(&out, out.len() as u32)]);
        assert_eq!(parse(&f, "c").expect("parse")[0].data, Data::Outgoing);
        let f = classic_file(101, &[(&[0x45; 20], 20)]);
        assert!(matches!(
            parse(&f, "c").expect("parse")[0].data,
            Data::NotEthernet(_)
        ));
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(body);
        b.resize(len - 4, 0);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b
    }

    #[test]
    fn pcapng_sections_interfaces_packets() {
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut idb = vec![1, 0, 0, 0, 0, 0, 4, 0];
        // if_tsresol = 9 (nanoseconds)
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        let mut epb = Vec::new();
        for w in [0u32, 0, 1_000_000_007, 60, 60] {
            epb.extend_from_slice(&w.to_le_bytes());
        }
        epb.extend_from_slice(&[7; 60]);
        let mut f = block(NG_SHB, &shb);
        f.extend(block(NG_IDB, &idb));
        f.extend(block(NG_EPB, &epb));
        f.extend(block(0x8000_0001, &[1, 2, 3]));
        let p = parse(&f, "n").expect("parse");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].time_ns, 1_000_000_007);
        assert_eq!(p[0].data, Data::Ethernet(vec![7; 60]));
        for cut in [f.len() - 1, f.len() - 17, 30] {
            assert!(parse(&f[..cut], "n").is_err(), "{cut}");
        }
    }
}

//! pcapng: section header, interface description, enhanced and simple packet blocks;
//! byte order per section, link type and time resolution per interface.

use super::{
    Order, Packet, PcapError, malformed,
    record::{push, record},
};

/// pcapng: sections of blocks; interfaces (link type, time resolution) per section.
pub(super) struct Ng<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) file: &'a str,
}

pub(super) const NG_SHB: u32 = 0x0a0d_0d0a;
pub(super) const NG_IDB: u32 = 1;
const NG_SPB: u32 = 3;
pub(super) const NG_EPB: u32 = 6;

/// An interface of a pcapng section: link type, snapshot length, ticks per second.
struct Iface {
    linktype: u32,
    snaplen: u32,
    ticks: u64,
}

impl Ng<'_> {
    pub(super) fn packets(&self) -> Result<Vec<Packet>, PcapError> {
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

//! Reading packet captures (`tcpdump -w`): classic pcap (microsecond and nanosecond,
//! either byte order) and pcapng, Ethernet and Linux "cooked" (`tcpdump -i any`: SLL and
//! SLL2) link types, for `lvs-loader explain --pcap`.
//!
//! Bounded like config reading: a regular file only (checked before it is opened and on
//! the open descriptor), at most [`MAX_CAPTURE_BYTES`], at most [`MAX_PACKETS`] packets,
//! records of at most [`MAX_RECORD`] bytes. The whole file is parsed before any packet is
//! used: a truncated or inconsistent capture is refused with the offset of the problem.
//!
//! Here: the packets, the errors and the entry points. `classic` and `ng` read the two
//! formats, `record` checks one record, `link` turns its link layer into Ethernet.

mod classic;
mod link;
mod ng;
mod record;
#[cfg(test)]
mod tests;

use std::path::Path;

use classic::classic;
use ng::Ng;

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

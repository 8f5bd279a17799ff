//! One record of either format: its captured bytes checked against the limits and the
//! capture, then added as a [`Packet`].

use super::{MAX_PACKETS, MAX_RECORD, Packet, PcapError, link::link, malformed};

/// The `caplen` bytes of packet `number` at `at`, checked.
pub(super) fn record<'a>(
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

pub(super) fn push(
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

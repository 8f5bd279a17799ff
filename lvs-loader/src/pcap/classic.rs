//! Classic pcap: microsecond or nanosecond timestamps, either byte order.

use super::{
    Order, Packet, PcapError, malformed,
    record::{push, record},
};

pub(super) fn classic(bytes: &[u8], file: &str) -> Result<Vec<Packet>, PcapError> {
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

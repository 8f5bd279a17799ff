//! Link types: an Ethernet frame as is, a Linux cooked header (SLL, SLL2) turned into
//! an Ethernet header, anything else named.

use super::Data;

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;
const ARPHRD_ETHER: u16 = 1;
const PACKET_OUTGOING: u8 = 4;

/// The Ethernet frame of a record of `linktype`.
pub(super) fn link(linktype: u32, d: &[u8], wire_len: u32) -> (Data, u32) {
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

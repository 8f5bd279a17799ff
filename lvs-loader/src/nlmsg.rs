//! Walking netlink datagrams: the messages of a datagram and the attributes of a
//! message, every length checked against the bytes there are. Used by the daemon's
//! rtnetlink watch and by the namespace identity's sock_diag dump.

/// `NLMSG_HDRLEN`: `struct nlmsghdr`, aligned.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLA_TYPE_MASK`: an attribute's type without the nested/byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The native-endian `u16` at `at`, if the bytes are there.
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The native-endian `u32` at `at`, if the bytes are there.
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// `NLMSG_ALIGN` / `NLA_ALIGN`.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One message: its type, sequence number and payload (after the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// A message whose length does not fit the datagram (or is shorter than a header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// The messages of a datagram, in order; a message that can't be delimited yields
/// `Err(Truncated)` and ends the walk. Trailing bytes shorter than a header are ignored.
pub fn messages(data: &[u8]) -> impl Iterator<Item = Result<Message<'_>, Truncated>> {
    let mut at = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || at + NLMSG_HDRLEN > data.len() {
            return None;
        }
        let len = u32_at(data, at).map_or(0, |l| l as usize);
        if len < NLMSG_HDRLEN || len > data.len() - at {
            done = true;
            return Some(Err(Truncated));
        }
        let m = Message {
            kind: u16_at(data, at + 4).unwrap_or(0),
            seq: u32_at(data, at + 8).unwrap_or(0),
            payload: &data[at + NLMSG_HDRLEN..at + len],
        };
        at += align4(len);
        Some(Ok(m))
    })
}

/// The attributes `(type, value)` in `data` (a message payload past its fixed header),
/// in order; the walk stops at the first attribute that can't be delimited.
pub fn attributes(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(data, at)?);
        let kind = u16_at(data, at + 2)? & NLA_TYPE_MASK;
        if len < 4 || len > data.len() - at {
            return None;
        }
        let value = &data[at + 4..at + len];
        at += align4(len);
        Some((kind, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn messages_in_order_with_padding() {
        let mut d = msg(16, 1, &[1, 2, 3]);
        d.extend(msg(3, 2, &[]));
        let got: Vec<_> = messages(&d).collect();
        assert_eq!(
            got,
            vec![
                Ok(Message {
                    kind: 16,
                    seq: 1,
                    payload: &[1, 2, 3][..]
                }),
                Ok(Message {
                    kind: 3,
                    seq: 2,
                    payload: &[][..]
                })
            ]
        );
    }

    #[test]
    fn a_length_past_the_end_or_below_a_header_is_truncated() {
        for bad_len in [NLMSG_HDRLEN as u32 - 1, 0, 100] {
            let mut d = msg(16, 1, &[0; 8]);
            d[..4].copy_from_slice(&bad_len.to_ne_bytes());
            assert_eq!(messages(&d).collect::<Vec<_>>(), vec![Err(Truncated)]);
        }
        // Exactly the datagram's length is fine; short trailing bytes are ignored.
        let mut d = msg(16, 1, &[0; 8]);
        d.extend_from_slice(&[0; NLMSG_HDRLEN - 1]);
        assert_eq!(messages(&d).count(), 1);
    }

    #[test]
    fn attributes_stop_at_a_broken_one() {
        let mut d = Vec::new();
        d.extend_from_slice(&6u16.to_ne_bytes());
        d.extend_from_slice(&(3u16 | 0x8000).to_ne_bytes());
        d.extend_from_slice(b"ab\0\0");
        d.extend_from_slice(&4u16.to_ne_bytes());
        d.extend_from_slice(&7u16.to_ne_bytes());
        d.extend_from_slice(&9u16.to_ne_bytes()); // runs past the end
        d.extend_from_slice(&1u16.to_ne_bytes());
        let got: Vec<_> = attributes(&d).collect();
        assert_eq!(got, vec![(3, &b"ab"[..]), (7, &[][..])]);
        let mut short = Vec::new();
        short.extend_from_slice(&3u16.to_ne_bytes());
        short.extend_from_slice(&1u16.to_ne_bytes());
        assert_eq!(attributes(&short).count(), 0);
    }
}

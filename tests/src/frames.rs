//! Hand-built Ethernet frames: the builders live in the loader library
//! (`lvs_loader::frames`, which `import --verify` uses too) and are re-exported here so
//! the tests keep their paths; plus header-corrupting edits for malformed-frame tests
//! ([`Corrupt`]) and a panicking MAC parser for test literals.

pub use lvs_loader::frames::*;

pub fn parse_mac(s: &str) -> [u8; 6] {
    lvs_loader::config::parse_mac(s).unwrap_or_else(|e| panic!("bad MAC in test: {e}"))
}

/// Header fields a test overrides with a wrong value (the builder computes them right).
/// Each is a no-op on a frame of the other family.
pub trait Corrupt: Sized {
    /// IPv4: the version/IHL byte.
    fn with_ver_ihl(self, v: u8) -> Self;
    /// IPv4: the total length field.
    fn with_tot_len(self, n: u16) -> Self;
    /// IPv6: the payload length field.
    fn with_payload_len(self, n: u16) -> Self;
    /// The IP length field (IPv4 `tot_len`, IPv6 `payload_len`) off by `delta` bytes
    /// from the real length, clamped to 0..=65535 (IPv6 extension headers count as 8
    /// bytes each, as the random frames have always done: it keeps their seeds' frames).
    fn with_ip_len_off_by(self, delta: i32) -> Self;
}

impl Corrupt for Frame {
    fn with_ver_ihl(mut self, v: u8) -> Self {
        if let L3::V4 { ver_ihl, .. } = &mut self.l3 {
            *ver_ihl = Some(v);
        }
        self
    }

    fn with_tot_len(mut self, n: u16) -> Self {
        if let L3::V4 { tot_len, .. } = &mut self.l3 {
            *tot_len = Some(n);
        }
        self
    }

    fn with_payload_len(mut self, n: u16) -> Self {
        if let L3::V6 { payload_len, .. } = &mut self.l3 {
            *payload_len = Some(n);
        }
        self
    }

    fn with_ip_len_off_by(mut self, delta: i32) -> Self {
        let off = |real: usize| (real as i32 + delta).clamp(0, 0xffff) as u16;
        match &mut self.l3 {
            L3::V4 {
                tot_len,
                payload,
                options,
                ..
            } => *tot_len = Some(off(20 + options.len().div_ceil(4) * 4 + payload.len())),
            L3::V6 {
                payload_len,
                payload,
                ext,
                ..
            } => *payload_len = Some(off(payload.len() + ext.len() * 8)),
            L3::Raw { .. } => {}
        }
        self
    }
}

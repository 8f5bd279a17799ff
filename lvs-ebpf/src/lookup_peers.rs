//! Peer MACs beyond the inline ones: the per-generation peer hash maps.

use lvs_ebpf_common::MacKey;

use crate::maps::{LVS_PEERS_0, LVS_PEERS_1};

/// `mac` in the peer hash map of generation `g` (only for generations with more peers
/// than fit inline).
#[inline(always)]
pub fn in_peer_map(g: u32, mac: u64) -> bool {
    // SAFETY: MacKey is the six bytes and two zero bytes, exactly mac's little-endian
    // bytes (a 48-bit value).
    let key: MacKey = unsafe { core::mem::transmute(mac) };
    // One branch per generation, each with a constant map pointer: the verifier can then
    // inline the hash lookup instead of calling the generic helper.
    if g == 1 {
        LVS_PEERS_1.get_ptr(&key).is_some()
    } else {
        LVS_PEERS_0.get_ptr(&key).is_some()
    }
}

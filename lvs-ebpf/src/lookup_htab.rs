//! The benchmark contender `lvs-ebpf (htab)`: the same program with the VIPs and peers in
//! kernel hash maps (one pair per generation), as lvs-ebpf did before the call-free table.
//! A VIP hit costs two hash lookups (VIP, peer), an any-port hit three; each is a call
//! into the kernel (`__htab_map_lookup_elem`).

use aya_ebpf::{macros::map, maps::HashMap};
use lvs_ebpf_common::{
    FAMILY_V4, FAMILY_V6, GenControl, KeepLine, MAX_VIPS, MacKey, VipKey, VipValue,
};

use crate::{
    decide::{Backend, Hit},
    maps::{LVS_PEERS_0, LVS_PEERS_1},
};

#[map]
pub static LVS_VIPS_0: HashMap<VipKey, VipValue> = HashMap::with_max_entries(MAX_VIPS, 0);
#[map]
pub static LVS_VIPS_1: HashMap<VipKey, VipValue> = HashMap::with_max_entries(MAX_VIPS, 0);

/// A [`VipKey`] written as five words: address words, then `port | proto << 16 |
/// family << 24` (the little-endian layout of `port`, `proto`, `family`).
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct KeyWords([u32; 5]);
const _: () = assert!(core::mem::size_of::<KeyWords>() == core::mem::size_of::<VipKey>());

#[inline(always)]
fn lookup(g: u32, k: KeyWords) -> Option<Hit> {
    // SAFETY: same size and alignment, every bit pattern is a valid VipKey.
    let key: VipKey = unsafe { core::mem::transmute(k) };
    let v = if g == 1 {
        LVS_VIPS_1.get_ptr(&key)
    } else {
        LVS_VIPS_0.get_ptr(&key)
    }?;
    // SAFETY: a value of the map, copied out at once.
    let v = unsafe { *v };
    Some(Hit {
        mark: v.mark,
        keep: !v.mask,
        slot: v.index,
        any_port: false,
    })
}

/// Kernel hash maps.
pub struct Htab;

impl Backend for Htab {
    #[inline(always)]
    fn find_v4<const COUNT: bool>(
        gc: &GenControl,
        _keep: &KeepLine,
        g: u32,
        key: u64,
        has_port: bool,
    ) -> Option<Hit> {
        let addr = key as u32;
        let port = (key >> 32) as u32 & 0xffff;
        let proto = (key >> 48) as u32 & 0xff;
        let tail = proto << 16 | u32::from(FAMILY_V4) << 24;
        if has_port {
            if let Some(h) = lookup(g, KeyWords([addr, 0, 0, 0, tail | port])) {
                return Some(h);
            }
        }
        if !gc.v4.any_port() {
            return None;
        }
        lookup(g, KeyWords([addr, 0, 0, 0, tail])).map(|h| Hit {
            any_port: true,
            ..h
        })
    }

    #[inline(always)]
    fn find_v6<const COUNT: bool>(
        gc: &GenControl,
        _keep: &KeepLine,
        g: u32,
        w0: u64,
        w1: u64,
        tail: u32,
        has_port: bool,
    ) -> Option<Hit> {
        let a = [w0 as u32, (w0 >> 32) as u32, w1 as u32, (w1 >> 32) as u32];
        let family = u32::from(FAMILY_V6) << 24;
        if has_port {
            if let Some(h) = lookup(g, KeyWords([a[0], a[1], a[2], a[3], tail | family])) {
                return Some(h);
            }
        }
        if !gc.v6.any_port() {
            return None;
        }
        let tail = (tail & !0xffff) | family;
        lookup(g, KeyWords([a[0], a[1], a[2], a[3], tail])).map(|h| Hit {
            any_port: true,
            ..h
        })
    }

    #[inline(always)]
    fn is_peer(_gen: &GenControl, g: u32, mac: u64) -> bool {
        in_peer_map(g, mac)
    }
}

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

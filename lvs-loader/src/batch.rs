//! `BPF_MAP_UPDATE_BATCH` (Linux >= 5.6): one syscall per chunk instead of one per
//! element, which is what makes attaching or reloading 100,000 VIPs fast. aya 0.14 has no
//! batch API, so this is the raw syscall; callers fall back to per-element updates when
//! the kernel or map type does not support it.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use crate::bpf::bpf_cmd;

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// Elements per syscall.
const CHUNK: usize = 16_384;

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The kernel-internal ENOTSUPP, which BPF_MAP_*_BATCH returns to userspace for a map type
/// without batch operations (per-CPU arrays before Linux 5.13; found on Debian 11's 5.10 by
/// `cargo xtask vm-test`). Not the same number as libc's ENOTSUP/EOPNOTSUPP (95).
const ENOTSUPP_KERNEL: i32 = 524;

/// Whether an error means "no batch support here" (fall back) rather than a real failure.
pub fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOTSUP | libc::ENOSYS | ENOTSUPP_KERNEL)
    )
}

/// Updates `keys[i] -> values[i*per_key .. (i+1)*per_key]` (`per_key` = possible CPUs for
/// per-CPU maps, 1 otherwise). `K` and `V` must be the map's exact key and value types
/// (values of per-CPU maps must be multiples of 8 bytes).
pub fn update<K: Copy, V: Copy>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
    per_key: usize,
) -> std::io::Result<()> {
    debug_assert_eq!(values.len(), keys.len() * per_key);
    for (kc, vc) in keys.chunks(CHUNK).zip(values.chunks(CHUNK * per_key)) {
        let mut attr = BatchAttr {
            keys: kc.as_ptr() as u64,
            values: vc.as_ptr() as u64,
            count: kc.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: keys/values point at kc.len() elements of the map's key/value layout.
        unsafe { bpf_cmd(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
    }
    Ok(())
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Values in memory at once while folding over an array ([`fold_array`]).
const FOLD_BYTES: usize = 4 << 20;

/// Every value of an array map of `len` entries, chunk by chunk, with
/// `BPF_MAP_LOOKUP_BATCH` (Linux >= 5.6): `f(first_entry, values)` gets each chunk's
/// values (`per_key` per entry: possible CPUs for per-CPU maps), one syscall per chunk
/// instead of one per element. At most [`FOLD_BYTES`] of values are held at once,
/// whatever the CPU count (the whole counter array of 131,072 VIPs on a 64-CPU director
/// would be 335 MB). `V` must be the map's exact value type. On an error after some chunks
/// were handed over, `f` has seen them.
pub fn fold_array<V: Copy + Default>(
    map: BorrowedFd<'_>,
    len: usize,
    per_key: usize,
    mut f: impl FnMut(usize, &[V]),
) -> std::io::Result<()> {
    let per_entry = (per_key * std::mem::size_of::<V>()).max(1);
    let chunk = (FOLD_BYTES / per_entry).clamp(1, CHUNK);
    let mut values: Vec<V> = vec![V::default(); chunk * per_key];
    let mut keys = vec![0u32; chunk];
    let mut token = 0u32;
    let mut done = 0usize;
    let mut first = true;
    while done < len {
        let want = chunk.min(len - done);
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &token as *const u32 as u64
            },
            out_batch: &mut token as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: want as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: keys has room for `want` keys, values for `want * per_key` values of
        // the map's value type; token is a u32 (the key type of arrays).
        let rc = unsafe { bpf_cmd(BPF_MAP_LOOKUP_BATCH, &mut attr) };
        let got = (attr.count as usize).min(want);
        if let Err(e) = rc {
            // ENOENT: the last chunk (attr.count says how much of it was filled).
            if e.raw_os_error() == Some(libc::ENOENT) {
                f(done, &values[..got * per_key]);
                done += got;
                break;
            }
            return Err(e);
        }
        f(done, &values[..got * per_key]);
        done += got;
        first = false;
        if got == 0 {
            break;
        }
    }
    if done != len {
        return Err(std::io::Error::other(format!(
            "batch lookup returned {done} of {len} entries"
        )));
    }
    Ok(())
}

//! `BPF_MAP_UPDATE_BATCH` (Linux >= 5.6): one syscall per chunk instead of one per
//! element, which is what makes attaching or reloading 100,000 VIPs fast. aya 0.14 has no
//! batch API, so this is the raw syscall; callers fall back to per-element updates when
//! the kernel or map type does not support it.

use std::os::fd::{AsRawFd as _, BorrowedFd};

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
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

//! This host's MACs, for the peer checks.

use std::collections::BTreeMap;

/// MACs of this host's interfaces in the current network namespace (if_nameindex and
/// SIOCGIFHWADDR: /sys/class/net would show the namespace sysfs was mounted in), with
/// their names.
pub fn local_macs() -> BTreeMap<[u8; 6], String> {
    let mut out = BTreeMap::new();
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return out;
    }
    // SAFETY: if_nameindex returns a list ending with a zero entry, freed below.
    let list = unsafe { libc::if_nameindex() };
    if !list.is_null() {
        let mut p = list;
        // SAFETY: walking the list up to its terminator.
        while unsafe { (*p).if_index } != 0 {
            // SAFETY: if_name is a NUL-terminated string of at most IFNAMSIZ bytes.
            let name = unsafe { std::ffi::CStr::from_ptr((*p).if_name) };
            // SAFETY: an all-zero ifreq is valid; the name fits (kernel names do).
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, s) in req
                .ifr_name
                .iter_mut()
                .zip(name.to_bytes().iter().take(libc::IFNAMSIZ - 1))
            {
                *d = *s as libc::c_char;
            }
            // SAFETY: SIOCGIFHWADDR fills req.ifr_ifru.
            // `as _`: the request is a c_ulong in glibc's ioctl and a c_int in musl's (the
            // package's static build).
            if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR as _, &mut req) } == 0 {
                // SAFETY: the kernel filled ifru_hwaddr.
                let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
                let mut mac = [0u8; 6];
                for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
                    *m = *b as u8;
                }
                if mac != [0; 6] {
                    out.entry(mac)
                        .or_insert_with(|| name.to_string_lossy().into_owned());
                }
            }
            // SAFETY: still inside the list.
            p = unsafe { p.add(1) };
        }
        // SAFETY: returned by if_nameindex.
        unsafe { libc::if_freenameindex(list) };
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    out
}

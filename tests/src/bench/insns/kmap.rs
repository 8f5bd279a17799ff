//! A kernel map opened by id: its type and sizes (from fdinfo), and BPF_MAP_LOOKUP_ELEM on
//! it, which answers the interpreter's lookups with the loaded datapath's real entries.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
pub(super) const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

/// A kernel map, opened by id.
pub(super) struct KMap {
    pub(super) name: String,
    pub(super) fd: OwnedFd,
    pub(super) map_type: u32,
    pub(super) key_size: usize,
    value_size: usize,
}

impl KMap {
    pub(super) fn open(name: &str, id: u32) -> Result<Self> {
        #[repr(C)]
        struct Attr {
            id: u32,
            next_id: u32,
            open_flags: u32,
        }
        let mut attr = Attr {
            id,
            next_id: 0,
            open_flags: 0,
        };
        // SAFETY: a valid bpf_attr prefix for BPF_MAP_GET_FD_BY_ID.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_FD_BY_ID,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>() as u32,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("map {name}"));
        }
        // SAFETY: the kernel just gave us this fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
        let field = |k: &str| -> Result<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("no {k} in fdinfo of map {name}"))
        };
        Ok(Self {
            name: name.to_owned(),
            map_type: field("map_type")? as u32,
            key_size: field("key_size")? as usize,
            value_size: field("value_size")? as usize,
            fd,
        })
    }

    /// The value under `key` (CPU 0's for per-CPU maps), if any.
    pub(super) fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        let cpus = if self.map_type == BPF_MAP_TYPE_PERCPU_ARRAY {
            aya::util::nr_cpus().unwrap_or(1)
        } else {
            1
        };
        let stride = self.value_size.next_multiple_of(8);
        let mut value = vec![0u8; stride * cpus];
        #[repr(C)]
        struct Attr {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let mut attr = Attr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: key and value point at buffers of the map's sizes.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_ELEM,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>() as u32,
            )
        };
        (rc == 0).then(|| {
            value.truncate(self.value_size);
            value
        })
    }
}

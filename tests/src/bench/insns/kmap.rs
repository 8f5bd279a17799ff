//! A kernel map opened by id: its type and sizes (from fdinfo), and BPF_MAP_LOOKUP_ELEM on
//! it, which answers the interpreter's lookups with the loaded datapath's real entries.

use std::os::fd::{AsRawFd as _, OwnedFd};

use anyhow::Result;

use crate::bench::mapfd::MapById;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
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
        let m = MapById::open(name, id)?;
        Ok(Self {
            map_type: m.field("map_type")? as u32,
            key_size: m.field("key_size")? as usize,
            value_size: m.field("value_size")? as usize,
            name: m.name,
            fd: m.fd,
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
        let rc = unsafe { lvs_loader::bpf::bpf_cmd(BPF_MAP_LOOKUP_ELEM, &mut attr) };
        rc.is_ok().then(|| {
            value.truncate(self.value_size);
            value
        })
    }
}

//! A kernel map opened by id (BPF_MAP_GET_FD_BY_ID) and the fields of its
//! `/proc/self/fdinfo` entry: what the instruction counter ([`super::insns`]) and the
//! memory report ([`super::memory`]) both read of the loaded maps.

use std::os::fd::{AsRawFd as _, OwnedFd};

use anyhow::{Context as _, Result};

/// A map opened by id, with its fdinfo.
pub struct MapById {
    pub name: String,
    pub fd: OwnedFd,
    info: String,
}

impl MapById {
    /// Opens map `id` (`name` only labels errors).
    pub fn open(name: &str, id: u32) -> Result<Self> {
        let fd = lvs_loader::bpf::map_by_id(id).with_context(|| format!("map {name} (id {id})"))?;
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .with_context(|| format!("reading the fdinfo of map {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            fd,
            info,
        })
    }

    /// A numeric fdinfo field (`map_type`, `key_size`, `value_size`, `max_entries`,
    /// `memlock`, ...).
    pub fn field(&self, key: &str) -> Result<u64> {
        self.info
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {key} in the fdinfo of map {}", self.name))
    }
}

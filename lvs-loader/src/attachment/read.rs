//! Reading a live attachment without changing it: its maps and metadata (trusted only
//! when its namespace is known or its program is on the hook), counters, `explain`,
//! `diff`, `trace` and `status`.

use std::{path::Path, time::Duration};

use super::Attachment;
use crate::{
    bpf,
    config::Config,
    error::{Error, Result, ShownPath},
    hook,
    ifname::IfName,
    lock,
    maps::MapSet,
    meta::Meta,
    pins::PROG_PIN,
    stats::{self, Stats},
    sys,
};

impl Attachment {
    /// Per-VIP and global counters.
    pub fn stats(&self) -> Result<Stats> {
        let mut maps = self.open_maps()?;
        stats::from_maps(&mut maps, &self.ifname.escaped())
    }

    /// Global counters only (cheap: the benchmark reads them in its inner loop).
    pub fn global_counters(&self) -> Result<std::collections::BTreeMap<&'static str, u64>> {
        self.open_maps()?.global_counters()
    }

    /// A private copy of the explaining program bound to this attachment's live maps
    /// (`lvs-loader explain`): no map is changed, no counter moves.
    pub fn explainer(&self) -> Result<crate::explain::Explainer> {
        let maps = self.open_maps()?;
        let dir = self.dir();
        let meta = read_meta_from(&maps, &dir, &self.ifname)?;
        crate::explain::Explainer::attached(&dir, &meta)
    }

    /// What a reload with `config` would change, against the live maps (`lvs-loader
    /// diff`, `reload --dry-run`): nothing is written, no lock is taken.
    pub fn diff(&self, config: &Config) -> Result<crate::diff::Diff> {
        let mut maps = self.open_maps()?;
        let meta = read_meta_from(&maps, &self.dir(), &self.ifname)?;
        crate::diff::compute(&mut maps, &meta, config, &self.ifname.escaped())
    }

    /// A trace of this attachment's decisions (`lvs-loader trace`): armed when this
    /// returns, disarmed by [`crate::trace::Tracer::stop`] (or by the kernel when the
    /// lease runs out).
    pub fn tracer(&self, opts: crate::trace::TraceOptions) -> Result<crate::trace::Tracer> {
        let maps = self.open_maps()?;
        crate::trace::Tracer::open(self.clone(), &self.dir(), maps, opts)
    }

    /// Sets the control line's trace switch under this attachment's lock, waiting at most
    /// `wait` for it (the lock is held for this write only).
    pub(crate) fn set_trace_switch(&self, on: bool, wait: Duration) -> Result<()> {
        let _guard = lock::acquire(&self.lock_key(), wait)?;
        let dir = self.dir();
        if !dir.exists() {
            return Err(self.not_attached());
        }
        open_pins(&dir, &self.ifname)?.set_trace_switch(u32::from(on))
    }

    /// This attachment's line of `status`.
    pub fn status(&self) -> Result<crate::status::StatusEntry> {
        crate::status::one(&self.root, &self.netns, &self.ifname)
    }

    /// The published maps, trusted: without a namespace identity (see [`NetnsId`]) only
    /// while the program is on the hook (an inode may belong to a namespace that is gone).
    fn open_maps(&self) -> Result<MapSet> {
        let dir = self.dir();
        if !dir.exists() {
            return Err(self.not_attached());
        }
        let maps = open_pins(&dir, &self.ifname)?;
        if self.netns.cookie.is_none() {
            // The recorded device, and the pinned program on its hook.
            let meta = read_meta_from(&maps, &dir, &self.ifname)?;
            let hooked = sys::ifindex(&self.ifname)
                .filter(|&i| i == meta.ifindex)
                .zip(bpf::pinned_prog_id(&dir.join(PROG_PIN)).ok())
                .map(|(i, p)| hook::is_hooked(i, p))
                .transpose()?
                .unwrap_or(false);
            if !hooked {
                return Err(Error::Unverified {
                    iface: self.ifname.clone(),
                    dir: ShownPath(dir),
                    why: "its identity can't be read here (no namespace cookie before Linux 5.14, and no netlink_diag) and the program is not on the interface's hook",
                });
            }
        }
        Ok(maps)
    }
}

/// Opens an attachment's maps; unreadable pins are reported as such.
pub(crate) fn open_pins(dir: &Path, ifname: &IfName) -> Result<MapSet> {
    MapSet::from_pins(dir).map_err(|e| match e {
        Error::PermissionDenied { .. } => e,
        other => Error::BrokenPins {
            iface: ifname.clone(),
            dir: ShownPath(dir.to_path_buf()),
            what: other.to_string(),
        },
    })
}

pub(crate) fn read_meta_from(maps: &MapSet, dir: &Path, ifname: &IfName) -> Result<Meta> {
    let raw = maps.read_meta().map_err(|e| match e {
        // A record of another size: written by another lvs-loader version.
        Error::Map { .. } => Error::BrokenPins {
            iface: ifname.clone(),
            dir: ShownPath(dir.to_path_buf()),
            what: format!("its LVS_META record is not this lvs-loader version's ({e})"),
        },
        other => other,
    })?;
    Meta::from_raw(&raw).map_err(|e| Error::BrokenPins {
        iface: ifname.clone(),
        dir: ShownPath(dir.to_path_buf()),
        what: e.to_string(),
    })
}

/// The metadata of the attachment directory `dir`, read through its META pin only.
pub(crate) fn read_meta(dir: &Path) -> Result<Meta> {
    let raw = MapSet::read_meta_pin(dir)?;
    Meta::from_raw(&raw).map_err(|e| Error::Kernel(e.to_string()))
}

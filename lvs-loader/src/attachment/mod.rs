//! [`Attachment`]: one interface's pins, metadata and hook, and every change to them.
//!
//! Each change runs under the attachment's lock (`lock`) and starts by finishing or
//! undoing whatever a killed predecessor left half-done (`recover`). Steps are ordered so
//! that a kill at any point leaves the old or the new state, recognisably:
//!
//! * **attach** builds everything in `<ifname>:new` (maps and program pinned, metadata
//!   written, netlink priority/handle and "maybe created the qdisc" recorded), then
//!   hooks (a TCX link is pinned right after it is created; an unpinned one dies with the
//!   process), then publishes with one rename to `<ifname>`. Recovery undoes a `:new`.
//! * **reload** fills the standby generation, writes its description (and the post-flip
//!   journal) into the metadata, then flips `LVS_CONTROL`: datapath and description
//!   switch together. Recovery finishes post-flip work or drops a description that was
//!   never flipped to.
//! * **re-hook** (a reload or attach finding the program off its hook) records the new
//!   hook first; a TCX link is pinned as `link.next` and renamed over `link`.
//! * **growth** (a reload that does not fit the maps' capacity) builds a new program and
//!   maps in `<ifname>:new`, swaps the hook to it in one step and moves the directories
//!   (`grow`). Recovery finishes it when the new program is on the hook, else undoes it.
//! * **detach** renames `<ifname>` to `<ifname>:old` first (from then on it is being
//!   removed), unhooks, unpins. Recovery finishes a `:old`.
//! * **repair** (`lvs-loader daemon`) re-hooks and puts the program back in its place on
//!   the hook ([`Order`]) without touching the maps: a new TCX link is made first and
//!   swapped in like a re-hook; a netlink filter at the new priority is recorded, added,
//!   and only then the old one removed (any other filter running our program is removed
//!   too, so a kill in between leaves nothing behind for long).
//!
//! Here: opening an attachment, `create` and `detach`; the reports are in `report`.
//! Reload and repair of a published attachment are in `apply`; reading its maps and
//! metadata (counters, explain, diff, trace, status) in `read`.

mod apply;
mod grow;
mod hooking;
mod read;
mod recover;
mod report;

use apply::{absolute_config_path, describe};
pub(crate) use read::{open_pins, read_meta, read_meta_from};
pub(crate) use recover::remove;
pub use report::{Action, AttachReport, DetachReport, Placement, RepairReport};

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    config::Config,
    error::{Error, Result, ShownPath},
    failpoint,
    hook::{Mode, ModeChoice, Order},
    ifname::IfName,
    lock::{self, LockKey},
    meta::check_path_len,
    netns::{self, NetnsId},
    pins::{self, Entry, PinRoot},
    sys, text,
};

/// Options of [`Attachment::create`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AttachOptions {
    pub mode: ModeChoice,
    /// Attach even if the interface already carries an lvs-ebpf program of another
    /// attachment.
    pub allow_stacking: bool,
    /// Where on the hook; `None`: [`Order::First`] for a new attachment, the recorded
    /// order for an existing one.
    pub order: Option<Order>,
}

/// A tc priority only means something to a netlink attachment.
fn check_order(iface: &IfName, mode: Mode, order: Order) -> Result<()> {
    match (mode, order) {
        (Mode::Tcx, Order::Priority(priority)) => Err(Error::PriorityNeedsNetlink {
            iface: iface.clone(),
            priority,
            mode,
        }),
        _ => Ok(()),
    }
}

/// One interface's attachment under a pin root.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub(crate) root: PinRoot,
    pub(crate) netns: NetnsId,
    pub(crate) ifname: IfName,
    pub(crate) lock_wait: Duration,
}

impl Attachment {
    /// The attachment of `ifname` in the caller's network namespace under `pin_root`,
    /// whether or not anything is attached (nothing is touched).
    pub fn here(pin_root: &Path, ifname: &IfName) -> Result<Self> {
        let root = PinRoot::new(pin_root, false)?;
        let netns = netns::current().map_err(|e| Error::io("reading this network namespace", e))?;
        Ok(Self {
            root,
            netns,
            ifname: ifname.clone(),
            lock_wait: lock::DEFAULT_WAIT,
        })
    }

    /// Like [`Attachment::here`], but only when something is attached (or half-done).
    pub fn open(pin_root: &Path, ifname: &IfName) -> Result<Self> {
        let a = Self::here(pin_root, ifname)?;
        if !a.exists()? {
            return Err(a.not_attached());
        }
        Ok(a)
    }

    /// How long mutating calls wait for another command on the same attachment.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    pub fn ifname(&self) -> &IfName {
        &self.ifname
    }

    pub fn netns(&self) -> NetnsId {
        self.netns
    }

    fn ns_dir(&self) -> PathBuf {
        self.root.ns_dir(&self.netns)
    }

    fn entry_path(&self, e: Entry) -> PathBuf {
        use std::os::unix::ffi::OsStringExt as _;
        self.ns_dir()
            .join(std::ffi::OsString::from_vec(e.file_name()))
    }

    /// The published attachment directory.
    pub fn dir(&self) -> PathBuf {
        self.entry_path(Entry::Published(self.ifname.clone()))
    }

    fn staging(&self) -> PathBuf {
        self.entry_path(Entry::Staging(self.ifname.clone()))
    }

    fn removing(&self) -> PathBuf {
        self.entry_path(Entry::Removing(self.ifname.clone()))
    }

    /// Whether anything of this attachment is pinned, published or half-made
    /// ("permission denied" when that can't be known).
    pub fn exists(&self) -> Result<bool> {
        for p in [self.dir(), self.staging(), self.removing()] {
            match std::fs::symlink_metadata(&p) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("reading {}", text::escape_path(&p)), e)),
            }
        }
        Ok(false)
    }

    pub(crate) fn lock_key(&self) -> LockKey {
        LockKey::new(
            self.root.path(),
            &self.netns.dir_name(),
            self.ifname.as_bytes(),
            format!("{} ({})", self.ifname, text::escape_path(&self.dir())),
        )
    }

    fn not_attached(&self) -> Error {
        match sys::ifindex(&self.ifname) {
            None => Error::NoInterface {
                iface: self.ifname.clone(),
            },
            Some(_) => Error::NotAttached {
                iface: self.ifname.clone(),
                dir: ShownPath(self.dir()),
            },
        }
    }

    fn lock(&self) -> Result<lock::Guard> {
        lock::acquire(&self.lock_key(), self.lock_wait)
    }

    /// Attaches `config` to `ifname` (in the caller's namespace); on an interface that is
    /// already attached, applies it like [`Attachment::reload`].
    pub fn create(
        pin_root: &Path,
        ifname: &IfName,
        config: &Config,
        opts: AttachOptions,
    ) -> Result<AttachReport> {
        Self::create_with_wait(pin_root, ifname, config, opts, lock::DEFAULT_WAIT)
    }

    /// [`Attachment::create`] with a lock wait.
    pub fn create_with_wait(
        pin_root: &Path,
        ifname: &IfName,
        config: &Config,
        opts: AttachOptions,
        wait: Duration,
    ) -> Result<AttachReport> {
        sys::check_privileges()?;
        let mode = opts.mode.resolve()?;
        let ifindex = sys::ifindex(ifname).ok_or_else(|| Error::NoInterface {
            iface: ifname.clone(),
        })?;
        if let Some(p) = &config.path {
            check_path_len(&absolute_config_path(p))?;
        }
        let root = PinRoot::new(pin_root, true)?;
        let netns = netns::current().map_err(|e| Error::io("reading this network namespace", e))?;
        let att = Self {
            root,
            netns,
            ifname: ifname.clone(),
            lock_wait: wait,
        };
        let _guard = att.lock()?;
        failpoint::hit("attach:locked");
        let recovered = att.recover()?;
        let mut report = if att.dir().exists() {
            att.reload_locked(config, opts.order)?
        } else {
            let order = opts.order.unwrap_or_default();
            check_order(ifname, mode, order)?;
            att.fresh_attach(ifindex, config, mode, order, opts.allow_stacking)?
        };
        report.recovered = recovered;
        Ok(report)
    }

    /// Removes the program from the interface and every pin lvs-loader made for it.
    /// Other users' qdiscs, filters and programs are left alone.
    pub fn detach(&self) -> Result<DetachReport> {
        sys::check_privileges()?;
        let guard = self.lock()?;
        failpoint::hit("detach:locked");
        let recovered = self.recover()?;
        if !self.dir().exists() {
            self.root.prune(&self.ns_dir());
            drop(guard);
            if !recovered.is_empty() {
                // The interrupted command was undone; nothing else is left.
                return Ok(DetachReport {
                    interface: self.ifname.clone(),
                    mode: None,
                    pin_dir: self.dir(),
                    netns: None,
                    recovered,
                });
            }
            return crate::elsewhere::detach_moved_here(&self.root, &self.ifname, self.lock_wait)?
                .ok_or_else(|| self.not_attached());
        }
        let meta = read_meta(&self.dir()).ok();
        pins::rename_noreplace(&self.dir(), &self.removing())?;
        failpoint::hit("detach:renamed");
        remove(&self.root, &self.removing(), meta.as_ref())?;
        self.root.prune(&self.ns_dir());
        Ok(DetachReport {
            interface: self.ifname.clone(),
            mode: meta.map(|m| m.mode),
            pin_dir: self.dir(),
            netns: None,
            recovered,
        })
    }
}

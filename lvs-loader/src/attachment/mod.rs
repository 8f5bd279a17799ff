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

mod grow;
mod hooking;
mod recover;

pub(crate) use recover::remove;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;

use crate::{
    bpf,
    config::Config,
    error::{Error, Result, ShownPath},
    failpoint,
    hook::{self, Mode, ModeChoice, Order},
    ifname::IfName,
    journal,
    lock::{self, LockKey},
    maps::{ApplyReport, MapSet},
    meta::{Generation, Meta, check_path_len},
    netns::{self, NetnsId},
    pins::{self, Entry, PROG_PIN, PinRoot},
    stats::{self, Stats},
    sys, text,
};

/// What `attach`/`reload` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new attachment.
    Attached,
    /// New config on an attachment that was hooked.
    Reloaded,
    /// The program was off its hook (filter, qdisc or link removed, interface
    /// recreated): hooked again, then the config applied.
    #[serde(rename = "re-hooked")]
    Rehooked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Reloaded => "reloaded",
            Self::Rehooked => "re-hooked",
        }
    }
}

/// What `attach` or `reload` did.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub interface: IfName,
    pub action: Action,
    /// Why the program had to be hooked again ([`Action::Rehooked`]).
    pub rehook_reason: Option<String>,
    pub mode: Mode,
    pub program_id: Option<u32>,
    #[serde(serialize_with = "crate::text::serialize_path")]
    pub pin_dir: PathBuf,
    pub vips: usize,
    pub peers: usize,
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
    /// Which of the two map generations is live now.
    pub generation: u32,
    pub config_digest: String,
    /// Where the program goes on the hook.
    pub order: Order,
    /// Why the program is not where `order` wants it and can't be put there (netlink
    /// behind a TCX program or a filter at priority 1, a priority taken).
    pub order_problem: Option<String>,
    /// What recovery finished or undid first (a command killed earlier).
    pub recovered: Vec<String>,
}

/// Whether the program sits where its [`Order`] wants it after a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "placement", content = "why", rename_all = "lowercase")]
pub enum Placement {
    /// It was already there.
    InPlace,
    /// It was moved there (what was wrong).
    Moved(String),
    /// It is not there and can't be put there (why).
    Impossible(String),
}

/// What [`Attachment::repair`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub interface: IfName,
    /// Why the program had to be hooked again.
    pub rehooked: Option<String>,
    pub placement: Placement,
    pub order: Order,
    pub recovered: Vec<String>,
}

impl RepairReport {
    /// Whether anything was changed on the hook.
    pub fn changed(&self) -> bool {
        self.rehooked.is_some() || matches!(self.placement, Placement::Moved(_))
    }
}

/// What `detach` removed.
#[derive(Debug, Clone, Serialize)]
pub struct DetachReport {
    pub interface: IfName,
    pub mode: Option<Mode>,
    #[serde(serialize_with = "crate::text::serialize_path")]
    pub pin_dir: PathBuf,
    /// The namespace the attachment belonged to, when not the caller's.
    pub netns: Option<String>,
    pub recovered: Vec<String>,
}

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

    /// Replaces VIPs and peers atomically. If the program is no longer on its hook (filter,
    /// qdisc or link removed, interface recreated) it is hooked again first, and the
    /// report says so; if the interface is gone this fails.
    pub fn reload(&self, config: &Config) -> Result<AttachReport> {
        sys::check_privileges()?;
        if let Some(p) = &config.path {
            check_path_len(&absolute_config_path(p))?;
        }
        let _guard = self.lock()?;
        failpoint::hit("reload:locked");
        let recovered = self.recover()?;
        if !self.dir().exists() {
            return Err(self.not_attached());
        }
        let mut r = self.reload_locked(config, None)?;
        r.recovered = recovered;
        Ok(r)
    }

    /// Puts the program back on its hook (like a reload does) and in its place there
    /// ([`Order`]; `order` replaces the recorded one), without touching the maps. Fails
    /// like a reload when the interface is gone.
    pub fn repair(&self, order: Option<Order>) -> Result<RepairReport> {
        sys::check_privileges()?;
        let _guard = self.lock()?;
        failpoint::hit("repair:locked");
        let recovered = self.recover()?;
        let dir = self.dir();
        if !dir.exists() {
            return Err(self.not_attached());
        }
        let mut maps = open_pins(&dir, &self.ifname)?;
        let mut meta = read_meta_from(&maps, &dir, &self.ifname)?;
        let program_id = self.pinned_program(&dir)?;
        self.set_order(&mut maps, &mut meta, order)?;
        let rehooked = self.ensure_hooked(&dir, &mut maps, &mut meta, program_id)?;
        let placement = self.ensure_order(&dir, &mut maps, &mut meta, program_id)?;
        Ok(RepairReport {
            interface: self.ifname.clone(),
            rehooked,
            placement,
            order: meta.order,
            recovered,
        })
    }

    /// Records a new order (before the hook is changed to match it).
    fn set_order(&self, maps: &mut MapSet, meta: &mut Meta, order: Option<Order>) -> Result<()> {
        if let Some(o) = order
            && o != meta.order
        {
            check_order(&self.ifname, meta.mode, o)?;
            meta.order = o;
            maps.write_meta(&meta.to_raw()?)?;
        }
        Ok(())
    }

    fn pinned_program(&self, dir: &Path) -> Result<u32> {
        bpf::pinned_prog_id(&dir.join(PROG_PIN)).map_err(|e| Error::BrokenPins {
            iface: self.ifname.clone(),
            dir: ShownPath(dir.to_path_buf()),
            what: format!("program pin: {e}"),
        })
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

    /// Reload of the published attachment (lock held, recovery done); `order` replaces
    /// the recorded hook order.
    fn reload_locked(&self, config: &Config, order: Option<Order>) -> Result<AttachReport> {
        let dir = self.dir();
        let mut maps = open_pins(&dir, &self.ifname)?;
        let mut meta = read_meta_from(&maps, &dir, &self.ifname)?;
        let program_id = self.pinned_program(&dir)?;
        self.set_order(&mut maps, &mut meta, order)?;
        let mut rehook_reason = self.ensure_hooked(&dir, &mut maps, &mut meta, program_id)?;
        let mut order_problem = None;
        match self.ensure_order(&dir, &mut maps, &mut meta, program_id)? {
            Placement::InPlace => {}
            Placement::Moved(why) => {
                rehook_reason.get_or_insert(format!("put back {}: it was {why}", meta.order));
            }
            Placement::Impossible(why) => order_problem = Some(why),
        }
        let (mode, order) = (meta.mode, meta.order);
        let report = |applied: ApplyReport, program_id: u32| AttachReport {
            interface: self.ifname.clone(),
            action: if rehook_reason.is_some() {
                Action::Rehooked
            } else {
                Action::Reloaded
            },
            rehook_reason,
            mode,
            program_id: Some(program_id),
            pin_dir: dir,
            vips: applied.vips,
            peers: applied.peers,
            added: applied.added,
            removed: applied.removed,
            kept: applied.kept,
            generation: applied.generation,
            config_digest: config.digest_hex(),
            order,
            order_problem,
            recovered: Vec::new(),
        };
        if let Some(capacity) = grow::needed(&maps, config)? {
            let (applied, new_prog) = self.grow(&meta, config, capacity, program_id)?;
            return Ok(report(applied, new_prog));
        }
        let serial = meta.next_serial();
        let journal_path = self.lock_key().journal_path();
        let mut pending = false;
        let applied = maps.apply_with(config, serial, |maps, r, post| {
            pending = !post.is_empty();
            if pending {
                journal::write(&journal_path, serial, post)?;
            }
            meta.generations[r.generation as usize & 1] = describe(config, r, serial, pending);
            maps.write_meta(&meta.to_raw()?)
        })?;
        failpoint::hit("reload:applied");
        if pending {
            meta.generations[applied.generation as usize & 1].pending = false;
            maps.write_meta(&meta.to_raw()?)?;
            journal::remove(&journal_path);
        }
        Ok(report(applied, program_id))
    }
}

/// The description of a generation that now holds `config`.
fn describe(config: &Config, r: &ApplyReport, serial: u64, pending: bool) -> Generation {
    Generation {
        serial,
        applied_at: sys::now_unix(),
        vips: r.vips as u32,
        peers: r.peers as u32,
        pending,
        digest: config.digest,
        config_path: config.path.as_deref().map(absolute_config_path),
    }
}

/// The config path as `status` should show it later: absolute (a relative path means
/// nothing to a later command run elsewhere).
fn absolute_config_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    })
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

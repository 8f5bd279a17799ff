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
//! * **detach** renames `<ifname>` to `<ifname>:old` first (from then on it is being
//!   removed), unhooks, unpins. Recovery finishes a `:old`.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;

use crate::{
    bpf,
    config::Config,
    datapath::Datapath,
    error::{Error, Result, ShownPath},
    failpoint,
    hook::{self, Mode, ModeChoice, netlink, tcx},
    ifname::IfName,
    journal,
    lock::{self, LockKey},
    maps::{ApplyReport, MapSet},
    meta::{Clsact, Generation, Meta, NlHook, check_path_len},
    netns::{self, NetnsId},
    pins::{self, Entry, LINK_NEXT_PIN, LINK_PIN, PROG_PIN, PinRoot},
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
    /// What recovery finished or undid first (a command killed earlier).
    pub recovered: Vec<String>,
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

    /// Whether anything of this attachment is pinned ("permission denied" when that
    /// can't be known).
    fn exists(&self) -> Result<bool> {
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
            att.reload_locked(config)?
        } else {
            att.fresh_attach(ifindex, config, mode, opts.allow_stacking)?
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
        let mut r = self.reload_locked(config)?;
        r.recovered = recovered;
        Ok(r)
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
            return crate::status::detach_moved_here(&self.root, &self.ifname, self.lock_wait)?
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

    /// This attachment's line of `status`.
    pub fn status(&self) -> Result<crate::status::StatusEntry> {
        crate::status::one(&self.root, &self.netns, &self.ifname)
    }

    /// The published maps, trusted: without a namespace cookie (old kernels) only while
    /// the program is on the hook (an inode may belong to a namespace that is gone).
    fn open_maps(&self) -> Result<MapSet> {
        let dir = self.dir();
        if !dir.exists() {
            return Err(self.not_attached());
        }
        let maps = open_pins(&dir, &self.ifname)?;
        if self.netns.cookie.is_none() {
            let hooked = sys::ifindex(&self.ifname)
                .zip(bpf::pinned_prog_id(&dir.join(PROG_PIN)).ok())
                .map(|(i, p)| hook::is_hooked(i, p))
                .transpose()?
                .unwrap_or(false);
            if !hooked {
                return Err(Error::Unverified {
                    iface: self.ifname.clone(),
                    dir: ShownPath(dir),
                    why: "this kernel has no network namespace cookies (Linux < 5.14) and the program is not on the interface's hook",
                });
            }
        }
        Ok(maps)
    }

    /// A new attachment of `ifindex` (nothing published): build in `:new`, hook, publish.
    fn fresh_attach(
        &self,
        ifindex: u32,
        config: &Config,
        mode: Mode,
        allow_stacking: bool,
    ) -> Result<AttachReport> {
        if !allow_stacking
            && let Some(e) = hook::ingress(ifindex)?.into_iter().find(|e| e.is_marker())
        {
            let prog_id = e.prog_id.unwrap_or(0);
            return Err(Error::Stacked {
                iface: self.ifname.clone(),
                prog_id,
                owner: crate::status::describe_owner(&self.root, prog_id),
            });
        }
        pins::private_dir(self.root.path(), true)?;
        pins::private_dir(&self.ns_dir(), true)?;
        let staging = self.staging();
        pins::mkdir_private(&staging)?;
        failpoint::hit("attach:staging-created");
        let result = self.build_and_hook(&staging, ifindex, config, mode);
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                // Undo what was built; the error is what the caller needs to see.
                let meta = read_meta(&staging).ok();
                let _ = remove(&self.root, &staging, meta.as_ref());
                self.root.prune(&self.ns_dir());
                Err(e)
            }
        }
    }

    fn build_and_hook(
        &self,
        staging: &Path,
        ifindex: u32,
        config: &Config,
        mode: Mode,
    ) -> Result<AttachReport> {
        let mut dp = Datapath::load()?;
        dp.maps.pin(staging)?;
        let prog_path = staging.join(PROG_PIN);
        dp.program()?.pin(&prog_path).map_err(|e| Error::Pin {
            path: prog_path.clone(),
            source: Box::new(e),
        })?;
        failpoint::hit("attach:pinned");
        let program_id = dp.program_id().ok();
        let nl = match mode {
            Mode::Tcx => None,
            Mode::Netlink => {
                let existing = netlink::filters(ifindex, netlink::Direction::Ingress)
                    .map_err(|e| Error::netlink("listing tc filters", e))?;
                Some(NlHook {
                    priority: netlink::free_priority(&existing),
                    handle: 1,
                    // Not ours until hook_netlink records "maybe" right before adding it.
                    clsact: Clsact::Found,
                })
            }
        };
        let mut meta = Meta {
            mode,
            ifindex,
            ifname: self.ifname.clone(),
            netns: self.netns,
            attached_at: sys::now_unix(),
            nl,
            generations: [Generation::default(), Generation::default()],
        };
        // Fresh maps: nothing live yet, so the description can't lie about the datapath.
        let applied = dp.maps.apply_with(config, |maps, r, _post| {
            meta.generations[r.generation as usize & 1] = describe(config, r, 1, false);
            maps.write_meta(&meta.to_raw()?)
        })?;
        failpoint::hit("attach:configured");

        let prog_fd = bpf::obj_get(&prog_path)
            .map_err(|e| Error::io(format!("opening {}", text::escape_path(&prog_path)), e))?;
        match mode {
            Mode::Tcx => {
                let link = tcx::attach(&self.ifname, ifindex, prog_fd.as_fd())?;
                failpoint::hit("attach:link-created");
                tcx::pin(link.as_fd(), &staging.join(LINK_PIN))?;
                failpoint::hit("attach:link-pinned");
            }
            Mode::Netlink => self.hook_netlink(&mut dp.maps, &mut meta, ifindex, &prog_fd)?,
        }
        pins::rename_noreplace(staging, &self.dir())?;
        failpoint::hit("attach:published");
        Ok(AttachReport {
            interface: self.ifname.clone(),
            action: Action::Attached,
            rehook_reason: None,
            mode,
            program_id,
            pin_dir: self.dir(),
            vips: applied.vips,
            peers: applied.peers,
            added: applied.added,
            removed: applied.removed,
            kept: applied.kept,
            generation: applied.generation,
            config_digest: config.digest_hex(),
            recovered: Vec::new(),
        })
    }

    /// clsact (recorded as "maybe ours" before it is added) and a cls_bpf filter at the
    /// priority/handle recorded in `meta` (written before the filter exists).
    fn hook_netlink(
        &self,
        maps: &mut MapSet,
        meta: &mut Meta,
        ifindex: u32,
        prog_fd: &OwnedFd,
    ) -> Result<()> {
        let attach_err = |source: std::io::Error| Error::Attach {
            iface: self.ifname.clone(),
            mode: Mode::Netlink,
            hint: match source.raw_os_error() {
                Some(libc::EOPNOTSUPP) => Some(
                    "the kernel lacks TC BPF support (CONFIG_NET_CLS_BPF / CONFIG_NET_SCH_INGRESS)",
                ),
                Some(libc::ENOENT) => {
                    Some("the kernel has no clsact/cls_bpf (modprobe sch_ingress cls_bpf?)")
                }
                Some(libc::ENODEV) => Some("the interface is gone"),
                _ => None,
            },
            source,
        };
        let mut nl = meta.nl.unwrap_or(NlHook {
            priority: 0,
            handle: 1,
            clsact: Clsact::Maybe,
        });
        nl.clsact = Clsact::Maybe;
        meta.nl = Some(nl);
        maps.write_meta(&meta.to_raw()?)?;
        failpoint::hit("hook:clsact-recorded");
        let created = netlink::clsact_add(ifindex).map_err(attach_err)?;
        failpoint::hit("hook:clsact-added");
        nl.clsact = if created {
            Clsact::Created
        } else {
            Clsact::Found
        };
        for attempt in 0..4 {
            if attempt > 0 || nl.priority == 0 {
                let existing =
                    netlink::filters(ifindex, netlink::Direction::Ingress).map_err(attach_err)?;
                nl.priority = netlink::free_priority(&existing);
            }
            meta.nl = Some(nl);
            maps.write_meta(&meta.to_raw()?)?;
            failpoint::hit("hook:filter-recorded");
            match netlink::filter_add(
                ifindex,
                nl.priority,
                nl.handle,
                prog_fd.as_fd(),
                lvs_ebpf_common::PROGRAM_NAME,
            ) {
                Ok(()) => {
                    failpoint::hit("hook:filter-added");
                    return Ok(());
                }
                // Someone took that priority meanwhile: pick another.
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::EINVAL))
                        && attempt < 3 => {}
                Err(e) => return Err(attach_err(e)),
            }
        }
        Err(attach_err(std::io::Error::from_raw_os_error(libc::EEXIST)))
    }

    /// Reload of the published attachment (lock held, recovery done).
    fn reload_locked(&self, config: &Config) -> Result<AttachReport> {
        let dir = self.dir();
        let mut maps = open_pins(&dir, &self.ifname)?;
        let mut meta = read_meta_from(&maps, &dir, &self.ifname)?;
        let program_id =
            bpf::pinned_prog_id(&dir.join(PROG_PIN)).map_err(|e| Error::BrokenPins {
                iface: self.ifname.clone(),
                dir: ShownPath(dir.clone()),
                what: format!("program pin: {e}"),
            })?;
        let rehook_reason = self.ensure_hooked(&dir, &mut maps, &mut meta, program_id)?;
        let serial = meta.next_serial();
        let journal_path = self.lock_key().journal_path();
        let mut pending = false;
        let applied = maps.apply_with(config, |maps, r, post| {
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
        Ok(AttachReport {
            interface: self.ifname.clone(),
            action: if rehook_reason.is_some() {
                Action::Rehooked
            } else {
                Action::Reloaded
            },
            rehook_reason,
            mode: meta.mode,
            program_id: Some(program_id),
            pin_dir: dir,
            vips: applied.vips,
            peers: applied.peers,
            added: applied.added,
            removed: applied.removed,
            kept: applied.kept,
            generation: applied.generation,
            config_digest: config.digest_hex(),
            recovered: Vec::new(),
        })
    }

    /// Puts the pinned program back on the interface's hook if it is not there. `Some`
    /// with the reason when it had to.
    fn ensure_hooked(
        &self,
        dir: &Path,
        maps: &mut MapSet,
        meta: &mut Meta,
        program_id: u32,
    ) -> Result<Option<String>> {
        let Some(ifindex) = sys::ifindex(&self.ifname) else {
            let detail = crate::status::moved_detail(dir, meta)
                .map(|d| format!(": {d}"))
                .unwrap_or_else(|| " (deleted, or moved to another network namespace)".into());
            return Err(Error::InterfaceGone {
                iface: self.ifname.clone(),
                detail,
                advice: "nothing marks its packets here now; `lvs-loader detach` removes the pins, `attach` once it is back",
            });
        };
        if ifindex == meta.ifindex && hook::is_hooked(ifindex, program_id)? {
            return Ok(None);
        }
        let reason = if ifindex != meta.ifindex {
            format!(
                "the interface was recreated (ifindex {} -> {ifindex})",
                meta.ifindex
            )
        } else {
            "the program was no longer on the interface's hook (filter, qdisc or link removed)"
                .to_owned()
        };
        // The new hook is recorded before it exists.
        meta.ifindex = ifindex;
        maps.write_meta(&meta.to_raw()?)?;
        failpoint::hit("rehook:recorded");
        let prog = bpf::obj_get(&dir.join(PROG_PIN)).map_err(|e| {
            Error::io(
                format!("opening {}", text::escape_path(&dir.join(PROG_PIN))),
                e,
            )
        })?;
        match meta.mode {
            Mode::Tcx => {
                let link = tcx::attach(&self.ifname, ifindex, prog.as_fd())?;
                failpoint::hit("rehook:link-created");
                let next = dir.join(LINK_NEXT_PIN);
                tcx::pin(link.as_fd(), &next)?;
                failpoint::hit("rehook:link-pinned");
                promote_next_link(dir)?;
                failpoint::hit("rehook:link-promoted");
            }
            Mode::Netlink => {
                meta.nl = meta.nl.map(|mut n| {
                    n.priority = 0;
                    n
                });
                self.hook_netlink(maps, meta, ifindex, &prog)?;
            }
        }
        Ok(Some(reason))
    }

    /// Finishes or undoes whatever a killed command left of this attachment (lock held).
    /// Returns what it did, in words.
    pub(crate) fn recover(&self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        // An empty namespace directory left by a command killed at its very end.
        self.root.prune(&self.ns_dir());
        let staging = self.staging();
        if staging.exists() {
            let meta = read_meta(&staging).ok();
            remove(&self.root, &staging, meta.as_ref())?;
            failpoint::hit("recover:staging-removed");
            done.push(format!(
                "undid an interrupted attach of {} (removed {})",
                self.ifname,
                text::escape_path(&staging)
            ));
        }
        let removing = self.removing();
        if removing.exists() {
            let meta = read_meta(&removing).ok();
            remove(&self.root, &removing, meta.as_ref())?;
            failpoint::hit("recover:removing-removed");
            done.push(format!("finished an interrupted detach of {}", self.ifname));
        }
        let dir = self.dir();
        if dir.exists() {
            if dir.join(LINK_NEXT_PIN).exists() {
                promote_next_link(&dir)?;
                done.push(format!(
                    "finished an interrupted re-hook of {}",
                    self.ifname
                ));
            }
            if let Ok(mut maps) = open_pins(&dir, &self.ifname)
                && let Ok(mut meta) = read_meta_from(&maps, &dir, &self.ifname)
                && meta.generations.iter().any(|g| g.pending)
            {
                let live = maps.active_generation()? as usize & 1;
                let journal_path = self.lock_key().journal_path();
                if meta.generations[live].pending {
                    let serial = meta.generations[live].serial;
                    match journal::read(&journal_path, serial) {
                        Some(work) => {
                            maps.finish_post_flip(&work)?;
                            done.push(format!(
                                "finished an interrupted reload of {} ({} counter slot(s) reset)",
                                self.ifname,
                                work.len()
                            ));
                        }
                        None => done.push(format!(
                            "an interrupted reload of {} left counter slots unreset (journal missing); their counters may include packets of removed VIPs",
                            self.ifname
                        )),
                    }
                }
                let standby = live ^ 1;
                if meta.generations[standby].pending {
                    done.push(format!(
                        "dropped an interrupted reload of {} (it never went live)",
                        self.ifname
                    ));
                }
                meta.generations[0].pending = false;
                meta.generations[1].pending = false;
                maps.write_meta(&meta.to_raw()?)?;
                journal::remove(&journal_path);
            }
        }
        Ok(done)
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

/// Renames `link.next` over `link`, detaching the link it replaces first (it may still be
/// attached to a device that moved to another namespace).
fn promote_next_link(dir: &Path) -> Result<()> {
    let link = dir.join(LINK_PIN);
    if let Ok(old) = bpf::obj_get(&link) {
        let _ = bpf::link_detach(old.as_fd());
    }
    std::fs::rename(dir.join(LINK_NEXT_PIN), &link).map_err(|e| {
        Error::io(
            format!("renaming the new link into {}", text::escape_path(&link)),
            e,
        )
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
    let raw = maps.read_meta()?;
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

/// Unhooks and unpins the attachment in `dir` (a `:new` or `:old` directory, or any
/// directory about to go): TCX link(s) detached, every cls_bpf filter that runs its
/// program removed (on the recorded device and on the device of that name), the clsact
/// qdisc removed if we (maybe) created it and it is empty, then the pins. Runs in the
/// caller's namespace.
pub(crate) fn remove(root: &PinRoot, dir: &Path, meta: Option<&Meta>) -> Result<()> {
    let _ = root;
    tcx::detach_pinned(&dir.join(LINK_NEXT_PIN))?;
    tcx::detach_pinned(&dir.join(LINK_PIN))?;
    failpoint::hit("remove:links-detached");
    if let Ok(prog_id) = bpf::pinned_prog_id(&dir.join(PROG_PIN)) {
        let mut ifindexes: Vec<u32> = Vec::new();
        if let Some(m) = meta {
            ifindexes.push(m.ifindex);
            if let Some(i) = sys::ifindex(&m.ifname) {
                ifindexes.push(i);
            }
        } else if let Some(name) = dir
            .file_name()
            .and_then(|n| Entry::parse(n.as_encoded_bytes()))
            && let Some(i) = sys::ifindex(name.ifname())
        {
            ifindexes.push(i);
        }
        ifindexes.sort_unstable();
        ifindexes.dedup();
        for ifindex in ifindexes.into_iter().filter(|&i| i != 0) {
            let filters = netlink::filters(ifindex, netlink::Direction::Ingress)
                .map_err(|e| Error::netlink("listing tc filters", e))?;
            for f in filters.iter().filter(|f| f.prog_id == Some(prog_id)) {
                netlink::filter_del(ifindex, f.priority, f.handle)
                    .map_err(|e| Error::netlink("deleting our tc filter", e))?;
                failpoint::hit("remove:filter-deleted");
            }
            if let Some(m) = meta
                && let Some(nl) = m.nl
                && ifindex == m.ifindex
                && matches!(nl.clsact, Clsact::Created | Clsact::Maybe)
            {
                netlink::clsact_del_if_empty(ifindex)
                    .map_err(|e| Error::netlink("deleting the clsact qdisc we created", e))?;
                failpoint::hit("remove:clsact-deleted");
            }
        }
    }
    pins::remove_attachment_dir(dir)?;
    failpoint::hit("remove:unpinned");
    Ok(())
}

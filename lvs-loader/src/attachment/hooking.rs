//! Building an attachment and putting its program on the hook: a fresh attach in
//! `<ifname>:new` published by one rename, the netlink hook (priority, handle and "maybe
//! our qdisc" recorded before they exist), and re-hooking a published attachment.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use super::{
    Action, AttachReport, Attachment, describe, read_meta, recover::promote_next_link, remove,
};
use crate::{
    bpf,
    config::Config,
    datapath::Datapath,
    error::{Error, Result},
    failpoint,
    hook::{self, Mode, netlink, tcx},
    maps::MapSet,
    meta::{Clsact, Generation, Meta, NlHook},
    pins::{self, LINK_NEXT_PIN, LINK_PIN, PROG_PIN},
    sys, text,
};

impl Attachment {
    /// A new attachment of `ifindex` (nothing published): build in `:new`, hook, publish.
    pub(super) fn fresh_attach(
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
                owner: crate::elsewhere::describe_owner(&self.root, prog_id),
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

    /// Puts the pinned program back on the interface's hook if it is not there. `Some`
    /// with the reason when it had to.
    pub(super) fn ensure_hooked(
        &self,
        dir: &Path,
        maps: &mut MapSet,
        meta: &mut Meta,
        program_id: u32,
    ) -> Result<Option<String>> {
        let Some(ifindex) = sys::ifindex(&self.ifname) else {
            let detail = crate::elsewhere::moved_detail(dir, meta)
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
}

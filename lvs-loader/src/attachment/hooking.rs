//! Building an attachment and putting its program on the hook: a fresh attach in
//! `<ifname>:new` published by one rename, and the netlink hook (priority, handle and
//! "maybe our qdisc" recorded before they exist).
//!
//! Re-hooking a published attachment and putting it back in its place on the hook
//! ([`Order`]) are in `rehook`.

mod rehook;

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use super::{Action, AttachReport, Attachment, describe, read_meta, remove};
use crate::{
    bpf,
    config::Config,
    datapath::Datapath,
    error::{Error, Result},
    failpoint,
    hook::{self, Mode, Order, netlink, tcx},
    maps::MapSet,
    meta::{Clsact, Generation, Meta, NlHook},
    pins::{self, LINK_PIN, PROG_PIN},
    sys, text,
};

impl Attachment {
    /// A new attachment of `ifindex` (nothing published): build in `:new`, hook, publish.
    pub(super) fn fresh_attach(
        &self,
        ifindex: u32,
        config: &Config,
        mode: Mode,
        order: Order,
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
        let result = self.build_and_hook(&staging, ifindex, config, mode, order);
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
        order: Order,
    ) -> Result<AttachReport> {
        let mut dp = Datapath::load_sized(lvs_ebpf_common::capacity_for(config.vips.len()))?;
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
                    priority: netlink::priority_for(&existing, order),
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
            order,
            generations: [Generation::default(), Generation::default()],
        };
        // Fresh maps: nothing live yet, so the description can't lie about the datapath.
        let applied = dp.maps.apply_with(config, 1, |maps, r, _post| {
            meta.generations[r.generation as usize & 1] = describe(config, r, 1, false);
            maps.write_meta(&meta.to_raw()?)
        })?;
        failpoint::hit("attach:configured");

        let prog_fd = bpf::obj_get(&prog_path)
            .map_err(|e| Error::io(format!("opening {}", text::escape_path(&prog_path)), e))?;
        match mode {
            Mode::Tcx => {
                let link = tcx::attach(&self.ifname, ifindex, prog_fd.as_fd(), order)?;
                failpoint::hit("attach:link-created");
                tcx::pin(link.as_fd(), &staging.join(LINK_PIN))?;
                failpoint::hit("attach:link-pinned");
            }
            Mode::Netlink => self.hook_netlink(&mut dp.maps, &mut meta, ifindex, &prog_fd)?,
        }
        pins::rename_noreplace(staging, &self.dir())?;
        failpoint::hit("attach:published");
        Ok(AttachReport::new(
            self.ifname.clone(),
            Action::Attached,
            None,
            mode,
            program_id,
            self.dir(),
            applied,
            config,
            order,
            None,
        ))
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
            if let (Order::Priority(priority), 1..) = (meta.order, attempt) {
                return Err(Error::PriorityTaken {
                    iface: self.ifname.clone(),
                    priority,
                });
            }
            if attempt > 0 || nl.priority == 0 {
                let existing =
                    netlink::filters(ifindex, netlink::Direction::Ingress).map_err(attach_err)?;
                nl.priority = netlink::priority_for(&existing, meta.order);
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
}

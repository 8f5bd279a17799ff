//! Re-hooking a published attachment (its interface re-created, or its program taken off
//! the hook) and putting it back in its place on the hook ([`Order`]). The new hook is
//! recorded before it exists; a new TCX link is pinned as `link:next` and renamed over
//! `link`; a netlink filter at its new priority is added before any other filter running
//! our program is removed.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use crate::{
    attachment::{Attachment, Placement, recover::promote_next_link},
    bpf,
    error::{Error, Result},
    failpoint,
    hook::{self, HookPosition, Mode, Order, netlink, tcx},
    maps::MapSet,
    meta::{Clsact, Meta, NlHook},
    pins::{LINK_NEXT_PIN, LINK_PIN, PROG_PIN},
    sys, text,
};

impl Attachment {
    /// Puts the pinned program back on the interface's hook if it is not there. `Some`
    /// with the reason when it had to.
    pub(in crate::attachment) fn ensure_hooked(
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
        if meta.mode == Mode::Netlink && ifindex != meta.ifindex {
            // The old device may still be here under another name: its filter goes
            // first (a kill right after leaves the recorded hook, which `remove` finds).
            self.unhook_filters(meta.ifindex, program_id, None, meta)?;
        }
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
                let link = tcx::attach(&self.ifname, ifindex, prog.as_fd(), meta.order)?;
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

    /// Removes the cls_bpf filters running `program_id` from `ifindex` (if that device
    /// is in this namespace), except `keep`; and the clsact qdisc when it was ours on
    /// that device and nothing is left on it.
    fn unhook_filters(
        &self,
        ifindex: u32,
        program_id: u32,
        keep: Option<(u16, u32)>,
        meta: &Meta,
    ) -> Result<usize> {
        if ifindex == 0 || sys::ifname(ifindex).is_none() {
            return Ok(0);
        }
        let filters = netlink::filters(ifindex, netlink::Direction::Ingress)
            .map_err(|e| Error::netlink("listing tc filters", e))?;
        let mut removed = 0;
        for f in filters
            .iter()
            .filter(|f| f.prog_id == Some(program_id) && Some((f.priority, f.handle)) != keep)
        {
            netlink::filter_del(ifindex, f.priority, f.handle)
                .map_err(|e| Error::netlink("deleting our tc filter", e))?;
            removed += 1;
        }
        if keep.is_none()
            && ifindex == meta.ifindex
            && meta
                .nl
                .is_some_and(|nl| matches!(nl.clsact, Clsact::Created | Clsact::Maybe))
        {
            netlink::clsact_del_if_empty(ifindex)
                .map_err(|e| Error::netlink("deleting the clsact qdisc we created", e))?;
        }
        Ok(removed)
    }

    /// Netlink: exactly one filter of ours, the recorded one. A move killed after the new
    /// filter was recorded but before it was added leaves the old one running: the move is
    /// finished (the recorded filter added) or, if its priority was taken meanwhile, the
    /// running one recorded instead; then every other filter of ours is removed.
    fn settle_filters(
        &self,
        maps: &mut MapSet,
        meta: &mut Meta,
        ifindex: u32,
        program_id: u32,
        prog: &OwnedFd,
    ) -> Result<()> {
        let Some(mut nl) = meta.nl else {
            return Ok(());
        };
        let filters = netlink::filters(ifindex, netlink::Direction::Ingress)
            .map_err(|e| Error::netlink("listing tc filters", e))?;
        let ours: Vec<&netlink::Filter> = filters
            .iter()
            .filter(|f| f.prog_id == Some(program_id))
            .collect();
        let Some(running) = ours.first() else {
            return Ok(());
        };
        if !ours
            .iter()
            .any(|f| (f.priority, f.handle) == (nl.priority, nl.handle))
        {
            match netlink::filter_add(
                ifindex,
                nl.priority,
                nl.handle,
                prog.as_fd(),
                lvs_ebpf_common::PROGRAM_NAME,
            ) {
                Ok(()) => failpoint::hit("reorder:filter-added"),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::EINVAL)) => {
                    nl.priority = running.priority;
                    nl.handle = running.handle;
                    meta.nl = Some(nl);
                    maps.write_meta(&meta.to_raw()?)?;
                }
                Err(e) => return Err(Error::netlink("adding our tc filter", e)),
            }
        }
        self.unhook_filters(ifindex, program_id, Some((nl.priority, nl.handle)), meta)?;
        Ok(())
    }

    /// Puts the (hooked) program where `meta.order` wants it on the hook, if it is not
    /// there and can be. Netlink: also removes any other filter running our program (a
    /// repair killed half-way).
    pub(in crate::attachment) fn ensure_order(
        &self,
        dir: &Path,
        maps: &mut MapSet,
        meta: &mut Meta,
        program_id: u32,
    ) -> Result<Placement> {
        let Some(ifindex) = sys::ifindex(&self.ifname).filter(|&i| i == meta.ifindex) else {
            return Ok(Placement::InPlace);
        };
        let prog_path = dir.join(PROG_PIN);
        let prog = bpf::obj_get(&prog_path)
            .map_err(|e| Error::io(format!("opening {}", text::escape_path(&prog_path)), e))?;
        if meta.mode == Mode::Netlink {
            self.settle_filters(maps, meta, ifindex, program_id, &prog)?;
        }
        let entries = hook::ingress(ifindex)?;
        let Some(problem) = meta.order.problem(&entries, program_id) else {
            return Ok(Placement::InPlace);
        };
        match meta.mode {
            Mode::Tcx => {
                if !matches!(meta.order, Order::First) {
                    return Ok(Placement::Impossible(problem));
                }
                // The kernel refuses the same program twice on one hook, so the link is
                // detached and made again in front: for the microseconds between the two
                // syscalls nothing marks. A kill in between leaves it "not hooked" (its
                // link pin detached), which the next repair or reload hooks again.
                drop(prog);
                if let Some((link, _)) = tcx::open(&dir.join(LINK_PIN)) {
                    bpf::link_detach(link.as_fd()).map_err(|e| {
                        Error::io(format!("detaching the TCX link of {}", self.ifname), e)
                    })?;
                }
                failpoint::hit("reorder:link-detached");
                match self.ensure_hooked(dir, maps, meta, program_id)? {
                    Some(_) => Ok(Placement::Moved(problem)),
                    None => Ok(Placement::Impossible(problem)),
                }
            }
            Mode::Netlink => {
                let front = Order::in_front(&entries, program_id);
                if meta.order == Order::First
                    && front.iter().any(|e| e.position == HookPosition::Tcx)
                {
                    return Ok(Placement::Impossible(problem));
                }
                let others: Vec<netlink::Filter> =
                    netlink::filters(ifindex, netlink::Direction::Ingress)
                        .map_err(|e| Error::netlink("listing tc filters", e))?
                        .into_iter()
                        .filter(|f| f.prog_id != Some(program_id))
                        .collect();
                let target = netlink::priority_for(&others, meta.order);
                let fits = match meta.order {
                    Order::First => others.iter().all(|f| f.priority > target),
                    Order::Priority(p) => others.iter().all(|f| f.priority != p),
                    Order::Last => true,
                };
                if !fits {
                    return Ok(Placement::Impossible(format!(
                        "{problem}; no free tc priority puts it there"
                    )));
                }
                let old = meta.nl;
                let mut nl = old.unwrap_or(NlHook {
                    priority: target,
                    handle: 1,
                    clsact: Clsact::Found,
                });
                nl.priority = target;
                nl.handle = 1;
                meta.nl = Some(nl);
                maps.write_meta(&meta.to_raw()?)?;
                failpoint::hit("reorder:filter-recorded");
                netlink::filter_add(
                    ifindex,
                    target,
                    1,
                    prog.as_fd(),
                    lvs_ebpf_common::PROGRAM_NAME,
                )
                .map_err(|source| Error::Attach {
                    iface: self.ifname.clone(),
                    mode: Mode::Netlink,
                    hint: None,
                    source,
                })?;
                failpoint::hit("reorder:filter-added");
                self.unhook_filters(ifindex, program_id, Some((target, 1)), meta)?;
                Ok(Placement::Moved(problem))
            }
        }
    }
}

//! Finishing or undoing what a killed command left behind, and removing an attachment
//! (unhook first, then unpin).

use std::{os::fd::AsFd as _, path::Path};

use super::{Attachment, open_pins, read_meta, read_meta_from};
use crate::{
    bpf,
    error::{Error, Result},
    failpoint,
    hook::{netlink, tcx},
    journal,
    meta::{Clsact, Meta},
    pins::{self, Entry, LINK_NEXT_PIN, LINK_PIN, PROG_PIN, PinRoot},
    sys, text,
};

impl Attachment {
    /// Finishes or undoes whatever a killed command left of this attachment (lock held).
    /// Returns what it did, in words.
    pub(crate) fn recover(&self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        // An empty namespace directory left by a command killed at its very end.
        self.root.prune(&self.ns_dir());
        if let Some(what) = self.recover_growth()? {
            done.push(what);
        }
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

/// Renames `link.next` over `link`, detaching the link it replaces first (it may still be
/// attached to a device that moved to another namespace).
pub(super) fn promote_next_link(dir: &Path) -> Result<()> {
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

//! Attachments that are not simply here: an interface that moved to another namespace
//! with its TCX program (where it went; detaching it from its new namespace), the owner of
//! another lvs-ebpf program found on a hook, and attachments whose namespace no longer
//! exists (`detach --orphans`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    attachment::{self, Attachment, DetachReport},
    bpf,
    error::Result,
    hook::{self, Mode, tcx},
    ifname::IfName,
    lock,
    meta::{Clsact, Meta},
    netns::{self, NetnsId, Scan},
    pins::{self, Entry, LINK_PIN, PROG_PIN, PinRoot},
    status::{NsLoc, here, locate},
    sys, text,
};

/// Where the TCX link of an attachment is now when not on its recorded device in this
/// namespace: "renamed to X" (same namespace) or "moved to network namespace N as X".
pub(crate) fn moved_detail(dir: &Path, meta: &Meta) -> Option<String> {
    if meta.mode != Mode::Tcx {
        return None;
    }
    let (_, ifindex) = tcx::open(&dir.join(LINK_PIN))?;
    if ifindex == 0 {
        return None;
    }
    let prog_id = bpf::pinned_prog_id(&dir.join(PROG_PIN)).ok()?;
    if hook::is_hooked(ifindex, prog_id).unwrap_or(false) {
        if let Some(name) = sys::ifname(ifindex)
            && name != meta.ifname
        {
            return Some(format!("renamed to {name} (ifindex {ifindex})"));
        }
        if sys::ifname(ifindex).is_some() {
            return None;
        }
    }
    let here = netns::current().ok();
    for ns in Scan::new(None).all() {
        if Some(ns.id) == here {
            continue;
        }
        let Ok(file) = ns.open() else { continue };
        let found = netns::run_in(&file, || {
            hook::is_hooked(ifindex, prog_id)
                .unwrap_or(false)
                .then(|| sys::ifname(ifindex))
                .flatten()
        })
        .ok()
        .flatten();
        if let Some(name) = found {
            return Some(format!(
                "moved to network namespace {} as {name} (ifindex {ifindex}), still marking with this config: `lvs-loader detach {}` here removes it",
                ns.label, meta.ifname
            ));
        }
    }
    Some(format!(
        "its TCX link is on ifindex {ifindex} in a network namespace lvs-loader cannot find, still marking: `lvs-loader detach {}` here removes it",
        meta.ifname
    ))
}

/// Every attachment directory under `root` whose program is `prog_id`:
/// (namespace, entry, directory).
fn owners_of(root: &PinRoot, prog_id: u32) -> Vec<(NetnsId, Entry, PathBuf)> {
    let mut out = Vec::new();
    for (id, ns_dir) in root.namespaces().unwrap_or_default() {
        for (e, dir) in pins::entries(&ns_dir).unwrap_or_default() {
            if bpf::pinned_prog_id(&dir.join(PROG_PIN)).ok() == Some(prog_id) {
                out.push((id, e, dir));
            }
        }
    }
    out
}

/// Whose lvs-ebpf program `prog_id` is, in words, for the "would stack" refusal.
pub(crate) fn describe_owner(root: &PinRoot, prog_id: u32) -> String {
    let here = netns::current().ok();
    match owners_of(root, prog_id).into_iter().next() {
        Some((id, _, dir)) if Some(id) == here => format!(
            "attached here under the name {}",
            text::escape_path(dir.file_name().map(Path::new).unwrap_or(Path::new("?")))
        ),
        // This namespace, in the layout of an lvs-loader without namespace cookies.
        Some((id, e, dir))
            if id.cookie.is_none()
                && here.is_some_and(|h| h.inode == id.inode && h.cookie.is_some()) =>
        {
            format!(
                "attached here by an older lvs-loader (pins at {}); `lvs-loader detach {}` removes it",
                text::escape_path(&dir),
                e.ifname(),
            )
        }
        Some((id, e, dir)) => format!(
            "attached as {} in network namespace {} and moved here (pins at {}); `lvs-loader detach {}` here removes it",
            e.ifname(),
            netns::named(&id).unwrap_or_else(|| id.dir_name()),
            text::escape_path(&dir),
            e.ifname(),
        ),
        None => {
            "not under this pin root: attached with another --pin-dir, or not by lvs-loader".into()
        }
    }
}

/// `detach IFACE` where IFACE has no attachment in this namespace but carries the program
/// of one from another namespace (a TCX interface moved here): detaches that one.
pub(crate) fn detach_moved_here(
    root: &PinRoot,
    ifname: &IfName,
    wait: Duration,
) -> Result<Option<DetachReport>> {
    let Some(ifindex) = sys::ifindex(ifname) else {
        return Ok(None);
    };
    let here = here()?;
    for entry in hook::ingress(ifindex)?
        .into_iter()
        .filter(|e| e.is_marker())
    {
        let Some(prog_id) = entry.prog_id else {
            continue;
        };
        let Some((id, e, _)) = owners_of(root, prog_id)
            .into_iter()
            .find(|(id, e, _)| *id != here && matches!(e, Entry::Published(_)))
        else {
            continue;
        };
        let owner = Attachment {
            root: root.clone(),
            netns: id,
            ifname: e.ifname().clone(),
            lock_wait: wait,
        };
        let _guard = lock::acquire(&owner.lock_key(), wait)?;
        let dir = owner.dir();
        if !dir.exists() {
            continue;
        }
        let removing = {
            use std::os::unix::ffi::OsStringExt as _;
            root.ns_dir(&id).join(std::ffi::OsString::from_vec(
                Entry::Removing(e.ifname().clone()).file_name(),
            ))
        };
        let meta = attachment::read_meta(&dir).ok();
        pins::rename_noreplace(&dir, &removing)?;
        // Hook operations happen on the device here, which is where the program runs.
        let local = meta.clone().map(|mut m| {
            m.ifindex = ifindex;
            m.ifname = ifname.clone();
            if let Some(nl) = m.nl.as_mut() {
                nl.clsact = Clsact::Found;
            }
            m
        });
        attachment::remove(root, &removing, local.as_ref())?;
        root.prune(&root.ns_dir(&id));
        return Ok(Some(DetachReport {
            interface: e.ifname().clone(),
            mode: meta.map(|m| m.mode),
            pin_dir: dir,
            netns: Some(netns::named(&id).unwrap_or_else(|| id.dir_name())),
            recovered: Vec::new(),
        }));
    }
    Ok(None)
}

/// `detach --orphans`: frees every attachment whose namespace no longer exists.
pub fn detach_orphans(pin_root: &Path, wait: Duration) -> Result<Vec<DetachReport>> {
    sys::check_privileges()?;
    let root = PinRoot::new(pin_root, false)?;
    let here = here()?;
    let namespaces = root.namespaces()?;
    let ids: Vec<NetnsId> = namespaces.iter().map(|(i, _)| *i).collect();
    let locs = locate(&ids, here);
    let mut out = Vec::new();
    for (id, ns_dir) in namespaces {
        if !matches!(locs[&id], NsLoc::Gone) {
            continue;
        }
        let mut names: Vec<IfName> = pins::entries(&ns_dir)?
            .into_iter()
            .map(|(e, _)| e.ifname().clone())
            .collect();
        names.dedup();
        for ifname in names {
            let att = Attachment {
                root: root.clone(),
                netns: id,
                ifname: ifname.clone(),
                lock_wait: wait,
            };
            let _guard = lock::acquire(&att.lock_key(), wait)?;
            let mut mode = None;
            for e in [
                Entry::Published(ifname.clone()),
                Entry::Staging(ifname.clone()),
                Entry::Removing(ifname.clone()),
            ] {
                use std::os::unix::ffi::OsStringExt as _;
                let dir = ns_dir.join(std::ffi::OsString::from_vec(e.file_name()));
                if !dir.exists() {
                    continue;
                }
                let meta = attachment::read_meta(&dir).ok();
                mode = mode.or(meta.as_ref().map(|m| m.mode));
                // The namespace and its devices are gone (a physical device goes back
                // to the initial namespace without its qdiscs): only links and pins
                // are left to free.
                tcx::detach_pinned(&dir.join(pins::LINK_NEXT_PIN))?;
                tcx::detach_pinned(&dir.join(LINK_PIN))?;
                pins::remove_attachment_dir(&dir)?;
            }
            out.push(DetachReport {
                interface: ifname,
                mode,
                pin_dir: att.dir(),
                netns: Some(id.dir_name()),
                recovered: Vec::new(),
            });
        }
        root.prune(&ns_dir);
    }
    Ok(out)
}

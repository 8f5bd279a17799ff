//! Collecting the status of attachments: each one's pins and metadata, whether another
//! lvs-loader holds its lock or left it half-done, and what its interface's hook runs,
//! looked at inside the attachment's namespace.

use std::{collections::BTreeMap, path::Path};

use super::{
    State, StatusEntry,
    locate::{NsLoc, here, in_ns, locate},
};
use crate::{
    attachment, bpf, config,
    error::Result,
    hook::{self, HookEntry, Mode, Order},
    ifname::IfName,
    lock::{self, LockKey},
    meta::Meta,
    netns::NetnsId,
    pins::{self, Entry, PROG_PIN, PinRoot},
    sys, text,
};

/// Every attachment under `pin_root`, in every namespace, sorted.
pub fn list(pin_root: &Path) -> Result<Vec<StatusEntry>> {
    let root = PinRoot::new(pin_root, false)?;
    let here = here()?;
    let namespaces = root.namespaces()?;
    let ids: Vec<NetnsId> = namespaces.iter().map(|(i, _)| *i).collect();
    let locs = locate(&ids, here);
    let mut out = Vec::new();
    for (id, ns_dir) in namespaces {
        let loc = &locs[&id];
        let mut by_name: BTreeMap<IfName, Vec<Entry>> = BTreeMap::new();
        for (e, _) in pins::entries(&ns_dir)? {
            by_name.entry(e.ifname().clone()).or_default().push(e);
        }
        for (ifname, kinds) in by_name {
            out.push(entry_status(&root, id, loc, &ns_dir, &ifname, &kinds));
        }
    }
    Ok(out)
}

/// The status of one attachment.
pub fn one(root: &PinRoot, id: &NetnsId, ifname: &IfName) -> Result<StatusEntry> {
    let here = here()?;
    let loc = locate(&[*id], here).remove(id).unwrap_or(NsLoc::Gone);
    let ns_dir = root.ns_dir(id);
    let kinds: Vec<Entry> = pins::entries(&ns_dir)?
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| e.ifname() == ifname)
        .collect();
    Ok(entry_status(root, *id, &loc, &ns_dir, ifname, &kinds))
}

fn entry_status(
    root: &PinRoot,
    id: NetnsId,
    loc: &NsLoc,
    ns_dir: &Path,
    ifname: &IfName,
    kinds: &[Entry],
) -> StatusEntry {
    let path_of = |e: &Entry| {
        use std::os::unix::ffi::OsStringExt as _;
        ns_dir.join(std::ffi::OsString::from_vec(e.file_name()))
    };
    let published = kinds.iter().find(|e| matches!(e, Entry::Published(_)));
    let in_flight = kinds.iter().find(|e| !matches!(e, Entry::Published(_)));
    let staging = kinds.iter().find(|e| matches!(e, Entry::Staging(_)));
    // `:new` beside `<ifname>` or `:old`: a reload growing the maps. Show the side whose
    // program the hook runs (after the swap, and once `<ifname>` is renamed away, the new
    // one), so that `status` names the config that marks.
    let growth = staging.is_some() && kinds.len() > 1;
    let staging_hooked = growth
        && staging.is_some_and(|st| {
            let dir = path_of(st);
            match (
                crate::attachment::read_meta(&dir),
                bpf::pinned_prog_id(&dir.join(PROG_PIN)),
            ) {
                (Ok(m), Ok(prog)) => in_ns(loc, move || {
                    sys::ifindex(&m.ifname)
                        .is_some_and(|i| hook::is_hooked(i, prog).unwrap_or(false))
                })
                .unwrap_or(false),
                _ => false,
            }
        });
    let shown = if growth && (staging_hooked || published.is_none()) {
        staging
    } else {
        published.or(in_flight)
    };
    let shown_dir = shown.map(path_of).unwrap_or_default();
    let mut s = StatusEntry::blank(id, loc, ifname, &shown_dir);
    let key = LockKey::new(
        root.path(),
        &id.dir_name(),
        ifname.as_bytes(),
        String::new(),
    );

    let meta = match fill_from_pins(&mut s, &shown_dir, ifname) {
        Ok(m) => Some(m),
        Err(e) => {
            s.state = State::Broken;
            s.detail = Some(e.to_string());
            None
        }
    };
    if let Some(e) = in_flight {
        if let Some(h) = lock::holder(&key) {
            s.state = State::Busy;
            s.detail = Some(h);
            return s;
        }
        s.state = State::Interrupted;
        // Is the half-made (or half-removed) attachment's program running?
        let running = match (&meta, s.program_id) {
            (Some(m), Some(prog)) => {
                let name = m.ifname.clone();
                in_ns(loc, move || {
                    sys::ifindex(&name).is_some_and(|i| hook::is_hooked(i, prog).unwrap_or(false))
                })
                .unwrap_or(false)
            }
            _ => false,
        };
        let marks = if running {
            "; its program is on the hook and marks with the config shown"
        } else {
            "; nothing of it is on the hook"
        };
        s.detail = Some(match e {
            _ if growth => format!(
                "a reload resizing the maps was interrupted{marks}: the next attach, reload or detach of this interface {} it",
                if staging_hooked || published.is_none() {
                    "finishes"
                } else {
                    "undoes"
                }
            ),
            Entry::Staging(_) => format!(
                "an attach was interrupted{marks}: the next attach, reload or detach of this interface undoes it"
            ),
            _ => format!(
                "a detach was interrupted{marks}: the next attach, reload or detach of this interface finishes it"
            ),
        });
        return s;
    }
    let Some(meta) = meta else { return s };
    if let Some(h) = lock::holder(&key) {
        // Being changed right now: say so, but still report the hook.
        s.detail = Some(format!("being changed: {h}"));
    }
    if matches!(loc, NsLoc::Gone) {
        s.state = State::NamespaceGone;
        s.detail = Some(format!(
            "network namespace {} no longer exists; its pins only hold kernel memory now: `lvs-loader detach --orphans` frees them",
            id.dir_name()
        ));
        return s;
    }
    let dir = shown_dir.clone();
    let prog_id = s.program_id;
    let proven = loc.proves(&id);
    let result = in_ns(loc, || hook_state(&dir, &meta, prog_id, proven));
    match result {
        Some((state, detail, hooks)) => {
            s.state = state;
            if detail.is_some() {
                s.detail = detail;
            }
            if let Some(prog) = s.program_id
                && s.is_hooked_on(&hooks)
            {
                s.in_front = Order::in_front(&hooks, prog).to_vec();
                s.order_problem = meta.order.problem(&hooks, prog);
                if let Some(p) = &s.order_problem {
                    s.detail = Some(match s.detail.take() {
                        Some(d) => format!("{d}; {p}"),
                        None => p.clone(),
                    });
                }
            }
            s.hooks = hooks;
        }
        None => {
            s.state = State::NamespaceGone;
            s.detail = Some("the network namespace could not be entered".into());
        }
    }
    s
}

fn fill_from_pins(s: &mut StatusEntry, dir: &Path, ifname: &IfName) -> Result<Meta> {
    let mut maps = attachment::open_pins(dir, ifname)?;
    let meta = attachment::read_meta_from(&maps, dir, ifname)?;
    let live = maps.active_generation()?;
    let g = meta.generation(live);
    s.mode = Some(meta.mode);
    s.order = Some(meta.order);
    s.config_file = g.config_path.clone();
    s.digest = (g.serial != 0).then_some(g.digest);
    s.ifindex = meta.ifindex;
    s.program_id = bpf::pinned_prog_id(&dir.join(PROG_PIN)).ok();
    s.vips = g.vips;
    s.capacity = maps.capacity()?;
    s.peers = g.peers;
    s.config_path = g.config_path.as_deref().map(text::escape_path);
    s.config_digest = if g.serial == 0 {
        String::new()
    } else {
        config::hex(&g.digest)
    };
    s.generation = g.serial;
    s.attached_at = meta.attached_at;
    s.reloaded_at = g.applied_at;
    Ok(meta)
}

/// The hook state of a published attachment, evaluated inside its namespace.
fn hook_state(
    dir: &Path,
    meta: &Meta,
    prog_id: Option<u32>,
    proven: bool,
) -> (State, Option<String>, Vec<HookEntry>) {
    let Some(prog_id) = prog_id else {
        return (
            State::Broken,
            Some("the program pin is missing".into()),
            Vec::new(),
        );
    };
    let now = sys::ifindex(&meta.ifname);
    let hooks = now
        .map(|i| hook::ingress(i).unwrap_or_default())
        .unwrap_or_default();
    let hooked_now = hooks.iter().any(|h| h.prog_id == Some(prog_id));
    if now == Some(meta.ifindex) && hooked_now {
        return (State::Ok, None, hooks);
    }
    if !proven && !hooked_now {
        return (
            State::Unverified,
            Some("the namespace's identity can't be read (no namespace cookie, no netlink_diag) and the program is not on the hook: these pins may belong to a namespace that is gone".into()),
            hooks,
        );
    }
    if meta.mode == Mode::Tcx
        && let Some(detail) = crate::elsewhere::moved_detail(dir, meta)
    {
        let state = if detail.starts_with("renamed") {
            State::Ok
        } else {
            State::Moved
        };
        return (state, Some(detail), hooks);
    }
    match now {
        None => (
            State::InterfaceGone,
            Some(format!(
                "{} (ifindex {}) no longer exists; nothing marks its packets",
                meta.ifname, meta.ifindex
            )),
            hooks,
        ),
        Some(i) if i != meta.ifindex => (
            State::Recreated,
            Some(format!(
                "{} now has ifindex {i}, the program was on ifindex {}: `lvs-loader reload` hooks it again",
                meta.ifname, meta.ifindex
            )),
            hooks,
        ),
        Some(_) => (
            State::NotHooked,
            Some("the program is not on the hook (filter, qdisc or link removed): `lvs-loader reload` hooks it again".into()),
            hooks,
        ),
    }
}

//! TCX links: created by interface index, pinned by the caller right away (an unpinned
//! link dies with the process that made it), detached explicitly.

use std::{
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::Path,
};

use crate::{
    bpf,
    error::{Error, Result},
    hook::{Mode, Order},
    ifname::IfName,
};

/// Program ids on `ifindex`'s TCX ingress hook, in run order.
pub fn ingress_prog_ids(ifindex: u32) -> Result<Vec<u32>> {
    bpf::tcx_ingress_prog_ids(ifindex).map_err(|e| {
        Error::io(
            format!("querying the TCX ingress hook of ifindex {ifindex}"),
            e,
        )
    })
}

/// Attaches `prog` to `ifindex`'s TCX ingress: before every program already there
/// ([`Order::First`]) or after them.
pub fn attach(iface: &IfName, ifindex: u32, prog: BorrowedFd<'_>, order: Order) -> Result<OwnedFd> {
    let flags = match order {
        Order::First => bpf::BPF_F_BEFORE,
        Order::Last | Order::Priority(_) => 0,
    };
    bpf::tcx_link_create(prog, ifindex, flags).map_err(|source| Error::Attach {
        iface: iface.clone(),
        mode: Mode::Tcx,
        hint: match source.raw_os_error() {
            Some(libc::EINVAL) => Some("this kernel has no TCX (Linux >= 6.6): use --mode netlink"),
            Some(libc::ENODEV) => Some("the interface is gone"),
            _ => None,
        },
        source,
    })
}

/// The pinned link at `path`, if any: (link fd, attached device or 0).
pub fn open(path: &Path) -> Option<(OwnedFd, u32)> {
    let fd = bpf::obj_get(path).ok()?;
    let ifindex = bpf::link_info(fd.as_fd())
        .ok()
        .and_then(|i| i.tcx_ifindex)
        .unwrap_or(0);
    Some((fd, ifindex))
}

/// Detaches the link pinned at `path` (wherever its device is now, even in another
/// namespace) and removes the pin. Nothing pinned: nothing to do.
pub fn detach_pinned(path: &Path) -> Result<()> {
    if let Ok(fd) = bpf::obj_get(path) {
        match bpf::link_detach(fd.as_fd()) {
            // ENOLINK: already detached (device gone).
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOLINK | libc::EINVAL)) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("detaching the TCX link {}", path.display()),
                    e,
                ));
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Pins a freshly created link.
pub fn pin(link: BorrowedFd<'_>, path: &Path) -> Result<()> {
    bpf::obj_pin(link, path).map_err(|e| Error::io(format!("pinning {}", path.display()), e))
}

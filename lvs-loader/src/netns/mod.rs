//! Network-namespace identity and discovery.
//!
//! An attachment's pins are keyed by the identity of the namespace its interface lived
//! in: the nsfs inode plus the namespace cookie (`SO_NETNS_COOKIE`, Linux >= 5.14). An
//! inode number is reused once a namespace is gone; a cookie never is (within a boot, and
//! bpffs does not outlive a boot), so a new namespace can never inherit a dead one's
//! pins. Before 5.14 the cookie is the one of the namespace's rtnetlink kernel socket,
//! read through sock_diag ([`instance`]): as unique, and born and gone with the
//! namespace. Without either (no `netlink_diag`) the inode alone names the directory and
//! the loader trusts such pins only while their program is on the recorded device's hook.
//!
//! Namespaces are found by scanning what can keep one alive: `/run/netns` and other nsfs
//! bind mounts, and every process's and thread's namespace and open namespace fds.

use std::{
    collections::BTreeMap,
    fs::File,
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::sys::NETNS_RUN_DIR;

mod instance;

/// `SO_NETNS_COOKIE` (include/uapi/asm-generic/socket.h).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// Identity of a network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NetnsId {
    /// nsfs inode (what `ls -iL /proc/self/ns/net` shows).
    pub inode: u64,
    /// `SO_NETNS_COOKIE`; before 5.14 the socket cookie of the namespace's rtnetlink
    /// kernel socket; `None` when neither can be read.
    pub cookie: Option<u64>,
}

impl NetnsId {
    /// The name of this namespace's directory under the pin root: `ns<inode>-<cookie>`,
    /// or `ns<inode>` without a cookie.
    pub fn dir_name(&self) -> String {
        match self.cookie {
            Some(c) => format!("ns{}-{c}", self.inode),
            None => format!("ns{}", self.inode),
        }
    }

    /// Parses [`NetnsId::dir_name`].
    pub fn from_dir_name(name: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(name).ok()?.strip_prefix("ns")?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        match s.split_once('-') {
            Some((i, c)) if digits(i) && digits(c) => Some(Self {
                inode: i.parse().ok()?,
                cookie: Some(c.parse().ok()?),
            }),
            None if digits(s) => Some(Self {
                inode: s.parse().ok()?,
                cookie: None,
            }),
            _ => None,
        }
    }
}

/// Cookie of the calling thread's namespace (see [`NetnsId::cookie`]), `None` when the
/// kernel can give none.
fn own_cookie() -> io::Result<Option<u64>> {
    // SAFETY: plain socket(2); AF_UNIX exists in every namespace.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid fd and out buffer.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        return Ok(Some(cookie));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
        Ok(instance::rtnl_kernel_socket_cookie())
    } else {
        Err(e)
    }
}

/// Identity of the calling thread's namespace.
pub fn current() -> io::Result<NetnsId> {
    let inode = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    Ok(NetnsId {
        inode,
        cookie: own_cookie()?,
    })
}

/// Runs `f` on a thread that has entered the namespace of `ns` (an nsfs file), and
/// returns its result. The calling thread's namespace is left alone.
pub fn run_in<R: Send>(ns: &File, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: valid fd of an nsfs file.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace worker panicked")))
    })
}

/// Identity of the namespace of the nsfs file `ns`.
pub fn id_of(ns: &File) -> io::Result<NetnsId> {
    let inode = ns.metadata()?.ino();
    let cookie = run_in(ns, own_cookie)??;
    Ok(NetnsId { inode, cookie })
}

/// A live namespace found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub id: NetnsId,
    /// A path that opens it (kept open by whatever keeps the namespace alive).
    pub path: PathBuf,
    /// How a person would name it: `NAME` for /run/netns/NAME, else the path (escaped).
    pub label: String,
}

impl Found {
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }
}

fn label(path: &Path) -> String {
    match path.strip_prefix(NETNS_RUN_DIR) {
        Ok(name) => crate::text::escape_path(name),
        Err(_) => crate::text::escape_path(path),
    }
}

/// `net:[4026531840]` -> 4026531840
fn nsfs_link_inode(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let target = std::fs::read_link(path).ok()?;
    let t = target.as_os_str().as_bytes();
    let inner = t.strip_prefix(b"net:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Candidate paths for live namespaces, cheapest first, with their inode.
fn candidates() -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    // ip netns bind mounts.
    if let Ok(rd) = std::fs::read_dir(NETNS_RUN_DIR) {
        for e in rd.flatten() {
            if let Ok(m) = std::fs::metadata(e.path()) {
                out.push((m.ino(), e.path()));
            }
        }
    }
    // Other nsfs bind mounts (docker, systemd PrivateNetwork=, ...).
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            let mut f = line.split(' ');
            let (Some(root), Some(mount)) = (f.nth(3), f.next()) else {
                continue;
            };
            if root.starts_with("net:[")
                && let Some(ino) = root
                    .strip_prefix("net:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|r| r.parse().ok())
            {
                out.push((ino, PathBuf::from(unescape_mountinfo(mount))));
            }
        }
    }
    // Every process and thread, and namespace fds they hold open.
    let mut fd_dirs = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            let pid = e.path();
            let ns = pid.join("ns/net");
            if let Some(ino) = nsfs_link_inode(&ns) {
                out.push((ino, ns));
            }
            if let Ok(tasks) = std::fs::read_dir(pid.join("task")) {
                for t in tasks.flatten() {
                    let ns = t.path().join("ns/net");
                    if let Some(ino) = nsfs_link_inode(&ns) {
                        out.push((ino, ns));
                    }
                }
            }
            fd_dirs.push(pid.join("fd"));
        }
    }
    for dir in fd_dirs {
        if let Ok(fds) = std::fs::read_dir(dir) {
            for fd in fds.flatten() {
                if let Some(ino) = nsfs_link_inode(&fd.path()) {
                    out.push((ino, fd.path()));
                }
            }
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every live network namespace this process can see, by identity.
#[derive(Default)]
pub struct Scan {
    found: BTreeMap<NetnsId, Found>,
}

impl Scan {
    /// Looks at every candidate whose inode is in `wanted` (all when `None`).
    pub fn new(wanted: Option<&[u64]>) -> Self {
        let mut found = BTreeMap::new();
        let mut done = std::collections::BTreeSet::new();
        for (ino, path) in candidates() {
            if wanted.is_some_and(|w| !w.contains(&ino)) || done.contains(&ino) {
                continue;
            }
            // Live namespaces have distinct inodes: one path per inode is enough.
            let Ok(f) = File::open(&path) else { continue };
            let Ok(id) = id_of(&f) else { continue };
            done.insert(ino);
            found.entry(id).or_insert_with(|| Found {
                id,
                label: label(&path),
                path,
            });
        }
        Self { found }
    }

    /// The live namespace `id` names: the one with its cookie; without a cookie on
    /// either side (pins of a cookie-less layout, or a namespace whose cookie can't be
    /// read now), the one with its inode, which may be another namespace than the one
    /// that made the pins (the found id then differs from `id`).
    pub fn get(&self, id: &NetnsId) -> Option<&Found> {
        match id.cookie {
            Some(_) => self.found.get(id).or_else(|| {
                self.found
                    .values()
                    .find(|f| f.id.inode == id.inode && f.id.cookie.is_none())
            }),
            // No cookie: the inode is all we have.
            None => self.found.values().find(|f| f.id.inode == id.inode),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Found> {
        self.found.values()
    }
}

/// Label of the namespace `id` if it is one of `/run/netns`'s.
pub fn named(id: &NetnsId) -> Option<String> {
    let rd = std::fs::read_dir(NETNS_RUN_DIR).ok()?;
    for e in rd.flatten() {
        let Ok(m) = std::fs::metadata(e.path()) else {
            continue;
        };
        if m.ino() != id.inode {
            continue;
        }
        if let Ok(f) = File::open(e.path())
            && id_of(&f).ok().as_ref() == Some(id)
        {
            return Some(label(&e.path()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        let a = NetnsId {
            inode: 4026531840,
            cookie: Some(1),
        };
        assert_eq!(a.dir_name(), "ns4026531840-1");
        assert_eq!(NetnsId::from_dir_name(b"ns4026531840-1"), Some(a));
        let b = NetnsId {
            inode: 7,
            cookie: None,
        };
        assert_eq!(b.dir_name(), "ns7");
        assert_eq!(NetnsId::from_dir_name(b"ns7"), Some(b));
        for bad in [
            &b"ns"[..],
            b"ns-1",
            b"ns1-",
            b"nsx",
            b"ns1-2-3",
            b"x1",
            b"ns+1",
            b"ns1--2",
        ] {
            assert_eq!(NetnsId::from_dir_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/run/a\\040b"), "/run/a b");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}

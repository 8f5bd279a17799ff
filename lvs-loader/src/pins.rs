//! The pin tree on bpffs, and who may write it.
//!
//! ```text
//! PIN_ROOT/                                    0700, ours
//! PIN_ROOT/ns<inode>-<cookie>/                 one per network namespace (0700)
//! PIN_ROOT/ns<inode>-<cookie>/<ifname>/        an attachment: prog, link (tcx), LVS_* maps
//! PIN_ROOT/ns<inode>-<cookie>/<ifname>:new/    an attach or a growth in progress (or interrupted)
//! PIN_ROOT/ns<inode>-<cookie>/<ifname>:old/    a detach in progress (or interrupted)
//! ```
//!
//! bpffs refuses `.` in names (reserved by the kernel), so a `.` of an interface name
//! (`bond0.100`) is written `:_`; `:` never occurs in an interface name, so neither that
//! nor the in-flight suffixes can collide with one.
//! Directories are created 0700 whatever the umask, and a directory that another user owns
//! or that others may write is refused: whoever can write it can unpin the program.

use std::{
    fs, io,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    },
    path::{Component, Path, PathBuf},
};

use crate::{
    error::{Error, Result, ShownPath},
    ifname::IfName,
    netns::NetnsId,
    sys, text,
};

/// Default root of the pins.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lvs-ebpf";
/// The program's pin.
pub const PROG_PIN: &str = "prog";
/// The TCX link's pin.
pub const LINK_PIN: &str = "link";
/// A new TCX link, pinned before it replaces `link` (re-hook).
pub const LINK_NEXT_PIN: &str = "link:next";

/// An interface name as a bpffs name: `.` -> `:_`.
fn encode(ifname: &IfName) -> Vec<u8> {
    let mut v = Vec::with_capacity(ifname.as_bytes().len() + 2);
    for &b in ifname.as_bytes() {
        if b == b'.' {
            v.extend_from_slice(b":_");
        } else {
            v.push(b);
        }
    }
    v
}

/// The inverse of [`encode`]; `None` for anything it can't have produced.
fn decode(name: &[u8]) -> Option<IfName> {
    let mut v = Vec::with_capacity(name.len());
    let mut it = name.iter();
    while let Some(&b) = it.next() {
        match b {
            b':' => match it.next() {
                Some(b'_') => v.push(b'.'),
                _ => return None,
            },
            b'.' => return None,
            b => v.push(b),
        }
    }
    IfName::new(v).ok()
}

/// What a directory entry under a namespace directory is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// `<ifname>`: a published attachment.
    Published(IfName),
    /// `<ifname>:new`: an attach that has not been published.
    Staging(IfName),
    /// `<ifname>:old`: a detach that has not finished.
    Removing(IfName),
}

impl Entry {
    pub fn parse(name: &[u8]) -> Option<Self> {
        if let Some(i) = name.strip_suffix(b":new") {
            return decode(i).map(Self::Staging);
        }
        if let Some(i) = name.strip_suffix(b":old") {
            return decode(i).map(Self::Removing);
        }
        decode(name).map(Self::Published)
    }

    pub fn ifname(&self) -> &IfName {
        match self {
            Self::Published(i) | Self::Staging(i) | Self::Removing(i) => i,
        }
    }

    pub fn file_name(&self) -> Vec<u8> {
        let mut v = encode(self.ifname());
        match self {
            Self::Published(_) => {}
            Self::Staging(_) => v.extend_from_slice(b":new"),
            Self::Removing(_) => v.extend_from_slice(b":old"),
        }
        v
    }
}

/// A validated pin root.
#[derive(Clone, Debug)]
pub struct PinRoot {
    /// Absolute, without `.`/`..` components, symlinks resolved where it exists.
    path: PathBuf,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?
            .join(p)
    };
    // Resolve the longest existing prefix, then append the rest lexically (refusing `..`
    // in the part that does not exist).
    let mut existing = abs.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match fs::canonicalize(&existing) {
            Ok(c) => {
                let mut out = c;
                for r in rest.iter().rev() {
                    out.push(r);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!("resolving {}", text::escape_path(&existing)),
                    e,
                ));
            }
        }
        match existing.components().next_back() {
            Some(Component::Normal(n)) => {
                rest.push(n.to_os_string());
                existing.pop();
            }
            _ => {
                return Err(Error::Bpffs(format!(
                    "--pin-dir {}: use a plain absolute path",
                    text::escape_path(p)
                )));
            }
        }
    }
}

/// A directory that must be ours alone: owned by us (or root), writable by nobody else.
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let me = sys::euid();
    let shown = ShownPath(path.to_path_buf());
    if !meta.is_dir() {
        return Err(Error::UnsafeDir {
            path: shown,
            problem: "is not a directory".into(),
            fix: "remove it or pick another --pin-dir".into(),
        });
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(Error::UnsafeDir {
            problem: format!(
                "is owned by uid {}, not by uid {me} (lvs-loader): whoever owns it can remove the pins and detach the program",
                meta.uid()
            ),
            fix: format!(
                "check what is in it, then remove it (`rm -r {shown}`) or take it over (`chown {me}: {shown} && chmod 0700 {shown}`)"
            ),
            path: shown,
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::UnsafeDir {
            problem: format!(
                "is writable by {} (mode {:04o}): anyone who can write it can remove the pins and detach the program",
                if meta.mode() & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777
            ),
            fix: format!("`chmod 0700 {shown}`"),
            path: shown,
        });
    }
    Ok(())
}

/// An ancestor of the pin root: owned by root or us, and not writable by others unless
/// sticky (like a 1777 /sys/fs/bpf, where nobody can rename our directory away).
fn check_ancestor(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let me = sys::euid();
    let shown = ShownPath(path.to_path_buf());
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Error::UnsafeDir {
            problem: format!(
                "(a parent of the pin directory) is owned by uid {}: that user can replace the pin directory",
                meta.uid()
            ),
            fix: "pick a --pin-dir whose parents belong to root".into(),
            path: shown,
        });
    }
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(Error::UnsafeDir {
            problem: format!(
                "(a parent of the pin directory) is writable by others (mode {:04o}) without the sticky bit",
                meta.mode() & 0o7777
            ),
            fix: format!(
                "`chmod o-w,g-w {shown}` or `chmod +t {shown}`, or pick another --pin-dir"
            ),
            path: shown,
        });
    }
    Ok(())
}

/// Creates `path` as a 0700 directory (whatever the umask). `Ok(false)`: it existed.
pub fn mkdir_private(path: &Path) -> Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("chmod 0700 {}", text::escape_path(path)), e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e)
            if e.raw_os_error() == Some(libc::EPERM)
                && path
                    .file_name()
                    .is_some_and(|n| n.as_bytes().contains(&b'.')) =>
        {
            Err(Error::Bpffs(format!(
                "cannot create {}: a bpf filesystem does not allow '.' in names; pick a --pin-dir without dots",
                text::escape_path(path)
            )))
        }
        Err(e) => Err(Error::io(
            format!("creating {}", text::escape_path(path)),
            e,
        )),
    }
}

/// Checks (and with `create`, makes) a directory that must be private; `Ok(false)` when
/// it does not exist and `create` is off.
pub fn private_dir(path: &Path, create: bool) -> Result<bool> {
    if create {
        mkdir_private(path)?;
    }
    match fs::symlink_metadata(path) {
        Ok(m) => check_private(path, &m).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("reading {}", text::escape_path(path)), e)),
    }
}

impl PinRoot {
    /// The root at `path`, checked (and with `create`, made) without touching anything
    /// below it. A root that does not exist is fine for reading (nothing is attached).
    pub fn new(path: &Path, create: bool) -> Result<Self> {
        let path = absolute(path)?;
        if create {
            sys::ensure_bpffs(&path)?;
        }
        // Parents: existing ones checked, missing ones created private.
        let mut so_far = PathBuf::from("/");
        let comps: Vec<_> = path.components().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            so_far.push(c);
            let last = i + 1 == comps.len();
            match fs::symlink_metadata(&so_far) {
                Ok(m) if last => check_private(&so_far, &m)?,
                Ok(m) => check_ancestor(&so_far, &m)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        break;
                    }
                    mkdir_private(&so_far)?;
                    let m = fs::symlink_metadata(&so_far).map_err(|e| {
                        Error::io(format!("reading {}", text::escape_path(&so_far)), e)
                    })?;
                    check_private(&so_far, &m)?;
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("reading {}", text::escape_path(&so_far)),
                        e,
                    ));
                }
            }
        }
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of namespace `id`.
    pub fn ns_dir(&self, id: &NetnsId) -> PathBuf {
        self.path.join(id.dir_name())
    }

    /// The namespace directories, by identity, sorted.
    pub fn namespaces(&self) -> Result<Vec<(NetnsId, PathBuf)>> {
        let rd = match fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("reading {}", text::escape_path(&self.path)),
                    e,
                ));
            }
        };
        let mut out: Vec<(NetnsId, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                NetnsId::from_dir_name(e.file_name().as_bytes()).map(|id| (id, e.path()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes the namespace directory and the root once they are empty (`rmdir` refuses
    /// non-empty directories, so a concurrent attach elsewhere is never disturbed).
    pub fn prune(&self, ns_dir: &Path) {
        if fs::remove_dir(ns_dir).is_ok() {
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// The entries of a namespace directory.
pub fn entries(ns_dir: &Path) -> Result<Vec<(Entry, PathBuf)>> {
    let rd = match fs::read_dir(ns_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                format!("reading {}", text::escape_path(ns_dir)),
                e,
            ));
        }
    };
    let mut out: Vec<(Entry, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Entry::parse(e.file_name().as_bytes()).map(|en| (en, e.path())))
        .collect();
    out.sort();
    Ok(out)
}

/// Removes the pins lvs-loader makes in an attachment directory, then the directory.
/// Unknown files are left alone (and keep the directory).
pub fn remove_attachment_dir(dir: &Path) -> Result<()> {
    for name in crate::maps::ALL_MAPS
        .iter()
        .chain([PROG_PIN, LINK_PIN, LINK_NEXT_PIN].iter())
    {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!("removing {}", text::escape_path(&dir.join(name))),
                    e,
                ));
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!(
                "removing {} (files lvs-loader did not make are in it?)",
                text::escape_path(dir)
            ),
            e,
        )),
    }
}

/// `rename(from, to)` that fails instead of replacing an existing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use std::ffi::CString;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
    let (f, t) = (c(from), c(to));
    // The raw system call: the musl that Rust links statically (the package's build) has
    // no renameat2() wrapper.
    // SAFETY: valid C strings; renameat2(2) takes (int, const char *, int, const char *,
    // unsigned int).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!(
                "renaming {} to {}",
                text::escape_path(from),
                text::escape_path(to)
            ),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let i = IfName::new("eth0").unwrap();
        assert_eq!(Entry::parse(b"eth0"), Some(Entry::Published(i.clone())));
        assert_eq!(Entry::parse(b"eth0:new"), Some(Entry::Staging(i.clone())));
        assert_eq!(Entry::parse(b"eth0:old"), Some(Entry::Removing(i.clone())));
        assert_eq!(Entry::Staging(i.clone()).file_name(), b"eth0:new");
        // Not interface names, not in-flight names: ignored.
        for bad in [
            &b"eth0:x"[..],
            b":new",
            b".",
            b"..",
            b"a:b:new",
            b"0123456789abcdef",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
        // Non-UTF-8 names are interface names too.
        assert!(matches!(
            Entry::parse(b"e\xff:old"),
            Some(Entry::Removing(_))
        ));
        // Dots (VLAN interfaces) are encoded: bpffs refuses `.` in names.
        let vlan = IfName::new("bond0.100").unwrap();
        assert_eq!(Entry::Published(vlan.clone()).file_name(), b"bond0:_100");
        assert_eq!(
            Entry::parse(b"bond0:_100"),
            Some(Entry::Published(vlan.clone()))
        );
        assert_eq!(Entry::parse(b"bond0:_100:new"), Some(Entry::Staging(vlan)));
        assert_eq!(
            Entry::parse(b":_:_:_"),
            Some(Entry::Published(IfName::new("...").unwrap()))
        );
        for bad in [&b"bond0.100"[..], b"a:", b"a:x", b"a::_"] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn relative_roots_are_made_absolute() {
        let p = absolute(Path::new("no/such/dir/for/lvs")).unwrap();
        assert!(
            p.is_absolute() && p.ends_with("no/such/dir/for/lvs"),
            "{p:?}"
        );
        assert!(absolute(Path::new("/no-such-lvs-dir/../x")).is_err());
    }
}

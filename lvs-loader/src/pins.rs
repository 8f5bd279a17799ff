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
//!
//! Here: the layout of the tree and the operations on it. `name`: the names in a
//! namespace directory ([`Entry`]); `private`: who may write the tree (the ownership and
//! mode checks, 0700 directories, [`PinRoot::new`]).

mod name;
mod private;

pub use name::Entry;
pub use private::{mkdir_private, private_dir};

use std::{
    fs, io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    netns::NetnsId,
    text,
};

/// Default root of the pins.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lvs-ebpf";
/// The program's pin.
pub const PROG_PIN: &str = "prog";
/// The TCX link's pin.
pub const LINK_PIN: &str = "link";
/// A new TCX link, pinned before it replaces `link` (re-hook).
pub const LINK_NEXT_PIN: &str = "link:next";

/// A validated pin root.
#[derive(Clone, Debug)]
pub struct PinRoot {
    /// Absolute, without `.`/`..` components, symlinks resolved where it exists.
    path: PathBuf,
}

impl PinRoot {
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

//! Who may write the pin tree: the root made absolute, its parents owned by root (or us)
//! and not writable by others unless sticky, and every directory of ours created 0700 and
//! refused when another user owns it or others may write it.

use std::{
    fs, io,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    },
    path::{Component, Path, PathBuf},
};

use super::PinRoot;
use crate::{
    error::{Error, Result, ShownPath},
    sys, text,
};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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

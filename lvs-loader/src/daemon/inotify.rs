//! Watching the config file for changes: inotify on its directory (and on the directory
//! of the file a symlink points to), not on the file itself, so that an editor's
//! write-to-temp-and-rename-over, a `..data` symlink swap or a delete and re-create are
//! all seen. The caller debounces and compares digests.

use std::{
    ffi::{CString, OsString},
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

use tokio::io::unix::AsyncFd;

const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// The watch.
pub struct ConfigWatch {
    fd: AsyncFd<OwnedFd>,
    /// (watch descriptor, name in that directory that matters; `None`: any).
    watches: Vec<(i32, Option<OsString>)>,
    buf: Vec<u8>,
}

fn add_watch(fd: &OwnedFd, dir: &Path) -> io::Result<i32> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid fd and C string.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), MASK) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

impl ConfigWatch {
    /// Watches the directory of `path` (and of its symlink target).
    pub fn open(path: &Path) -> io::Result<Self> {
        // SAFETY: plain inotify_init1(2).
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = std::path::absolute(path)?;
        let mut targets: Vec<(PathBuf, Option<OsString>)> = Vec::new();
        let dir_of = |p: &Path| {
            p.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into())
        };
        targets.push((dir_of(&path), path.file_name().map(|n| n.to_os_string())));
        if let Ok(real) = std::fs::canonicalize(&path)
            && real != path
        {
            // A symlinked config: anything in the target's directory may be the swap.
            targets.push((dir_of(&real), None));
            // The link's own directory: any name (a `..data` swap renames a sibling).
            targets[0].1 = None;
        }
        let mut watches = Vec::new();
        for (dir, name) in targets {
            let wd = add_watch(&fd, &dir)?;
            watches.push((wd, name));
        }
        Ok(Self {
            // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as
            // the AsyncFd that owns it.
            fd: unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?,
            watches,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Waits until something happened to the file (or its directory).
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut hit = false;
            loop {
                // SAFETY: valid fd and buffer.
                let n = unsafe {
                    libc::read(
                        guard.get_inner().as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => {
                            guard.clear_ready();
                            break;
                        }
                        Some(libc::EINTR) => continue,
                        _ => return Err(e),
                    }
                }
                hit |= self.matches(&self.buf[..n as usize]);
            }
            if hit {
                return Ok(());
            }
        }
    }

    /// Whether any event in `data` concerns the config.
    fn matches(&self, data: &[u8]) -> bool {
        const HDR: usize = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0;
        let mut hit = false;
        while at + HDR <= data.len() {
            // SAFETY: the kernel wrote a whole inotify_event here; read unaligned.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(data[at..].as_ptr().cast()) };
            let name_len = ev.len as usize;
            let end = (at + HDR + name_len).min(data.len());
            let raw = &data[at + HDR..end];
            let name = raw.split(|&c| c == 0).next().unwrap_or(raw);
            if ev.mask
                & (libc::IN_Q_OVERFLOW
                    | libc::IN_DELETE_SELF
                    | libc::IN_MOVE_SELF
                    | libc::IN_IGNORED)
                != 0
            {
                hit = true;
            }
            for (wd, want) in &self.watches {
                if *wd == ev.wd && want.as_ref().is_none_or(|w| w.as_bytes() == name) {
                    hit = true;
                }
            }
            at = end;
        }
        hit
    }
}

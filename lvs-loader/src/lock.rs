//! One exclusive lock per attachment, so that attach, reload and detach of the same
//! interface never interleave (two keepalived notify scripts, systemd and an operator).
//!
//! The lock is `flock(2)` on a file outside bpffs, `/run/lvs-ebpf/locks/<key>.lock`
//! (`$LVS_LOCK_DIR` instead of `/run/lvs-ebpf`), where the key hashes the canonical pin
//! root, the namespace identity and the interface name. Lock files are never deleted, so
//! a waiter can never end up holding a lock on an inode nobody else uses. The holder
//! writes its pid, command line and start time into the file; a command that gives up
//! waiting names it. The kernel drops the lock when its holder dies, however it dies.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, Write as _},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

use crate::{
    error::{Error, Result},
    pins, sys, text,
};

/// Where lock files live unless `$LVS_LOCK_DIR` says otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/lvs-ebpf";
/// How long a command waits for another one on the same attachment by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

fn lock_dir() -> PathBuf {
    std::env::var_os("LVS_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR))
}

/// The lock (and side files) of one attachment.
#[derive(Clone, Debug)]
pub struct LockKey {
    hex: String,
    /// What is locked, for messages (escaped).
    pub what: String,
}

impl LockKey {
    /// `pin_root` must be canonical; `ns_dir` is the namespace directory's name.
    pub fn new(pin_root: &Path, ns_dir: &str, ifname: &[u8], what: String) -> Self {
        use std::os::unix::ffi::OsStrExt as _;
        let mut h = Sha256::new();
        h.update(pin_root.as_os_str().as_bytes());
        h.update([0]);
        h.update(ns_dir.as_bytes());
        h.update([0]);
        h.update(ifname);
        let hex: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { hex, what }
    }

    fn dir() -> PathBuf {
        lock_dir().join("locks")
    }

    pub fn lock_path(&self) -> PathBuf {
        Self::dir().join(format!("{}.lock", self.hex))
    }

    /// The post-flip journal of this attachment (see `journal`).
    pub fn journal_path(&self) -> PathBuf {
        Self::dir().join(format!("{}.postflip", self.hex))
    }

    /// Creates the lock directories (0700, ours).
    pub fn prepare() -> Result<()> {
        let base = lock_dir();
        pins::private_dir(&base, true)?;
        pins::private_dir(&Self::dir(), true)?;
        Ok(())
    }
}

/// A held lock; released on drop (or when the process dies).
pub struct Guard {
    file: File,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Holder gone: leave an empty file behind (never deleted, see above).
        let _ = self.file.set_len(0);
        // SAFETY: valid fd.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn try_flock(f: &File, op: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: valid fd.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn describe_holder(text_in_file: &str) -> String {
    let mut pid = None;
    let mut since = None;
    let mut command = None;
    for line in text_in_file.lines() {
        if let Some(v) = line.strip_prefix("pid=") {
            pid = Some(text::escape(v).into_owned());
        } else if let Some(v) = line.strip_prefix("since=") {
            since = v.parse::<u64>().ok();
        } else if let Some(v) = line.strip_prefix("command=") {
            command = Some(text::excerpt(v, 400));
        }
    }
    match pid {
        None => "held by another lvs-loader (it has not said who it is yet)".into(),
        Some(pid) => {
            let mut s = format!("held by pid {pid}");
            if let Some(c) = command {
                s.push_str(&format!(" (`{c}`)"));
            }
            if let Some(t) = since {
                let ago = sys::now_unix().saturating_sub(t);
                s.push_str(&format!(" since {} ({ago} s ago)", text::format_time(t)));
            }
            s
        }
    }
}

fn read_holder(f: &mut File) -> String {
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut s);
    describe_holder(&s)
}

fn command_line() -> String {
    std::env::args_os()
        .map(|a| text::escape_bytes(a.as_encoded_bytes()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Takes the lock of `key`, waiting at most `wait` for its holder.
pub fn acquire(key: &LockKey, wait: Duration) -> Result<Guard> {
    LockKey::prepare()?;
    let path = key.lock_path();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("opening the lock {}", text::escape_path(&path)), e))?;
    let start = Instant::now();
    let mut nap = Duration::from_millis(5);
    loop {
        match try_flock(&file, libc::LOCK_EX) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("locking {}", text::escape_path(&path)),
                    e,
                ));
            }
        }
        if start.elapsed() >= wait {
            return Err(Error::Busy {
                what: key.what.clone(),
                holder: read_holder(&mut file),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(nap.min(wait.saturating_sub(start.elapsed())));
        nap = (nap * 2).min(Duration::from_millis(100));
    }
    let me = format!(
        "pid={}\nsince={}\ncommand={}\n",
        std::process::id(),
        sys::now_unix(),
        command_line()
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", text::escape_path(&path)), e))?;
    Ok(Guard { file })
}

/// Who holds `key`'s lock right now, if anyone (never creates anything).
pub fn holder(key: &LockKey) -> Option<String> {
    let mut f = File::open(key.lock_path()).ok()?;
    match try_flock(&f, libc::LOCK_SH) {
        Ok(true) => {
            // SAFETY: valid fd.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            None
        }
        Ok(false) => Some(read_holder(&mut f)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_part() {
        let k = |r: &str, n: &str, i: &[u8]| LockKey::new(Path::new(r), n, i, String::new()).hex;
        let base = k("/sys/fs/bpf/a", "ns1-2", b"eth0");
        assert_eq!(base, k("/sys/fs/bpf/a", "ns1-2", b"eth0"));
        assert_ne!(base, k("/sys/fs/bpf/b", "ns1-2", b"eth0"));
        assert_ne!(base, k("/sys/fs/bpf/a", "ns1-3", b"eth0"));
        assert_ne!(base, k("/sys/fs/bpf/a", "ns1-2", b"eth1"));
        // No ambiguity from concatenation.
        assert_ne!(k("/a", "b", b"c"), k("/a\0b", "", b"c"));
    }

    #[test]
    fn holders_are_described_escaped() {
        let d = describe_holder("pid=42\nsince=0\ncommand=lvs-loader reload e\\x1b0\n");
        assert!(d.starts_with("held by pid 42 (`lvs-loader reload e"), "{d}");
        assert!(!d.contains('\x1b'));
        assert!(describe_holder("").contains("another lvs-loader"));
    }
}

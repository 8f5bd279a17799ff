//! A throwaway Debian root for the package tests: an overlay over a cached debootstrap
//! tree (`cargo xtask package --test` makes it and passes it as `LVS_PKG_ROOT`), mounted
//! in a private mount namespace that only one thread (and the commands it starts) sees.
//! The cached tree is never written to; everything a test does lands in the overlay's
//! upper directory, which is removed afterwards.
//!
//! Inside the root: a fresh proc, a fresh sysfs, a tmpfs on /run (no /run/systemd/system:
//! maintainer scripts see "not booted with systemd", as in any chroot) and a **fresh bpf
//! filesystem instance** on /sys/fs/bpf. Pins the installed lvs-loader makes under its
//! default pin root land in that private instance, never in the host's /sys/fs/bpf.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::cmd::{self, run_ok};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A mounted throwaway root. Only valid on the thread [`with_root`] runs the closure on.
pub struct DebRoot {
    /// The merged root directory.
    pub path: PathBuf,
    /// Mount points, in mount order.
    mounts: Vec<PathBuf>,
    tmp: PathBuf,
}

/// Runs `f` with a throwaway root over `base` on a new thread in a private mount namespace;
/// unmounts and deletes everything afterwards, then re-raises a panic of `f`.
pub fn with_root<R: Send>(base: &Path, f: impl FnOnce(&DebRoot) -> R + Send) -> R {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            private_mount_namespace();
            let root = DebRoot::mount(base);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&root)));
            drop(root);
            r
        });
        match h.join() {
            Ok(Ok(r)) => r,
            Ok(Err(p)) | Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Moves the calling thread into a new mount namespace whose mounts don't propagate back.
fn private_mount_namespace() {
    // SAFETY: plain syscalls; CLONE_NEWNS on one thread also unshares its fs_struct.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNS): {}",
        std::io::Error::last_os_error()
    );
    let root = c"/";
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "making / private: {}",
        std::io::Error::last_os_error()
    );
}

impl DebRoot {
    fn mount(base: &Path) -> Self {
        assert!(
            base.join("var/lib/dpkg/status").exists(),
            "{} is not a Debian root",
            base.display()
        );
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tmp = std::env::temp_dir().join(format!("lvs-debroot-{}-{n}", std::process::id()));
        let (upper, work, path) = (tmp.join("upper"), tmp.join("work"), tmp.join("root"));
        for d in [&upper, &work, &path] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let mut root = Self {
            path: path.clone(),
            mounts: Vec::new(),
            tmp,
        };
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.display(),
            upper.display(),
            work.display()
        );
        root.mount_fs("overlay", &opts, &path);
        root.mount_fs("proc", "", &path.join("proc"));
        root.mount_fs("sysfs", "", &path.join("sys"));
        root.mount_fs("bpf", "", &path.join("sys/fs/bpf"));
        root.mount_fs("tmpfs", "mode=0755", &path.join("run"));
        root
    }

    fn mount_fs(&mut self, fstype: &str, opts: &str, at: &Path) {
        let mut cmd = Command::new("mount");
        cmd.args(["-t", fstype]);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        run_ok(cmd.arg(fstype).arg(at));
        self.mounts.push(at.to_path_buf());
    }

    /// `ROOT/rel`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    /// `chroot ROOT PROGRAM ARGS...` (in the host's network namespace), C locale.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("chroot");
        c.arg(&self.path).arg(program).env("LC_ALL", "C");
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> String {
        run_ok(self.command(program).args(args))
    }

    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        cmd::output(self.command(program).args(args))
    }

    /// Every path under `ROOT/rel` (recursive), relative to the root.
    pub fn walk(&self, rel: &str) -> Vec<String> {
        fn walk(p: &Path, root: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    out.push(format!(
                        "/{}",
                        path.strip_prefix(root).unwrap_or(&path).display()
                    ));
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&path, root, out);
                    }
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.join(rel), &self.path, &mut v);
        v.sort();
        v
    }
}

impl Drop for DebRoot {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

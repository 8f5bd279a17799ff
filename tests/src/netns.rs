//! Network-namespace fixtures: namespaces that delete themselves, veth pairs, commands
//! run inside a namespace without remounting /sys (so /sys/fs/bpf stays visible), and
//! the path of the `lvs-loader` binary under test.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

use crate::cmd;
pub use crate::cmd::run_ok;

/// A network namespace under /run/netns, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Creates `lvst-<tag>-<pid>-<n>` (short: interface names inside stay ours to pick).
    pub fn new(tag: &str) -> Self {
        crate::reap::once();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("lvst-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Renames an interface as an operator would: live where the kernel allows it, else
    /// (5.10 answers EBUSY for an up device) down, rename, up.
    pub fn rename_link(&self, from: &str, to: &str) {
        let live = Command::new("ip")
            .args(["-n", &self.name, "link", "set", from, "name", to])
            .output()
            .unwrap_or_else(|e| panic!("cannot start ip: {e}"));
        if live.status.success() {
            return;
        }
        self.ip(&["link", "set", from, "down"]);
        self.ip(&["link", "set", from, "name", to]);
        self.ip(&["link", "set", to, "up"]);
    }

    /// A command run inside the namespace with `nsenter --net` (unlike `ip netns exec`
    /// this keeps the host's /sys, and with it /sys/fs/bpf).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> String {
        run_ok(self.command(program).args(args))
    }

    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        cmd::output(self.command(program).args(args))
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> NsGuard {
        let old = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let new = File::open(self.path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path().display()));
        // SAFETY: valid fds.
        let rc = unsafe { libc::setns(new.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
        NsGuard { old }
    }

    /// MAC address of `dev` in this namespace.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let out = self.ip(&["-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link output");
        let s = v[0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address for {dev} in {out}"));
        crate::frames::parse_mac(s)
    }

    pub fn set_mac(&self, dev: &str, mac: &str) {
        self.ip(&["link", "set", "dev", dev, "address", mac]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Restores the thread's original namespace on drop.
pub struct NsGuard {
    old: File,
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        // SAFETY: valid fd.
        unsafe { libc::setns(self.old.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

/// A veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up.
pub fn veth(ns_a: &NetNs, a: &str, ns_b: &NetNs, b: &str) {
    ns_a.ip(&[
        "link", "add", "name", a, "type", "veth", "peer", "name", b, "netns", &ns_b.name,
    ]);
    ns_a.ip(&["link", "set", a, "up"]);
    ns_b.ip(&["link", "set", b, "up"]);
}

/// The `lvs-loader` binary under test: `$LVS_LOADER`, else next to the test executable's
/// directory (`target/<profile>/lvs-loader`).
pub fn loader_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LVS_LOADER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/lvs-loader
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("lvs-loader");
    assert!(
        p.exists(),
        "{} not found: build it first (`cargo build -p lvs-loader`) or set LVS_LOADER",
        p.display()
    );
    p
}

/// `lvs-loader --pin-dir PINS --netns NS`, ready for more arguments.
pub fn loader_cmd(pins: &std::path::Path, ns: &str) -> Command {
    let mut c = Command::new(loader_bin());
    c.arg("--pin-dir").arg(pins).args(["--netns", ns]);
    c
}

/// Runs `lvs-loader --pin-dir PINS --netns NS ARGS...`.
pub fn loader_at(pins: &std::path::Path, ns: &str, args: &[&str]) -> Output {
    cmd::output(loader_cmd(pins, ns).args(args))
}

/// `status --json` as (exit code, entries).
pub fn status_at(pins: &std::path::Path, ns: &str) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = loader_at(pins, ns, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v.as_array().cloned().unwrap_or_default())
}

/// Inode of the namespace (what the pins are keyed by, with the cookie).
pub fn netns_inode(ns: &NetNs) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(ns.path()).expect("netns").ino()
}

/// Runs `lvs-loader --pin-dir PINS --netns NS ARGS...` and panics with its output unless it
/// succeeds; returns stdout.
pub fn loader_ok_at(pins: &std::path::Path, ns: &str, args: &[&str]) -> String {
    cmd::run_ok(loader_cmd(pins, ns).args(args))
}

/// A fresh pin root under /sys/fs/bpf for one test, removed (with anything left in it)
/// on drop.
pub struct PinRoot {
    pub path: PathBuf,
}

impl PinRoot {
    pub fn new(tag: &str) -> Self {
        lvs_loader::sys::ensure_bpffs(std::path::Path::new("/sys/fs/bpf/x")).expect("bpffs");
        crate::reap::once();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/lvs-test-{tag}-{}-{n}",
            std::process::id()
        ));
        Self { path }
    }

    /// Files and directories left under the root.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        fn walk(p: &std::path::Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    out.push(e.path());
                    walk(&e.path(), out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.path, &mut v);
        v
    }
}

impl Drop for PinRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

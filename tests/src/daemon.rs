//! Running `lvs-loader daemon` in a test: a sender and a director namespace joined by a
//! veth (like `lab::Lab`, but the director's interface can be deleted, re-created,
//! renamed and moved), the daemon as a child process whose stderr lines are collected,
//! HTTP requests to its `/metrics` and `/healthz` inside the director's namespace, and
//! timing of repairs.
//!
//! Here: the test config and frame, waiting, [`DaemonLab`] (namespaces, interfaces, the
//! loader, marks) and the hook listing. `http`: requests to the daemon's server;
//! `process`: the daemon as a child process; `timing`: repair times and their table.

mod http;
mod process;
mod timing;

pub use http::{Exchange, HTTP_TIMEOUT, parse_response, try_parse_response};
pub use process::DaemonProc;
pub use timing::{Timings, report};

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use lvs_loader::hook::{HookEntry, HookPosition};

use crate::{
    cmd, conf,
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, DIRECTOR_MAC_STR, mark_count, watch_marks},
    netns::{NetNs, PinRoot, loader_at, loader_cmd, loader_ok_at},
    sender::Sender,
};

/// The VIP every daemon test config has (mark 3).
pub const VIP: Ipv4Addr = conf::WEB_VIP;
pub const PEER: &str = conf::PEER_MAC;

/// A config: the web VIP (mark 3) plus `extra` VIPs 198.18.x.y:443 (mark 0x100+i).
pub fn config_text(extra: std::ops::Range<u32>) -> String {
    conf::web_with(PEER, extra)
}

/// A client frame to the web VIP.
pub fn web_frame() -> Vec<u8> {
    Frame::v4(
        [0x52, 0x54, 0, 9, 9, 9],
        Ipv4Addr::new(172, 17, 85, 100),
        VIP,
        IPPROTO_TCP,
        40000,
        80,
    )
    .with_dst_mac(DIRECTOR_MAC)
    .bytes()
}

/// Whether the tests run inside a `cargo xtask vm-test` guest (TCG: everything is several
/// times slower; timings are reported there, not held to the host's targets).
pub fn in_vm() -> bool {
    std::env::var_os("LVS_IN_VM").is_some()
}

/// Waits until `cond` holds (polling every 2 ms); the time it took. Panics after
/// `timeout` with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The lab.
pub struct DaemonLab {
    pub sender: NetNs,
    pub director: NetNs,
    pub pins: PinRoot,
    pub dir: PathBuf,
}

impl DaemonLab {
    pub fn new(tag: &str) -> Self {
        let sender = NetNs::new(&format!("{tag}s"));
        let director = NetNs::new(&format!("{tag}d"));
        sender.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        let dir = std::env::temp_dir().join(format!(
            "lvs-daemon-{}-{}",
            director.name,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("lab temp dir");
        let lab = Self {
            sender,
            director,
            pins: PinRoot::new(tag),
            dir,
        };
        lab.add_dev(DEV, "tx0");
        lab
    }

    /// Creates the director's interface `name` (a veth whose peer `peer` is in the
    /// sender namespace), with the director's MAC, up.
    pub fn add_dev(&self, name: &str, peer: &str) {
        self.director.ip(&[
            "link",
            "add",
            "name",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &self.sender.name,
        ]);
        self.director
            .ip(&["link", "set", "dev", name, "address", DIRECTOR_MAC_STR]);
        self.director.ip(&["link", "set", name, "up"]);
        self.sender.ip(&["link", "set", peer, "up"]);
    }

    /// A raw sender on `tx0` (open a new one after the veth was re-created).
    pub fn tx(&self) -> Sender {
        self.tx_on("tx0")
    }

    pub fn tx_on(&self, peer: &str) -> Sender {
        Sender::open(&self.sender, peer)
    }

    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// Replaces `path` by renaming a new file over it (what editors do).
    pub fn replace_config(&self, path: &Path, text: &str) {
        let tmp = path.with_extension("tmp-new");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, path).expect("rename config");
    }

    /// `lvs-loader --pin-dir PINS --netns DIRECTOR ARGS...`
    pub fn loader(&self, args: &[&str]) -> Output {
        loader_at(&self.pins.path, &self.director.name, args)
    }

    /// [`DaemonLab::loader`] with extra environment variables (failpoints).
    pub fn loader_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        cmd::output(
            loader_cmd(&self.pins.path, &self.director.name)
                .args(args)
                .envs(env.iter().copied()),
        )
    }

    pub fn loader_ok(&self, args: &[&str]) -> String {
        loader_ok_at(&self.pins.path, &self.director.name, args)
    }

    /// `status --check [IFACE...]`: exit code and output.
    pub fn check(&self, ifaces: &[&str]) -> (Option<i32>, String) {
        let mut args = vec!["status", "--check"];
        args.extend_from_slice(ifaces);
        let out = self.loader(&args);
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Starts `lvs-loader --pin-dir PINS --netns DIRECTOR daemon ARGS...`.
    pub fn daemon(&self, args: &[&str], env: &[(&str, &str)]) -> DaemonProc {
        let mut cmd = loader_cmd(&self.pins.path, &self.director.name);
        cmd.arg("daemon")
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied());
        DaemonProc::spawn(cmd)
    }

    /// Everything on `dev`'s ingress hook in the director namespace, in run order (empty
    /// when `dev` does not exist).
    pub fn hooks(&self, dev: &str) -> Vec<HookEntry> {
        hooks_in(&self.director, dev)
    }

    /// Whether an lvs-ebpf program runs first on `dev`'s hook.
    pub fn marker_first(&self, dev: &str) -> bool {
        self.hooks(dev).first().is_some_and(HookEntry::is_marker)
    }

    /// Counts marks on the director (iptables-legacy rules in mangle PREROUTING).
    pub fn watch_marks(&self) {
        watch_marks(&self.director, &[IpAddr::V4(VIP)], &[0, 3]);
    }

    /// (marked with 3, unmarked) packets to the VIP seen by netfilter so far.
    pub fn marks(&self) -> (u64, u64) {
        (
            mark_count(&self.director, IpAddr::V4(VIP), 3),
            mark_count(&self.director, IpAddr::V4(VIP), 0),
        )
    }

    /// Sends `n` client frames to the VIP from `peer` and checks that netfilter saw each
    /// marked.
    pub fn assert_marks(&self, peer: &str, n: u64) {
        let (m0, u0) = self.marks();
        let tx = self.tx_on(peer);
        for _ in 0..n {
            tx.send(&web_frame());
        }
        let (m1, u1) = self.marks();
        assert_eq!((m1 - m0, u1 - u0), (n, 0), "every packet marked");
    }

    /// Detaches every attachment this lab made (the daemon must be stopped first).
    pub fn detach_all(&self) {
        for dev in [DEV, "lvs0old", "lvs0new"] {
            let _ = self.loader(&["detach", dev]);
        }
        let _ = self.loader(&["detach", "--orphans"]);
    }
}

impl Drop for DaemonLab {
    fn drop(&mut self) {
        self.detach_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Everything on `dev`'s ingress hook in `ns`.
pub fn hooks_in(ns: &NetNs, dev: &str) -> Vec<HookEntry> {
    let _in = ns.enter();
    let dev = lvs_loader::IfName::new(dev).expect("interface name");
    let Some(ifindex) = lvs_loader::sys::ifindex(&dev) else {
        return Vec::new();
    };
    lvs_loader::hook::ingress(ifindex).expect("listing the ingress hook")
}

/// The position of the first lvs-ebpf program on a hook, in words.
pub fn describe(hooks: &[HookEntry]) -> String {
    hooks
        .iter()
        .map(|h| match &h.position {
            HookPosition::Tcx => format!("tcx {} {:?}", h.name, h.prog_id),
            HookPosition::Filter { priority, kind, .. } => {
                format!("pref {priority} {kind} {} {:?}", h.name, h.prog_id)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ip` in `ns` (panics on failure).
pub fn ip(ns: &NetNs, args: &[&str]) {
    ns.ip(args);
}

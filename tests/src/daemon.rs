//! Running `lvs-loader daemon` in a test: a sender and a director namespace joined by a
//! veth (like `lab::Lab`, but the director's interface can be deleted, re-created,
//! renamed and moved), the daemon as a child process whose stderr lines are collected,
//! HTTP requests to its `/metrics` and `/healthz` inside the director's namespace, and
//! timing of repairs.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
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

    /// GET (or another method) `path` from the daemon's HTTP server at `port` on the
    /// director's loopback: (status, body). Panics, naming the request and how long it
    /// waited, when no HTTP response came.
    pub fn http(&self, port: u16, method: &str, path: &str) -> (u16, String) {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let r = self.http_exchange(port, request.as_bytes());
        match try_parse_response(&r.raw) {
            Some(x) => x,
            None => panic!("{method} {path} on port {port}: {}", r.describe()),
        }
    }

    /// Sends `request` as is; the raw response (empty when the server closed without
    /// answering or did not answer within [`HTTP_TIMEOUT`]).
    pub fn http_raw(&self, port: u16, request: &[u8]) -> String {
        self.http_exchange(port, request).raw
    }

    /// Sends `request` as is; the raw response, how long it took and how reading it
    /// ended.
    pub fn http_exchange(&self, port: u16, request: &[u8]) -> Exchange {
        let ns = &self.director;
        std::thread::scope(|s| {
            s.spawn(|| {
                let _in = ns.enter();
                let start = Instant::now();
                let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to the daemon");
                c.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
                c.write_all(request).expect("send request");
                let mut out = Vec::new();
                let read_error = c.read_to_end(&mut out).err();
                Exchange {
                    raw: String::from_utf8_lossy(&out).into_owned(),
                    took: start.elapsed(),
                    read_error,
                }
            })
            .join()
            .expect("http thread")
        })
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

/// How long [`DaemonLab::http`] waits for the whole answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One request and what came back.
#[derive(Debug)]
pub struct Exchange {
    pub raw: String,
    /// From the connect to the end of the answer (or the error).
    pub took: Duration,
    /// Why reading stopped, when not at the end of the answer (a timeout, a reset).
    pub read_error: Option<std::io::Error>,
}

impl Exchange {
    /// What happened, for a failure message.
    pub fn describe(&self) -> String {
        let how = match &self.read_error {
            Some(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                format!("no complete answer within {HTTP_TIMEOUT:?}")
            }
            Some(e) => format!("reading failed ({e})"),
            None if self.raw.is_empty() => {
                "the server closed the connection without answering".into()
            }
            None => "the server closed the connection".into(),
        };
        format!(
            "not an HTTP response after {:.3} s: {how}; got {:?}",
            self.took.as_secs_f64(),
            self.raw
        )
    }
}

/// (status code, body) of a raw HTTP response, `None` when it is not one.
pub fn try_parse_response(raw: &str) -> Option<(u16, String)> {
    let code = raw
        .strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// (status code, body) of a raw HTTP response.
pub fn parse_response(raw: &str) -> (u16, String) {
    try_parse_response(raw).unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"))
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

/// The daemon, with its stderr collected line by line.
pub struct DaemonProc {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl DaemonProc {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lvs-loader daemon");
        let err = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LVS_TEST_DAEMON_LOG").is_some() {
                    eprintln!("daemon: {line}");
                }
                l.lock().unwrap().push(line);
            }
        });
        Self {
            child: Some(child),
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Number of lines logged so far (to wait for a line logged after a point).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Whether a line containing `needle` was logged after line `from`.
    pub fn logged_after(&self, from: usize, needle: &str) -> bool {
        let l = self.lines.lock().unwrap();
        l[from.min(l.len())..].iter().any(|l| l.contains(needle))
    }

    /// Waits for a line containing `needle` logged after line `from`; returns it.
    pub fn wait_line_after(&mut self, from: usize, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap()[from..]
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "the daemon exited ({status}) while waiting for {needle:?}:\n{}",
                    self.log()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "no daemon line with {needle:?} within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_line_after(0, needle, timeout)
    }

    /// Waits for "ready:".
    pub fn wait_ready(&mut self) {
        self.wait_line("ready:", Duration::from_secs(30));
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Sends SIGTERM and waits for the exit (at most 30 s).
    pub fn term(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return s;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ip` in `ns` (panics on failure).
pub fn ip(ns: &NetNs, args: &[&str]) {
    ns.ip(args);
}

/// Repair times of one case: min, median and the largest (the p99 of a few runs).
pub struct Timings {
    pub case: String,
    pub ms: Vec<f64>,
}

impl Timings {
    pub fn new(case: impl Into<String>) -> Self {
        Self {
            case: case.into(),
            ms: Vec::new(),
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1000.0);
    }

    /// The p99 (nearest rank) of the samples.
    pub fn p99(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((v.len() as f64) * 0.99).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    pub fn line(&self) -> String {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        format!(
            "{:<44} {:>3} {:>9.1} {:>9.1} {:>9.1}",
            self.case,
            v.len(),
            v[0],
            v[v.len() / 2],
            self.p99()
        )
    }
}

/// Prints a table of repair times and asserts every case's p99 is under `limit` (on the
/// host; in a TCG guest the table is only printed).
pub fn report(title: &str, all: &[Timings], limit: Duration) {
    let mut out = format!(
        "\n{title}: time from the change to the marker being back first on the hook\n{:<44} {:>3} {:>9} {:>9} {:>9}\n",
        "case", "n", "min ms", "median", "p99 ms"
    );
    for t in all {
        out.push_str(&t.line());
        out.push('\n');
    }
    eprintln!("{out}");
    if in_vm() {
        return;
    }
    for t in all {
        assert!(
            t.p99() < limit.as_secs_f64() * 1000.0,
            "{}: p99 {:.1} ms over {limit:?}{out}",
            t.case,
            t.p99()
        );
    }
}

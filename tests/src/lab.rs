//! A two-namespace lab: a sender namespace (clients and the peer director, whose MACs the
//! frames carry) and a director namespace where lvs-ebpf is attached, plus kernel-side
//! observation of the marks with iptables-legacy counters in `mangle PREROUTING` (which
//! runs after TC ingress).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Output,
};

use crate::{
    cmd,
    netns::{NetNs, PinRoot, loader_at, loader_cmd, loader_ok_at, veth},
    sender::Sender,
};

/// MAC of the director's interface: frames must be addressed to it, or the IP layer
/// drops them as PACKET_OTHERHOST before netfilter.
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xd1, 0x01];
pub const DIRECTOR_MAC_STR: &str = "02:00:00:00:d1:01";
/// The director's interface name (deliberately the same in every lab).
pub const DEV: &str = "lvs0";

pub struct Lab {
    pub sender_ns: NetNs,
    pub director: NetNs,
    pub pins: PinRoot,
    pub dir: PathBuf,
    tx: Sender,
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        let sender_ns = NetNs::new(&format!("{tag}s"));
        let director = NetNs::new(&format!("{tag}d"));
        veth(&sender_ns, "tx0", &director, DEV);
        director.set_mac(DEV, DIRECTOR_MAC_STR);
        // IPv6 on the director's link must be up for ipv6_rcv; no DAD noise needed.
        director.run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{DEV}.accept_dad=0")],
        );
        // No IPv6 chatter (router solicitations, MLD) from the sender side: the tests count
        // every packet the director sees.
        sender_ns.run("sysctl", &["-qw", "net.ipv6.conf.tx0.disable_ipv6=1"]);
        let tx = Sender::open(&sender_ns, "tx0");
        let dir =
            std::env::temp_dir().join(format!("lvs-lab-{}-{}", sender_ns.name, std::process::id()));
        std::fs::create_dir_all(&dir).expect("lab temp dir");
        Self {
            sender_ns,
            director,
            pins: PinRoot::new(tag),
            dir,
            tx,
        }
    }

    /// Writes a config file into the lab's temp dir.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// `lvs-loader --pin-dir PINS --netns DIRECTOR ARGS...`
    pub fn loader(&self, args: &[&str]) -> Output {
        self.loader_in(&self.director, args)
    }

    pub fn loader_in(&self, ns: &NetNs, args: &[&str]) -> Output {
        loader_at(&self.pins.path, &ns.name, args)
    }

    /// `lvs-loader --pin-dir PINS --netns DIRECTOR ARGS...` with extra environment
    /// variables (failpoints).
    pub fn loader_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        cmd::output(
            loader_cmd(&self.pins.path, &self.director.name)
                .args(args)
                .envs(env.iter().copied()),
        )
    }

    /// `status --json`: exit code and the parsed entries.
    pub fn status(&self) -> (Option<i32>, Vec<serde_json::Value>) {
        let out = self.loader(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            )
        });
        (out.status.code(), v.as_array().cloned().unwrap_or_default())
    }

    /// The `status` entry of DEV in the director's namespace, if any.
    pub fn my_status(&self) -> Option<serde_json::Value> {
        self.status()
            .1
            .into_iter()
            .find(|e| e["current_netns"] == true && e["interface"] == DEV)
    }

    /// Ids of the lvs-ebpf programs on DEV's ingress hook (TCX or filter).
    pub fn marker_prog_ids(&self) -> Vec<u32> {
        marker_prog_ids(&self.director, DEV)
    }

    /// Runs the loader and panics with its output unless it succeeds; returns stdout.
    pub fn loader_ok(&self, args: &[&str]) -> String {
        loader_ok_at(&self.pins.path, &self.director.name, args)
    }

    /// `stats DEV --json`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.loader_ok(&["stats", DEV, "--json"])).expect("stats JSON")
    }

    /// Sends frames from the sender namespace to the director.
    pub fn send(&self, frames: &[Vec<u8>]) {
        for f in frames {
            self.tx.send(f);
        }
    }

    pub fn sender(&self) -> &Sender {
        &self.tx
    }

    /// Installs counting rules (no target) in the director's mangle PREROUTING for every
    /// (destination, mark) pair; read them back with `mark_counts`.
    pub fn watch_marks(&self, dsts: &[IpAddr], marks: &[u32]) {
        watch_marks(&self.director, dsts, marks);
    }

    /// Packets counted per (destination, mark) since `watch_marks`.
    pub fn mark_count(&self, dst: IpAddr, mark: u32) -> u64 {
        mark_count(&self.director, dst, mark)
    }

    /// Is anything of ours still hooked on DEV's ingress (TCX program or tc filter)?
    pub fn ingress_hooks(&self) -> String {
        ingress_hooks(&self.director, DEV)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Detach first so nothing outlives the namespaces' deletion in bpffs.
        let _ = self.loader(&["detach", DEV]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ipt(dst: &IpAddr) -> &'static str {
    if dst.is_ipv4() {
        "iptables-legacy"
    } else {
        "ip6tables-legacy"
    }
}

pub fn watch_marks(ns: &NetNs, dsts: &[IpAddr], marks: &[u32]) {
    for d in dsts {
        for m in marks {
            ns.run(
                ipt(d),
                &[
                    "-w",
                    "-t",
                    "mangle",
                    "-A",
                    "PREROUTING",
                    "-d",
                    &d.to_string(),
                    "-m",
                    "mark",
                    "--mark",
                    &format!("{m:#x}"),
                ],
            );
        }
    }
}

/// Counter of the `-d DST -m mark --mark M` rule (packets).
pub fn mark_count(ns: &NetNs, dst: IpAddr, mark: u32) -> u64 {
    let save = if dst.is_ipv4() {
        "iptables-legacy-save"
    } else {
        "ip6tables-legacy-save"
    };
    let out = ns.run(save, &["-c", "-t", "mangle"]);
    let prefix = if dst.is_ipv4() { 32 } else { 128 };
    let want = format!("-A PREROUTING -d {dst}/{prefix} -m mark --mark {mark:#x}");
    for line in out.lines() {
        if let Some((counts, rule)) = line.strip_prefix('[').and_then(|l| l.split_once("] "))
            && rule.trim() == want
        {
            let pkts = counts.split(':').next().unwrap_or("0");
            return pkts
                .parse()
                .unwrap_or_else(|_| panic!("bad counter in {line}"));
        }
    }
    panic!("no counting rule {want:?} in:\n{out}");
}

/// TCX programs and tc filters on `dev`'s ingress, one line each (empty when `dev` is
/// gone).
pub fn ingress_hooks(ns: &NetNs, dev: &str) -> String {
    let _in = ns.enter();
    let dev = lvs_loader::IfName::new(dev).expect("interface name");
    let Some(ifindex) = lvs_loader::sys::ifindex(&dev) else {
        return String::new();
    };
    let mut s = String::new();
    for e in lvs_loader::hook::ingress(ifindex).expect("listing the ingress hook") {
        let id = e.prog_id.map_or("-".into(), |i| i.to_string());
        match e.position {
            lvs_loader::hook::HookPosition::Tcx => {
                s.push_str(&format!("tcx ingress prog {id} {}\n", e.name))
            }
            lvs_loader::hook::HookPosition::Filter {
                priority,
                handle,
                kind,
            } => s.push_str(&format!(
                "filter pref {priority} handle {handle:#x} {kind} prog {id} {}\n",
                e.name
            )),
        }
    }
    s
}

/// Ids of the lvs-ebpf programs on `dev`'s ingress hook in `ns` (empty if `dev` is
/// gone).
pub fn marker_prog_ids(ns: &NetNs, dev: &str) -> Vec<u32> {
    let _in = ns.enter();
    let dev = lvs_loader::IfName::new(dev).expect("interface name");
    let Some(ifindex) = lvs_loader::sys::ifindex(&dev) else {
        return Vec::new();
    };
    lvs_loader::hook::ingress(ifindex)
        .expect("listing the ingress hook")
        .into_iter()
        .filter(|e| e.is_marker())
        .filter_map(|e| e.prog_id)
        .collect()
}

/// Whether the kernel freed program `id` (within a second: freeing is deferred).
pub fn prog_freed(id: u32) -> bool {
    for _ in 0..100 {
        if !lvs_loader::bpf::prog_exists(id) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Whether TCX-only tests can run here.
pub fn tcx_or_skip(test: &str) -> bool {
    if lvs_loader::sys::supports_tcx() {
        return true;
    }
    eprintln!(
        "SKIP {test}: TCX needs Linux >= 6.6, this kernel is {}",
        lvs_loader::sys::kernel_release()
    );
    false
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

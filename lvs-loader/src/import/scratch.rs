//! The scratch network namespace of `import --verify`: an anonymous namespace created
//! with `unshare(CLONE_NEWNET)` by a thread of our own, so it has no name to collide
//! with, nothing outside can enter it, and the kernel deletes it as soon as that thread
//! and the commands it started are gone, whatever happens to lvs-loader (error, Ctrl-C,
//! SIGKILL). Frames go in over veth pairs whose both ends live in it: nothing leaves it.
//!
//! In it: the original mangle rules through `iptables-legacy-restore` /
//! `ip6tables-legacy-restore`, and an nftables chain at prerouting priority -149 (right
//! after mangle's -150) that records `source address . mark` of every packet that got
//! through mangle PREROUTING. Each frame has its own source address, so one listing of
//! the sets says which mark each frame carried (absent: dropped).

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::IpAddr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::{Command, Stdio},
};

use super::lex::Family;
use crate::error::{Error, Result};

/// MAC of every receiving interface: frames are sent to it (PACKET_HOST).
pub const DEV_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xd1, 0x01];
pub const VLAN_ID: u16 = 100;

fn err(what: impl Into<String>) -> Error {
    Error::Io {
        what: what.into(),
        source: std::io::Error::other("failed"),
    }
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        Error::io(
            format!("starting {cmd} (install iptables and nftables: `cargo xtask setup`)"),
            e,
        )
    })?;
    if let Some(s) = stdin
        && let Some(mut i) = child.stdin.take()
    {
        i.write_all(s.as_bytes())
            .map_err(|e| Error::io(format!("writing to {cmd}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("running {cmd}"), e))?;
    if !out.status.success() {
        return Err(err(format!(
            "{cmd} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Which iptables runs the original rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// x_tables (`iptables-legacy`), what the recipe ran on for years.
    Legacy,
    /// nf_tables with xt compat (`iptables-nft`, Debian's default `iptables`).
    Nft,
}

impl Backend {
    pub fn restore(self, fam: Family) -> &'static str {
        match (self, fam) {
            (Self::Legacy, Family::V4) => "iptables-legacy-restore",
            (Self::Legacy, Family::V6) => "ip6tables-legacy-restore",
            (Self::Nft, Family::V4) => "iptables-nft-restore",
            (Self::Nft, Family::V6) => "ip6tables-nft-restore",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Legacy => "iptables-legacy",
            Self::Nft => "iptables-nft",
        }
    }
}

/// One receiving interface: `name` in the rules' terms, and the sender socket feeding it.
pub struct Link {
    pub name: String,
    sock: OwnedFd,
    ifindex: i32,
    /// A VLAN device on it (VLAN-tagged frames arrive there), when the kernel has 802.1Q.
    pub vlan: bool,
}

/// Inside the scratch namespace (only usable on the thread that made it).
pub struct Scratch {
    pub links: Vec<Link>,
}

const NFT: &str = "table inet lvsverify {
  set seen4 { type ipv4_addr . mark; flags dynamic; size 1048576; }
  set seen6 { type ipv6_addr . mark; flags dynamic; size 1048576; }
  chain pre {
    type filter hook prerouting priority -149; policy accept;
    meta nfproto ipv4 add @seen4 { ip saddr . meta mark }
    meta nfproto ipv6 add @seen6 { ip6 saddr . meta mark }
  }
}
";

impl Scratch {
    /// Moves the calling thread into a new, anonymous network namespace and builds one
    /// veth pair per name in `ifaces` (the receiving end gets that name), plus the rules.
    pub fn new(
        ifaces: &[String],
        restore: &BTreeMap<Family, String>,
        vlan: bool,
        backend: Backend,
    ) -> Result<Self> {
        // SAFETY: unshare(2) affects only this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(Error::io(
                "unshare(CLONE_NEWNET) for the scratch namespace (needs root / CAP_SYS_ADMIN)",
                std::io::Error::last_os_error(),
            ));
        }
        run("ip", &["link", "set", "lo", "up"], None)?;
        let mut links = Vec::new();
        for (i, name) in ifaces.iter().enumerate() {
            let tx = format!("lvsvtx{i}");
            run(
                "ip",
                &[
                    "link", "add", "name", &tx, "type", "veth", "peer", "name", name,
                ],
                None,
            )?;
            let mac = crate::config::format_mac(&DEV_MAC);
            run("ip", &["link", "set", "dev", name, "address", &mac], None)?;
            for dev in [&tx, name] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/accept_dad"), "0");
            }
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{tx}/disable_ipv6"), "1");
            run("ip", &["link", "set", &tx, "up"], None)?;
            run("ip", &["link", "set", name, "up"], None)?;
            let has_vlan = vlan
                && run(
                    "ip",
                    &[
                        "link",
                        "add",
                        "link",
                        name,
                        "name",
                        &format!("lvsvvl{i}"),
                        "type",
                        "vlan",
                        "id",
                        &VLAN_ID.to_string(),
                    ],
                    None,
                )
                .is_ok()
                && run("ip", &["link", "set", &format!("lvsvvl{i}"), "up"], None).is_ok();
            let tx_name = crate::ifname::IfName::new(&tx).map_err(|e| err(e.to_string()))?;
            let ifindex =
                crate::sys::ifindex(&tx_name).ok_or_else(|| err(format!("{tx} vanished")))? as i32;
            // SAFETY: plain socket(2).
            let fd =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(Error::io(
                    "AF_PACKET socket",
                    std::io::Error::last_os_error(),
                ));
            }
            // SAFETY: fd is ours.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            links.push(Link {
                name: name.clone(),
                sock,
                ifindex,
                vlan: has_vlan,
            });
        }
        for (fam, text) in restore {
            let tool = backend.restore(*fam);
            run(tool, &["--noflush"], Some(text))
                .map_err(|e| err(format!("loading the original rules: {e}")))?;
        }
        run("nft", &["-f", "-"], Some(NFT))?;
        // Let the links settle (IPv6 comes up asynchronously).
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(Self { links })
    }

    /// Sends `frame` into link `i`.
    /// Sends `frame` into link `i` arriving with `skb->mark = mark` (`SO_MARK` on the
    /// packet socket: both veth ends are in this namespace, so the mark is not scrubbed
    /// on the way and netfilter sees it, as it sees a mark an earlier hook set).
    pub fn send_marked(&self, i: usize, frame: &[u8], mark: u32) -> Result<()> {
        if mark == 0 {
            return self.send(i, frame);
        }
        let l = &self.links[i];
        let set = |m: u32| -> Result<()> {
            // SAFETY: a u32 option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    l.sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_MARK,
                    (&m as *const u32).cast(),
                    std::mem::size_of::<u32>() as u32,
                )
            };
            if rc != 0 {
                return Err(Error::io(
                    format!("SO_MARK on the sender into {}", l.name),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(())
        };
        set(mark)?;
        let sent = self.send(i, frame);
        set(0)?;
        sent
    }

    pub fn send(&self, i: usize, frame: &[u8]) -> Result<()> {
        let l = &self.links[i];
        // SAFETY: all-zero sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = l.ifindex;
        sa.sll_halen = 6;
        loop {
            // SAFETY: valid buffer and address.
            let n = unsafe {
                libc::sendto(
                    l.sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n == frame.len() as isize {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            return Err(Error::io(format!("sending a frame into {}", l.name), e));
        }
    }

    /// Source address -> mark of every packet netfilter passed on.
    pub fn seen(&self) -> Result<BTreeMap<IpAddr, Vec<u32>>> {
        let mut out: BTreeMap<IpAddr, Vec<u32>> = BTreeMap::new();
        for set in ["seen4", "seen6"] {
            let j = run(
                "nft",
                &["-j", "list", "set", "inet", "lvsverify", set],
                None,
            )?;
            let v: serde_json::Value =
                serde_json::from_str(&j).map_err(|e| err(format!("nft -j output: {e}")))?;
            let items = v["nftables"].as_array().cloned().unwrap_or_default();
            for it in items {
                for e in it["set"]["elem"].as_array().cloned().unwrap_or_default() {
                    let c = &e["concat"];
                    if let (Some(a), Some(m)) = (c[0].as_str(), c[1].as_u64())
                        && let Ok(a) = a.parse::<IpAddr>()
                    {
                        out.entry(a).or_default().push(m as u32);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Keeps the calling thread on one CPU while it sends (frames queued from one CPU reach
/// netfilter in order, so a last sync frame seen means every frame was seen); restores
/// the old mask on drop.
pub struct Pinned(Option<libc::cpu_set_t>);

impl Pinned {
    pub fn here() -> Self {
        // SAFETY: plain sched_getaffinity/sched_getcpu/sched_setaffinity on this thread.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0 {
                return Self(None);
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return Self(None);
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
                return Self(None);
            }
            Self(Some(old))
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restoring this thread's mask.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
        }
    }
}

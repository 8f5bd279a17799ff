//! Small system facts and actions: privileges, bpffs, entering a network namespace,
//! interface names and indexes, the kernel release.

use std::{
    ffi::CString,
    fs,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    ifname::IfName,
    text,
};

/// Where `ip netns add NAME` puts its namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// The conventional bpffs mount point.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Effective capability set of this thread.
fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/thread-self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN.
pub fn check_privileges() -> Result<()> {
    let Some(caps) = effective_caps() else {
        return Ok(()); // no /proc: let the kernel say no
    };
    let has = |c: u32| caps & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF (or CAP_SYS_ADMIN)");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Privileges {
            missing: missing.join(" and "),
        })
    }
}

fn statfs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as i64)
}

/// Makes sure `pin_dir` can be created on a bpf filesystem: mounts bpffs on
/// /sys/fs/bpf when the pin dir is below it and nothing is mounted there yet.
pub fn ensure_bpffs(pin_dir: &Path) -> Result<()> {
    let mut probe: PathBuf = pin_dir.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => break,
        }
    }
    if statfs_magic(&probe) == Some(BPF_FS_MAGIC) {
        return Ok(());
    }
    let under_default = pin_dir.starts_with(BPFFS_MOUNT);
    if under_default && statfs_magic(Path::new(BPFFS_MOUNT)) != Some(BPF_FS_MAGIC) {
        let src = CString::new("bpf").unwrap_or_default();
        let target = CString::new(BPFFS_MOUNT).unwrap_or_default();
        // SAFETY: valid C strings.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        return Err(Error::Bpffs(format!(
            "no bpf filesystem at {BPFFS_MOUNT} and mounting one failed ({err}): run `mount -t bpf bpf {BPFFS_MOUNT}` (or add `bpffs {BPFFS_MOUNT} bpf defaults 0 0` to /etc/fstab)"
        )));
    }
    Err(Error::Bpffs(format!(
        "{} is not on a bpf filesystem: mount one with `mount -t bpf bpf DIR` or pick a --pin-dir under {BPFFS_MOUNT}",
        text::escape_path(pin_dir)
    )))
}

/// Moves this thread into the network namespace `name` (a name under /run/netns, or a
/// path such as /proc/PID/ns/net).
pub fn enter_netns(name: &std::ffi::OsStr) -> Result<()> {
    let shown = text::escape_bytes(name.as_encoded_bytes());
    let as_path = Path::new(name);
    let path = if name.as_encoded_bytes().contains(&b'/') {
        as_path.to_path_buf()
    } else {
        // A bare name must be one entry of /run/netns, not `.`, `..` or empty.
        if name.is_empty() || name == "." || name == ".." {
            return Err(Error::Netns {
                name: shown,
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        Path::new(NETNS_RUN_DIR).join(name)
    };
    let f = fs::File::open(&path).map_err(|source| Error::Netns {
        name: shown.clone(),
        source,
    })?;
    // SAFETY: valid fd.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Netns {
            name: shown,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// ifindex of `iface` in this thread's namespace.
pub fn ifindex(iface: &IfName) -> Option<u32> {
    let c = iface.to_cstring();
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Name of `ifindex` in this thread's namespace.
pub fn ifname(ifindex: u32) -> Option<IfName> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buffer of IF_NAMESIZE bytes.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname NUL-terminates.
    let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    IfName::new(s.to_bytes()).ok()
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// TCX (BPF links on the tc hooks) arrived in Linux 6.6.
pub fn supports_tcx() -> bool {
    crate::hook::supports_tcx()
}

/// RLIMIT_MEMLOCK as far as loading is concerned. Before Linux 5.11 BPF maps and programs
/// are charged to it (lvs-ebpf's maps take 0.6 MiB for a few VIPs to ~49 MiB for 131,072; systemd gives services 8 MiB, and the
/// kernel gives init 64 KiB before 5.16); from 5.11 on they are charged to the memory cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memlock {
    /// Linux >= 5.11: BPF memory is not charged to RLIMIT_MEMLOCK.
    NotCharged,
    /// Unlimited (already, or raised by [`raise_memlock`]).
    Unlimited,
    /// Could not be raised to unlimited: the limit now in force (bytes) and why not.
    Limited { bytes: u64, errno: i32 },
}

/// Raises RLIMIT_MEMLOCK to unlimited when the kernel charges BPF memory to it (< 5.11), as
/// aya-template does before loading; if that is not allowed (no CAP_SYS_RESOURCE), at least
/// the soft limit to the hard one. Nothing to do on newer kernels.
pub fn raise_memlock() -> Memlock {
    let charged_to_memcg = aya::util::KernelVersion::current()
        .is_ok_and(|v| v >= aya::util::KernelVersion::new(5, 11, 0));
    if charged_to_memcg {
        return Memlock::NotCharged;
    }
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) } == 0
        && now.rlim_cur == libc::RLIM_INFINITY
    {
        return Memlock::Unlimited;
    }
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
        return Memlock::Unlimited;
    }
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let hard = libc::rlimit {
        rlim_cur: now.rlim_max,
        rlim_max: now.rlim_max,
    };
    // SAFETY: valid pointer; the soft limit may always go up to the hard one.
    let bytes = if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &hard) } == 0 {
        now.rlim_max
    } else {
        now.rlim_cur
    };
    if bytes == libc::RLIM_INFINITY {
        return Memlock::Unlimited;
    }
    Memlock::Limited { bytes, errno }
}

impl Memlock {
    /// The error to give when loading failed with EPERM under this limit, if the limit is
    /// what stopped it.
    pub fn load_error(self) -> Option<Error> {
        let Memlock::Limited { bytes, errno } = self else {
            return None;
        };
        Some(Error::Kernel(format!(
            "loading the eBPF program failed: RLIMIT_MEMLOCK is {} and could not be raised ({}): Linux {} (< 5.11) charges BPF maps to it and lvs-ebpf's maps for this config do not fit (0.6 MiB for a few VIPs, ~49 MiB at 131,072); run lvs-loader with CAP_SYS_RESOURCE or a higher limit (systemd unit: LimitMEMLOCK=infinity; shell: ulimit -l unlimited)",
            human_bytes(bytes),
            std::io::Error::from_raw_os_error(errno),
            kernel_release()
        )))
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

pub fn has_kernel_btf() -> bool {
    Path::new("/sys/kernel/btf/vmlinux").exists()
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The effective uid.
pub fn euid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

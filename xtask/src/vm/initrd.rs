//! The guests' initramfs: what goes in (host tools, payload, guest scripts, kernel modules)
//! and how it is put together: one archive every kernel shares, plus one per kernel with
//! its modules, concatenated (the kernel unpacks concatenated newc archives as one).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{kernel, kernel::Kernel, payload::Payload, rootfs, rootfs::Rootfs};
use crate::util;

/// Modules loaded at boot (the host resolves their dependencies per kernel); a kernel that
/// lacks one is reported, not fatal: the tests needing it say so.
const MODULES: &[&str] = &[
    // links
    "veth",
    "bridge",
    "8021q",
    "dummy",
    "macvlan",
    "tun",
    // tc
    "sch_ingress",
    "cls_bpf",
    "act_bpf",
    // IPVS
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
    // iptables (legacy) and its matches: the reference marking and the scenario's counters
    "x_tables",
    "ip_tables",
    "ip6_tables",
    "iptable_mangle",
    "ip6table_mangle",
    "iptable_filter",
    "ip6table_filter",
    "iptable_raw",
    "xt_mac",
    "xt_mark",
    "xt_tcpudp",
    "xt_sctp",
    "xt_comment",
    "xt_multiport",
    "xt_conntrack",
    // nftables
    "nf_tables",
    "nft_compat",
    "nfnetlink",
    "nf_conntrack",
    "sctp",
];

/// Module families shipped whole, loaded on demand by the kernel through the guest's
/// /sbin/modprobe (request_module): every tc qdisc/classifier/action, every netfilter
/// match/target, IPVS schedulers...
const ON_DEMAND_MODULE_DIRS: &[&str] = &[
    "net/sched",
    "net/netfilter",
    "net/ipv4/netfilter",
    "net/ipv6/netfilter",
    "net/bridge",
    "net/8021q",
    "net/sctp",
    "drivers/net/ipvlan",
    "drivers/net/vxlan",
    "drivers/net/netdevsim",
];
const ON_DEMAND_MODULES: &[&str] = &[
    "ifb",
    "geneve",
    "macvtap",
    "veth",
    "dummy",
    "macvlan",
    "tun",
    // sock_diag for netlink: the namespace identity before SO_NETNS_COOKIE (5.14).
    "netlink_diag",
];

/// Host tools copied into the guest at their own paths (with their libraries): the real ones
/// win over busybox applets of the same name. `true` = required.
const TOOLS: &[(&str, bool)] = &[
    ("bash", true),
    ("ip", true),
    ("tc", true),
    ("bridge", false),
    ("ss", false),
    ("iptables-legacy", true),
    ("ip6tables-legacy", true),
    ("iptables-legacy-save", false),
    ("ip6tables-legacy-save", false),
    ("iptables-legacy-restore", false),
    ("ip6tables-legacy-restore", false),
    ("iptables-nft-restore", false),
    ("ip6tables-nft-restore", false),
    ("iptables-nft", false),
    ("ip6tables-nft", false),
    ("iptables", false),
    ("ip6tables", false),
    ("iptables-save", false),
    ("ip6tables-save", false),
    ("iptables-restore", false),
    ("nft", false),
    ("nsenter", true),
    ("unshare", false),
    ("setpriv", true),
    ("sysctl", false),
    ("ipvsadm", true),
    ("keepalived", true),
    ("modprobe", true),
    ("lsmod", false),
    ("insmod", false),
    ("rmmod", false),
    ("bpftool", false),
    ("tcpdump", false),
    ("ethtool", false),
    ("jq", true),
];

/// Guest scripts live in xtask/vm (and its scenarios/ directory); they land in
/// /usr/lib/lvs-vm with the same relative paths. init.sh becomes /init.
const GUEST_SCRIPT_DIRS: &[&str] = &["", "scenarios"];

/// The part of the initramfs every kernel shares: userland, payload, scripts.
pub fn build_common(
    root: &Path,
    payload: &Payload,
    stage: &Path,
    out: &Path,
    keep: bool,
) -> Result<()> {
    let mut fs_ = Rootfs::new(stage)?;
    fs_.skeleton()?;
    for &(tool, required) in TOOLS {
        match util::find_tool(tool) {
            Some(path) => fs_
                .install(&path)
                .with_context(|| format!("installing {tool}"))?,
            None if required => {
                bail!("{tool} is not installed on the host; run `cargo xtask setup --vm`")
            }
            None => eprintln!("[vm-test] note: {tool} not on the host, not in the guest"),
        }
    }
    let xtables = Path::new("/usr/lib/x86_64-linux-gnu/xtables");
    if xtables.is_dir() {
        fs_.install_tree(xtables)?;
    }
    // /bin/sh is bash: Debian's busybox ash runs its own applets before $PATH (so `ip` in a
    // `sh -c` would be busybox's); only /init uses busybox's shell, with absolute paths.
    std::os::unix::fs::symlink("bash", fs_.path("/usr/bin/sh")).context("linking /usr/bin/sh")?;
    let busybox = util::find_tool("busybox")
        .context("busybox is not installed; run `cargo xtask setup --vm`")?;
    fs_.busybox_applets(&busybox)?;
    system_files(&mut fs_)?;
    install_payload(&mut fs_, payload)?;
    install_scripts(&fs_, &root.join("xtask/vm"))?;
    install_units(&fs_, &root.join("packaging/systemd"))?;
    // Debugging aid: LVS_VM_DEBUG_SCRIPT=FILE and LVS_VM_APPEND=lvs.job=debug run FILE.
    if let Some(script) = std::env::var_os("LVS_VM_DEBUG_SCRIPT") {
        let body = fs::read(&script)
            .with_context(|| format!("reading LVS_VM_DEBUG_SCRIPT {}", script.display()))?;
        fs_.write("/usr/lib/lvs-vm/debug.sh", body, true)?;
    }
    rootfs::cpio(stage, out)?;
    if !keep {
        fs::remove_dir_all(stage).ok();
    }
    Ok(())
}

/// The few /etc files the tools look at.
fn system_files(fs_: &mut Rootfs) -> Result<()> {
    for f in [
        "/etc/protocols",
        "/etc/services",
        "/etc/ethertypes",
        "/etc/iproute2/rt_tables",
    ] {
        if Path::new(f).exists() {
            fs_.install(Path::new(f))?;
        }
    }
    fs_.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        false,
    )?;
    fs_.write("/etc/group", "root:x:0:\nnogroup:x:65534:\n", false)?;
    fs_.write(
        "/etc/hosts",
        "127.0.0.1 localhost lvs-vm\n::1 localhost\n",
        false,
    )?;
    fs_.write(
        "/etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\n",
        false,
    )
}

/// Payload at its host paths: tests may have those paths compiled in (CARGO_MANIFEST_DIR,
/// CARGO_BIN_EXE_*), and run from their package directory.
fn install_payload(fs_: &mut Rootfs, payload: &Payload) -> Result<()> {
    fs_.install_stripped(&payload.loader)?;
    fs_.install_stripped(&payload.udp_helper)?;
    let mut dirs: Vec<&PathBuf> = Vec::new();
    let mut list = String::new();
    for t in &payload.tests {
        fs_.install_stripped(&t.executable)?;
        if !dirs.contains(&&t.package_dir) {
            fs_.copy_dir(&t.package_dir, &t.package_dir, &["target", ".git"])?;
            dirs.push(&t.package_dir);
        }
        list.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            t.executable.display(),
            t.package_dir.display(),
            t.package,
            t.name
        ));
    }
    fs_.write("/etc/lvs-vm/tests", list, false)?;
    fs_.write(
        "/etc/lvs-vm/env",
        format!(
            "export LVS_LOADER={loader}\nexport LVS_VM_UDP={udp}\nexport LVS_IN_VM=1\nexport PATH=\"$(dirname {loader}):$PATH\"\n",
            loader = payload.loader.display(),
            udp = payload.udp_helper.display()
        ),
        false,
    )
}

/// `xtask/vm/init.sh` as /init, every other `*.sh` of `xtask/vm` (and its subdirectories
/// in [`GUEST_SCRIPT_DIRS`]) under /usr/lib/lvs-vm.
fn install_scripts(fs_: &Rootfs, vm_dir: &Path) -> Result<()> {
    let init = fs::read(vm_dir.join("init.sh")).context("reading xtask/vm/init.sh")?;
    fs_.write("/init", init, true)?;
    for sub in GUEST_SCRIPT_DIRS {
        let dir = vm_dir.join(sub);
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default();
            if path.extension().is_none_or(|e| e != "sh") || name == "init.sh" {
                continue;
            }
            let body = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            fs_.write(
                Path::new("/usr/lib/lvs-vm").join(sub).join(name),
                body,
                true,
            )?;
        }
    }
    Ok(())
}

/// The package's systemd units under /usr/lib/lvs-vm/units: the LVS scenarios run their
/// `ExecStart=`/`ExecStop=` lines as systemd would (the oneshot `lvs-ebpf@.service`, the
/// daemon `lvs-ebpf.service`), so what is proven is what is shipped.
fn install_units(fs_: &Rootfs, dir: &Path) -> Result<()> {
    for unit in ["lvs-ebpf@.service", "lvs-ebpf.service"] {
        let path = dir.join(unit);
        let body = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        fs_.write(Path::new("/usr/lib/lvs-vm/units").join(unit), body, false)?;
    }
    Ok(())
}

/// The kernel's modules, appended as a second cpio archive to the common one.
pub fn build_kernel_initrd(
    k: &Kernel,
    common: &Path,
    stage: &Path,
    out: &Path,
    keep: bool,
) -> Result<()> {
    let mut on_demand = kernel::modules_in_dirs(k, ON_DEMAND_MODULE_DIRS)?;
    on_demand.extend(ON_DEMAND_MODULES.iter().map(|m| (*m).to_owned()));
    let (files, absent) = kernel::module_closure(k, MODULES, &on_demand)?;
    let fs_ = Rootfs::new(stage)?;
    // The common archive has /lib -> usr/lib: only canonical paths here, or the kernel's
    // unpacker would replace that symlink with a directory.
    let moddir = Path::new("/usr/lib/modules").join(&k.kver);
    let src_root = k.modules_dir();
    let src_root_real =
        fs::canonicalize(&src_root).with_context(|| format!("resolving {}", src_root.display()))?;
    for file in &files {
        // modprobe prints paths through the extracted tree's lib symlink (if any).
        let canonical =
            fs::canonicalize(file).with_context(|| format!("resolving {}", file.display()))?;
        let rel = canonical
            .strip_prefix(&src_root_real)
            .with_context(|| format!("{} is not under {}", file.display(), src_root.display()))?;
        let dest = fs_.path(moddir.join(rel));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(file, &dest).with_context(|| format!("copying {}", file.display()))?;
    }
    for meta in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        let src = src_root.join(meta);
        if src.exists() {
            fs::copy(&src, fs_.path(moddir.join(meta)))?;
        }
    }
    // depmod -b wants <base>/lib/modules: a temporary symlink, gone before the archive.
    let lib = stage.join("lib");
    std::os::unix::fs::symlink("usr/lib", &lib)?;
    util::run_quiet(Command::new("depmod").arg("-b").arg(stage).arg(&k.kver))?;
    fs::remove_file(&lib)?;
    let wanted: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| !absent.iter().any(|a| a == m))
        .collect();
    fs_.write("/etc/lvs-vm/modules", wanted.join("\n") + "\n", false)?;
    fs_.write("/etc/lvs-vm/modules.absent", absent.join("\n"), false)?;
    if !absent.is_empty() {
        eprintln!(
            "[vm-test] note: kernel {} has no module(s) {}",
            k.kver,
            absent.join(", ")
        );
    }
    let mods_cpio = stage.with_extension("cpio");
    rootfs::cpio(stage, &mods_cpio)?;
    let mut dst = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    for part in [common, mods_cpio.as_path()] {
        let mut src =
            fs::File::open(part).with_context(|| format!("opening {}", part.display()))?;
        std::io::copy(&mut src, &mut dst)?;
    }
    fs::remove_file(&mods_cpio).ok();
    if !keep {
        fs::remove_dir_all(stage).ok();
    }
    Ok(())
}

//! `cargo xtask vm-test`: the integration tests (and, with `--lvs`, the two-box LVS
//! localnode scenario) inside qemu guests booting Debian kernels.
//!
//! 1. builds `lvs-loader` and the test executables of `lvs-tests` and `lvs-loader` on the host;
//! 2. fetches the kernels (`apt-get download` + `dpkg -x` + `depmod -b`, cached under
//!    `target/vm-cache`);
//! 3. builds an initramfs: busybox, the host's real tools (ip, tc, iptables, nft, ipvsadm,
//!    keepalived, kmod...) with their libraries, the test payload at its host paths, the
//!    guest scripts of `xtask/vm/`, and per kernel the modules the tests need;
//! 4. boots each kernel once per job (KVM when it works here, TCG otherwise) and reads the
//!    verdict from the guest's `LVS-VM-RESULT:` console line; qemu's own exit status says
//!    nothing.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

mod kernel;
mod qemu;
mod rootfs;

use kernel::{Kernel, KernelChoice};
use qemu::{Accel, Outcome};
use rootfs::Rootfs;

#[derive(clap::Args)]
pub struct VmTestArgs {
    /// Kernel(s) to boot.
    #[arg(long, value_enum, default_value = "all")]
    kernel: KernelChoice,
    /// Also run the two-box LVS localnode scenario (loop before, cure after) in each guest.
    #[arg(long)]
    lvs: bool,
    /// Skip the integration tests (with `--lvs`: the scenario only).
    #[arg(long)]
    no_tests: bool,
    /// Keep the staging trees and initramfs images under target/vm-test.
    #[arg(long)]
    keep: bool,
    /// Per-guest timeout in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Client connections per phase of the LVS scenario.
    #[arg(long, default_value_t = 100)]
    connections: u32,
    /// Cargo profile for lvs-loader and the test executables. Release by default: under TCG
    /// debug code is the bottleneck of the CPU-bound tests (property tests 80 s -> 10 s).
    #[arg(long, value_enum, default_value = "release")]
    profile: Profile,
    /// Guests run at the same time (default: 2 if the host has 2 CPUs or more). TCG guests
    /// mostly use one CPU each here: the tests run with --test-threads=1.
    #[arg(long)]
    jobs: Option<usize>,
    /// Echo the guests' consoles live.
    #[arg(long, short)]
    verbose: bool,
}

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
    "ifb", "geneve", "macvtap", "veth", "dummy", "macvlan", "tun",
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
];

const GUEST_SCRIPTS: &[&str] = &["run-tests.sh", "lvs-scenario.sh"];

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    Dev,
    Release,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Job {
    Tests,
    Lvs,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Tests => "tests",
            Job::Lvs => "lvs",
        }
    }
}

struct Row {
    kernel: String,
    job: Job,
    accel: Accel,
    outcome: Outcome,
    secs: f64,
    note: String,
}

/// What the host built for the guest.
struct Payload {
    loader: PathBuf,
    /// (executable, package directory, package, target name)
    tests: Vec<(PathBuf, PathBuf, String, String)>,
}

pub fn run(args: VmTestArgs) -> Result<()> {
    let t0 = Instant::now();
    crate::setup(true)?;
    let root = crate::workspace_root();
    let target = target_dir(&root)?;
    let cache = target.join("vm-cache");
    let work = target.join("vm-test");
    let logs = work.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let mut jobs = Vec::new();
    if !args.no_tests {
        jobs.push(Job::Tests);
    }
    if args.lvs {
        jobs.push(Job::Lvs);
    }
    if jobs.is_empty() {
        bail!("nothing to do: --no-tests without --lvs");
    }

    let t_build = Instant::now();
    let payload = build_payload(&root, args.profile == Profile::Release)?;
    let kernels = args
        .kernel
        .expand()
        .into_iter()
        .map(|k| kernel::fetch(k, &cache))
        .collect::<Result<Vec<_>>>()?;

    let common = work.join("common.cpio");
    build_common(
        &root,
        &payload,
        &work.join("stage-common"),
        &common,
        args.keep,
    )?;
    let mut initrds = Vec::new();
    for k in &kernels {
        let initrd = work.join(format!("initrd-{}.cpio", k.label));
        build_kernel_initrd(
            k,
            &common,
            &work.join(format!("stage-{}", k.label)),
            &initrd,
            args.keep,
        )?;
        initrds.push(initrd);
    }
    let build_secs = t_build.elapsed().as_secs_f64();
    eprintln!(
        "[vm-test] payload, kernels and initramfs ready in {build_secs:.1} s ({} test executable(s))",
        payload.tests.len()
    );

    let accel = qemu::choose_accel(
        &kernels[0].vmlinuz,
        &initrds[0],
        &cache.join("accel"),
        &logs,
    )?;
    let memory_mib = std::env::var("LVS_VM_MEM")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(2048);

    // Job order: kernels alternate, so parallel guests boot different kernels.
    let mut runs: Vec<(usize, Job)> = Vec::new();
    for &job in &jobs {
        runs.extend((0..kernels.len()).map(|k| (k, job)));
    }
    let parallel = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .min(2)
        })
        .clamp(1, runs.len().max(1));
    if parallel > 1 {
        eprintln!(
            "[vm-test] {} guest run(s), {parallel} at a time",
            runs.len()
        );
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Row>>>> =
        Mutex::new((0..runs.len()).map(|_| None).collect());
    let print_lock = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(ki, job)) = runs.get(i) else {
                        break;
                    };
                    let row = run_guest(
                        &kernels[ki],
                        &initrds[ki],
                        job,
                        accel,
                        memory_mib,
                        &args,
                        &logs,
                        &print_lock,
                    );
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(row);
                    }
                }
            });
        }
    });
    let rows = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a guest runner panicked"))?
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("guest run did not happen"))))
        .collect::<Result<Vec<Row>>>()?;

    if !args.keep {
        for initrd in initrds.iter().chain([&common]) {
            fs::remove_file(initrd).ok();
        }
    }
    print_summary(&rows, build_secs, t0.elapsed().as_secs_f64());
    let failed = rows.iter().filter(|r| r.outcome != Outcome::Pass).count();
    if failed > 0 {
        bail!(
            "{failed} guest run(s) failed; console logs in {}",
            logs.display()
        );
    }
    Ok(())
}

/// Boots one guest for `job` and reports on it (under `print_lock`, so parallel guests'
/// reports do not interleave).
#[allow(clippy::too_many_arguments)]
fn run_guest(
    k: &Kernel,
    initrd: &Path,
    job: Job,
    accel: Accel,
    memory_mib: u32,
    args: &VmTestArgs,
    logs: &Path,
    print_lock: &Mutex<()>,
) -> Result<Row> {
    let name = format!("{}/{}", k.label, job.name());
    eprintln!("[vm-test] booting {name} ({}, {accel})", k.package);
    let mut cmdline = format!("lvs.job={}", job.name());
    if job == Job::Lvs {
        cmdline.push_str(&format!(" lvs.n={}", args.connections));
    }
    // Debugging aid, e.g. LVS_VM_APPEND="lvs.phases=before".
    if let Ok(extra) = std::env::var("LVS_VM_APPEND") {
        cmdline.push(' ');
        cmdline.push_str(&extra);
    }
    let log = logs.join(format!("{}-{}.log", k.label, job.name()));
    let run = qemu::boot(&qemu::Guest {
        name: name.clone(),
        vmlinuz: &k.vmlinuz,
        initrd,
        cmdline,
        accel,
        memory_mib,
        timeout: Duration::from_secs(args.timeout),
        log: log.clone(),
        echo: args.verbose,
    })?;
    {
        let _guard = print_lock.lock();
        eprintln!(
            "[vm-test] {name} finished: {} in {:.0} s",
            run.outcome, run.secs
        );
        report_guest(&name, job, &run, &log);
    }
    Ok(Row {
        kernel: format!("{} ({})", k.label, k.kver),
        job,
        accel,
        note: job_note(job, &run.lines),
        outcome: run.outcome,
        secs: run.secs,
    })
}

fn target_dir(root: &Path) -> Result<PathBuf> {
    let meta = command_output(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root),
    )?;
    let v: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// Builds lvs-loader and the test executables; returns their paths from cargo's JSON.
fn build_payload(root: &Path, release: bool) -> Result<Payload> {
    eprintln!(
        "[vm-test] building lvs-loader and the test executables ({} profile)",
        if release { "release" } else { "dev" }
    );
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let build = [&["build", "-p", "lvs-loader", "--bins"][..], profile].concat();
    let test = [
        &["test", "--no-run", "-p", "lvs-tests", "-p", "lvs-loader"][..],
        profile,
    ]
    .concat();
    let loader = cargo_artifacts(root, &build)?
        .into_iter()
        .find(|a| a.kind.iter().any(|k| k == "bin") && a.name == "lvs-loader")
        .map(|a| a.executable)
        .context("cargo build -p lvs-loader produced no lvs-loader executable")?;
    let tests = cargo_artifacts(root, &test)?
        .into_iter()
        .filter(|a| a.test)
        .map(|a| {
            let dir = a.manifest_dir;
            (a.executable, dir, a.package, a.name)
        })
        .collect();
    Ok(Payload { loader, tests })
}

struct Artifact {
    executable: PathBuf,
    manifest_dir: PathBuf,
    package: String,
    name: String,
    kind: Vec<String>,
    test: bool,
}

fn cargo_artifacts(root: &Path, args: &[&str]) -> Result<Vec<Artifact>> {
    let out = Command::new("cargo")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("cargo {} failed: {}", args.join(" "), out.status);
    }
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let manifest = msg["manifest_path"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_default();
        let package = manifest
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let package = msg["package_id"]
            .as_str()
            .and_then(package_name_from_id)
            .unwrap_or(package);
        artifacts.push(Artifact {
            executable: PathBuf::from(exe),
            manifest_dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
            package,
            name: msg["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            kind: msg["target"]["kind"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            test: msg["profile"]["test"].as_bool().unwrap_or(false),
        });
    }
    Ok(artifacts)
}

/// `path+file:///x/tests#lvs-tests@0.1.0` -> `lvs-tests`; `path+file:///x/xtask#0.1.0` -> None.
fn package_name_from_id(id: &str) -> Option<String> {
    let frag = id.rsplit_once('#')?.1;
    let name = frag.split_once('@')?.0;
    Some(name.to_owned())
}

/// The part of the initramfs every kernel shares: userland, payload, scripts.
fn build_common(
    root: &Path,
    payload: &Payload,
    stage: &Path,
    out: &Path,
    keep: bool,
) -> Result<()> {
    let mut fs_ = Rootfs::new(stage)?;
    fs_.skeleton()?;
    for &(tool, required) in TOOLS {
        match find_tool(tool) {
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
    let busybox =
        find_tool("busybox").context("busybox is not installed; run `cargo xtask setup --vm`")?;
    fs_.busybox_applets(&busybox)?;

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
    )?;

    // Payload at its host paths: tests may have those paths compiled in
    // (CARGO_MANIFEST_DIR, CARGO_BIN_EXE_*), and run from their package directory.
    fs_.install_stripped(&payload.loader)?;
    let mut dirs: Vec<&PathBuf> = Vec::new();
    let mut list = String::new();
    for (exe, dir, pkg, name) in &payload.tests {
        fs_.install_stripped(exe)?;
        if !dirs.contains(&dir) {
            fs_.copy_dir(dir, dir, &["target", ".git"])?;
            dirs.push(dir);
        }
        list.push_str(&format!(
            "{}\t{}\t{pkg}\t{name}\n",
            exe.display(),
            dir.display()
        ));
    }
    fs_.write("/etc/lvs-vm/tests", list, false)?;
    fs_.write(
        "/etc/lvs-vm/env",
        format!(
            "export LVS_LOADER={loader}\nexport LVS_IN_VM=1\nexport PATH=\"$(dirname {loader}):$PATH\"\n",
            loader = payload.loader.display()
        ),
        false,
    )?;

    let vm_dir = root.join("xtask/vm");
    let init = fs::read(vm_dir.join("init.sh")).context("reading xtask/vm/init.sh")?;
    fs_.write("/init", init, true)?;
    for script in GUEST_SCRIPTS {
        let body =
            fs::read(vm_dir.join(script)).with_context(|| format!("reading xtask/vm/{script}"))?;
        fs_.write(Path::new("/usr/lib/lvs-vm").join(script), body, true)?;
    }
    rootfs::cpio(stage, out)?;
    if !keep {
        fs::remove_dir_all(stage).ok();
    }
    Ok(())
}

/// The kernel's modules (appended as a second cpio archive to the common one).
fn build_kernel_initrd(
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
    util_run_quiet(Command::new("depmod").arg("-b").arg(stage).arg(&k.kver))?;
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
    // Concatenated newc archives are one initramfs to the kernel.
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

fn find_tool(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists())
}

/// Prints what matters of a guest's console: the LVS report always; on failure the failing
/// steps' output (or the console's end when there is no step to blame).
fn report_guest(name: &str, job: Job, run: &qemu::Run, log: &Path) {
    let lines = &run.lines;
    if job == Job::Lvs {
        let mut inside = false;
        for l in lines {
            if l.contains("=== LVS-SCENARIO-REPORT BEGIN") {
                inside = true;
                continue;
            }
            if l.contains("=== LVS-SCENARIO-REPORT END") {
                inside = false;
            }
            if inside {
                println!("{l}");
            }
        }
    }
    for l in lines.iter().filter(|l| {
        l.starts_with("LVS-VM-TEST: ")
            || l.starts_with("LVS-VM: NOTE")
            || l.contains("TCX (bpf_link")
    }) {
        println!("[{name}] {l}");
    }
    if run.outcome == Outcome::Pass {
        return;
    }
    println!(
        "[{name}] {} -- guest output follows (full console: {})",
        run.outcome,
        log.display()
    );
    let mut shown = false;
    if job == Job::Tests {
        // Segments "----- LVS-VM: running X" ... "LVS-VM-TEST: X FAIL ..."
        let mut start = None;
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("----- LVS-VM: running ") {
                start = Some(i);
            }
            if l.starts_with("LVS-VM-TEST: ")
                && l.contains(" FAIL")
                && let Some(s) = start.take()
            {
                for seg in &lines[s..=i] {
                    println!("  | {seg}");
                }
                shown = true;
            }
        }
    }
    if !shown || matches!(run.outcome, Outcome::NoResult | Outcome::Timeout) {
        let from = lines.len().saturating_sub(150);
        for l in &lines[from..] {
            println!("  | {l}");
        }
    }
}

/// One short remark per row: the tests' pass count, or the LVS verdicts.
fn job_note(job: Job, lines: &[String]) -> String {
    match job {
        Job::Tests => {
            let steps: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("LVS-VM-TEST: "))
                .collect();
            let passed = steps.iter().filter(|l| l.contains(" PASS")).count();
            let tcx = if lines
                .iter()
                .any(|l| l.contains("TCX (bpf_link TC attach): NOT available"))
            {
                ", no TCX: netlink path"
            } else {
                ""
            };
            let running = lines
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("----- LVS-VM: running "))
                .filter(|step| {
                    !steps
                        .iter()
                        .any(|l| l.starts_with(&format!("LVS-VM-TEST: {step} ")))
                })
                .map(|step| format!(", was running {step}"))
                .unwrap_or_default();
            format!("{passed}/{} steps passed{tcx}{running}", steps.len())
        }
        Job::Lvs => lines
            .iter()
            .filter_map(|l| l.strip_prefix("LVS-SCENARIO-VERDICT: "))
            // "before: loop reproduced: 25/100 failed ..." -> "before: loop reproduced"
            .map(|v| {
                let (phase, rest) = v.split_once(": ").unwrap_or((v, ""));
                let short = rest.split([':', '(']).next().unwrap_or(rest).trim();
                format!("{phase}: {short}")
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn print_summary(rows: &[Row], build_secs: f64, total_secs: f64) {
    println!();
    println!("vm-test summary (build/fetch {build_secs:.0} s, total {total_secs:.0} s)");
    let kw = rows
        .iter()
        .map(|r| r.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<kw$}  {:<5}  {:<5}  {:<21}  {:>7}  note",
        "kernel", "job", "accel", "result", "seconds"
    );
    for r in rows {
        println!(
            "{:<kw$}  {:<5}  {:<5}  {:<21}  {:>7.1}  {}",
            r.kernel,
            r.job.name(),
            r.accel.to_string(),
            r.outcome.to_string(),
            r.secs,
            r.note
        );
    }
}

/// Runs a command, output to stderr, failing with the command line if it fails.
pub(crate) fn util_run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs a command and returns its stdout.
pub(crate) fn command_output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

//! The package under real systemd on Debian's 6.1 kernel: a qemu guest whose root is the
//! cached Debian bookworm root with the .deb installed by `dpkg -i`, booted with systemd
//! as PID 1 from an initramfs. `xtask/package/guest-test.sh` runs there as a service and
//! drives the installed `lvs-ebpf@.service` with systemctl (start, marks, status, reload,
//! stop, BindsTo), under the unit's own sandbox; its `LVS-PKG-RESULT:` console line is the
//! verdict (qemu's exit status says nothing).
//!
//! The kernel is vm-test's 6.1 (Debian's `linux-image-amd64` of the host's bookworm sources,
//! fetched and cached under `target/vm-cache` by `vm::kernel`); only the modules the test
//! loads go into the guest. qemu runs holding `/tmp/lvs-vm.lock` (one guest at a time
//! machine-wide), with TCG.
use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    util,
    vm::{
        kernel::{self, Kernel, KernelChoice},
        qemu,
    },
};

/// Modules the guest test needs beyond what Debian builds in (6.1 has no TCX: clsact +
/// cls_bpf).
const MODULES: &[&str] = &[
    "kernel/net/sched/sch_ingress.ko",
    "kernel/net/sched/cls_bpf.ko",
    "kernel/drivers/net/veth.ko",
];
const GUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Builds the guest (root + kernel), boots it, and fails unless it reports PASS.
/// `target` is cargo's target directory: the kernel comes from vm-test's cache
/// (`target/vm-cache`, fetched by [`kernel::fetch`] like vm-test's own 6.1 guest), the
/// guest is staged under `target/pkg-cache`.
pub fn run(root: &Path, target: &Path, debian: &Path, deb: &Path) -> Result<()> {
    let k = kernel::fetch(KernelChoice::V6_1, &target.join("vm-cache"))?;
    let work = target
        .join("pkg-cache")
        .join(format!("guest-{}", std::process::id()));
    let r = build_and_boot(root, debian, deb, &k, &work);
    if std::env::var_os("LVS_PKG_KEEP").is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    r
}

fn build_and_boot(root: &Path, debian: &Path, deb: &Path, k: &Kernel, work: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work)?;
    let stage = work.join("root");
    // A copy (not an overlay): the initramfs is made from it. ~200 MB, a few seconds.
    util::run(Command::new("cp").arg("-a").arg(debian).arg(&stage))?;

    // The package, installed as an operator would (maintainer scripts run; no systemd is
    // running in the chroot, so they only record state).
    fs::copy(deb, stage.join("tmp/lvs-ebpf.deb")).context("copying the .deb")?;
    util::run(
        Command::new("chroot")
            .arg(&stage)
            .args(["dpkg", "-i", "/tmp/lvs-ebpf.deb"])
            .env("LC_ALL", "C"),
    )?;
    fs::remove_file(stage.join("tmp/lvs-ebpf.deb"))?;

    // Modules, depmod'ed for the guest's modprobe.
    let mods = format!("lib/modules/{}", k.kver);
    for m in MODULES {
        let src = k.root.join(&mods).join(m);
        let dst = stage.join(&mods).join(m);
        fs::create_dir_all(dst.parent().context("module path")?)?;
        fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        let _ = fs::copy(k.root.join(&mods).join(f), stage.join(&mods).join(f));
    }
    util::run(Command::new("depmod").arg("-b").arg(&stage).arg(&k.kver))?;

    // The test service, started by multi-user.target; no login prompts.
    let script = root.join("xtask/package/guest-test.sh");
    fs::copy(&script, stage.join("usr/local/sbin/lvs-pkg-guest-test"))
        .with_context(|| format!("copying {}", script.display()))?;
    fs::write(
        stage.join("etc/systemd/system/lvs-pkg-guest-test.service"),
        "[Unit]\nDescription=lvs-ebpf package test\nAfter=multi-user.target\n\n\
         [Service]\nType=oneshot\nExecStart=/usr/local/sbin/lvs-pkg-guest-test\n\
         ExecStopPost=/bin/sh -c 'echo o > /proc/sysrq-trigger'\n\
         StandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS0\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )?;
    let wants = stage.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let _ = fs::remove_file(wants.join("lvs-pkg-guest-test.service"));
    std::os::unix::fs::symlink(
        "/etc/systemd/system/lvs-pkg-guest-test.service",
        wants.join("lvs-pkg-guest-test.service"),
    )?;
    for unit in ["serial-getty@ttyS0.service", "getty@tty1.service"] {
        let _ = fs::remove_file(stage.join("etc/systemd/system").join(unit));
        std::os::unix::fs::symlink("/dev/null", stage.join("etc/systemd/system").join(unit))?;
    }
    fs::write(stage.join("etc/hostname"), "lvs-pkg-guest\n")?;

    // Uncompressed newc initramfs of the whole root.
    let initrd = work.join("initrd.cpio");
    let cpio = Command::new("sh")
        .current_dir(&stage)
        .arg("-c")
        .arg(format!(
            "find . -xdev -print0 | cpio --null -o -H newc --quiet > '{}'",
            initrd.display()
        ))
        .status()
        .context("cpio")?;
    if !cpio.success() {
        bail!("building {} failed", initrd.display());
    }
    let size = fs::metadata(&initrd)?.len();
    println!(
        "[package] guest: Debian {} + lvs-ebpf, initramfs {:.0} MiB; booting (TCG)",
        k.kver,
        size as f64 / (1024.0 * 1024.0)
    );
    boot(&k.vmlinuz, &initrd, work)
}

/// Boots the guest holding `/tmp/lvs-vm.lock`; the verdict is the console's
/// `LVS-PKG-RESULT:` line. The console is kept in `WORK/console.log`. A kernel that dies
/// while booting under TCG, before the test service printed anything, ran no test: it
/// is booted once more (the first console kept in `WORK/console.boot1.log`).
fn boot(vmlinuz: &Path, initrd: &Path, work: &Path) -> Result<()> {
    let _lock = vm_lock()?;
    let log = work.join("console.log");
    let mut b = boot_once(vmlinuz, initrd)?;
    if b.verdict.is_none()
        && b.exited
        && !b.console.contains("LVS-PKG")
        && let Some(why) = qemu::crash_line(b.console.lines())
    {
        let first = work.join("console.boot1.log");
        let _ = fs::write(&first, &b.console);
        println!(
            "[package] the kernel died before the test service started ({}); booting it once \
             more (first console: {})",
            why.trim(),
            first.display()
        );
        b = boot_once(vmlinuz, initrd)?;
    }
    let _ = fs::write(&log, &b.console);
    match b.verdict {
        Some(v) if v == "PASS" => {
            println!("[package] guest test: PASS ({:.0} s)", b.secs);
            Ok(())
        }
        Some(v) => bail!("guest test failed: {v}\n{}", tail(&b.console, 60)),
        None => bail!(
            "guest test gave no verdict within {:.0} s\n{}",
            b.secs,
            tail(&b.console, 60)
        ),
    }
}

/// One boot: the verdict line, the console, whether qemu exited by itself (a crash or
/// power-off) rather than at the timeout.
struct Boot {
    verdict: Option<String>,
    console: String,
    exited: bool,
    secs: f64,
}

fn boot_once(vmlinuz: &Path, initrd: &Path) -> Result<Boot> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "2048M",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 rdinit=/lib/systemd/systemd panic=-1 mitigations=off \
             systemd.show_status=error systemd.unit=multi-user.target",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup --vm installs it)")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut console = String::new();
    let mut verdict: Option<String> = None;
    let mut exited = false;
    while start.elapsed() < GUEST_TIMEOUT {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_owned();
                if line.contains("LVS-PKG") {
                    println!("[guest] {line}");
                }
                if let Some(v) = line.split("LVS-PKG-RESULT: ").nth(1) {
                    verdict = Some(v.to_owned());
                }
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait()?.is_some() {
                    exited = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited = true;
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Boot {
        verdict,
        console,
        exited,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// `/tmp/lvs-vm.lock`, exclusively (held until the file is closed): one guest at a time on
/// this machine.
fn vm_lock() -> Result<fs::File> {
    use std::os::fd::AsRawFd as _;
    const LOCK_EX: i32 = 2;
    const LOCK_NB: i32 = 4;
    unsafe extern "C" {
        fn flock(fd: i32, operation: i32) -> i32;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/lvs-vm.lock")
        .context("opening /tmp/lvs-vm.lock")?;
    // SAFETY: flock(2) on an fd we own.
    if unsafe { flock(f.as_raw_fd(), LOCK_EX | LOCK_NB) } != 0 {
        println!("[package] waiting for /tmp/lvs-vm.lock (another guest is running)");
        // SAFETY: as above.
        if unsafe { flock(f.as_raw_fd(), LOCK_EX) } != 0 {
            bail!(
                "flock /tmp/lvs-vm.lock: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(f)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

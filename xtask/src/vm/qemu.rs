//! Booting a guest under qemu: accelerator choice (KVM when it really boots a kernel here,
//! else TCG), the serial console captured to a log, the guest's result line, a timeout.
use std::{
    fmt, fs,
    io::{BufRead as _, BufReader, Read, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// The line the guest's /init prints last.
const RESULT_TAG: &str = "LVS-VM-RESULT: ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl Accel {
    fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

pub struct Guest<'a> {
    pub name: String,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    /// Extra kernel command line (e.g. `lvs.job=tests`).
    pub cmdline: String,
    pub accel: Accel,
    pub memory_mib: u32,
    pub timeout: Duration,
    pub log: PathBuf,
    /// Echo the console live, each line prefixed with the guest's name.
    pub echo: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(i32),
    /// The guest went away without a result line (panic, crash, qemu error).
    NoResult,
    Timeout,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("PASS"),
            Outcome::Fail(rc) => write!(f, "FAIL rc={rc}"),
            Outcome::NoResult => f.write_str("FAIL (no result line)"),
            Outcome::Timeout => f.write_str("FAIL (timeout)"),
        }
    }
}

/// The first line every guest's init prints (`xtask/vm/init.sh`).
pub const INIT_MARK: &str = "LVS-VM: kernel ";

/// Why a guest went away before its init started, if it did: no result, and no line of
/// its init on the console. The reason is the kernel's first Oops or panic line.
pub fn died_before_init(run: &Run) -> Option<String> {
    if !matches!(run.outcome, Outcome::NoResult) || run.lines.iter().any(|l| l.contains(INIT_MARK))
    {
        return None;
    }
    let why = crash_line(run.lines.iter().map(String::as_str))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| "no console line from its init".to_owned());
    Some(why)
}

/// The kernel's first Oops, panic or BUG line on a console, if any.
pub fn crash_line<'a>(mut lines: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    lines.find(|l| l.contains("Oops") || l.contains("Kernel panic") || l.contains("BUG:"))
}

pub struct Run {
    pub outcome: Outcome,
    pub secs: f64,
    /// The whole console, `\r` stripped.
    pub lines: Vec<String>,
}

/// Boots `guest` and waits for it to power off, the result line, or the timeout.
pub fn boot(guest: &Guest<'_>) -> Result<Run> {
    let cmdline = format!(
        "console=ttyS0 panic=-1 oops=panic quiet loglevel=3 mitigations=off rdinit=/init {}",
        guest.cmdline
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(guest.accel.args())
        .args(["-smp", "2", "-m", &format!("{}M", guest.memory_mib)])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(guest.vmlinuz)
        .arg("-initrd")
        .arg(guest.initrd)
        .args(["-append", &cmdline])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context(
        "starting qemu-system-x86_64 (is qemu-system-x86 installed? `cargo xtask setup --vm`)",
    )?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf).replace('\r', "");
                let line = line.trim_end_matches('\n').to_owned();
                if tx.send(line).is_err() {
                    break;
                }
                buf.clear();
            }
        })
    })
    .collect();
    drop(tx);

    let mut log = fs::File::create(&guest.log)
        .with_context(|| format!("creating {}", guest.log.display()))?;
    let mut lines = Vec::new();
    let mut result: Option<Outcome> = None;
    let mut result_at: Option<Instant> = None;
    let deadline = start + guest.timeout;
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                writeln!(log, "{line}").ok();
                if guest.echo {
                    println!("[{}] {line}", guest.name);
                }
                if result.is_none()
                    && let Some(pos) = line.find(RESULT_TAG)
                {
                    result = Some(parse_result(&line[pos + RESULT_TAG.len()..]));
                    result_at = Some(Instant::now());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: qemu is exiting.
                child.wait().ok();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if child.try_wait().ok().flatten().is_some() {
            // Drain what is left in the pipes.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                writeln!(log, "{line}").ok();
                lines.push(line);
            }
            break;
        }
        let now = Instant::now();
        // A guest that printed its result but does not power off within 15 s is killed.
        let stuck_after_result =
            result_at.is_some_and(|t| now.duration_since(t) > Duration::from_secs(15));
        if now >= deadline || stuck_after_result {
            timed_out = result.is_none();
            child.kill().ok();
            child.wait().ok();
            break;
        }
    }
    for reader in readers {
        reader.join().ok();
    }
    let secs = start.elapsed().as_secs_f64();
    let outcome = match result {
        Some(r) => r,
        None if timed_out => Outcome::Timeout,
        None => Outcome::NoResult,
    };
    if timed_out {
        writeln!(
            log,
            "[vm-test] killed after {} s: timeout",
            guest.timeout.as_secs()
        )
        .ok();
    }
    Ok(Run {
        outcome,
        secs,
        lines,
    })
}

fn parse_result(rest: &str) -> Outcome {
    let rest = rest.trim();
    if rest.starts_with("PASS") {
        return Outcome::Pass;
    }
    let rc = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rc="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    Outcome::Fail(rc)
}

/// KVM if `/dev/kvm` exists and a probe guest really boots with it (on some hosts qemu aborts
/// on an MSR or the guest crawls); TCG otherwise. `LVS_VM_ACCEL=kvm|tcg` forces a choice.
/// The probe's verdict is cached in `cache_file` (keyed by host kernel and qemu version).
pub fn choose_accel(
    vmlinuz: &Path,
    initrd: &Path,
    cache_file: &Path,
    log_dir: &Path,
) -> Result<Accel> {
    match std::env::var("LVS_VM_ACCEL").as_deref() {
        Ok("kvm") => return Ok(Accel::Kvm),
        Ok("tcg") => return Ok(Accel::Tcg),
        _ => {}
    }
    let kvm_usable = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !kvm_usable {
        return Ok(Accel::Tcg);
    }
    let key = format!(
        "{} / {}",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        crate::util::output(Command::new("qemu-system-x86_64").arg("--version"))
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
    );
    if let Ok(cached) = fs::read_to_string(cache_file)
        && let Some((k, v)) = cached.trim().rsplit_once(" => ")
        && k == key
    {
        return Ok(if v == "kvm" { Accel::Kvm } else { Accel::Tcg });
    }
    eprintln!("[vm-test] /dev/kvm is there: probing whether KVM boots a Debian kernel here");
    let run = boot(&Guest {
        name: "kvm-probe".into(),
        vmlinuz,
        initrd,
        cmdline: "lvs.job=probe".into(),
        accel: Accel::Kvm,
        memory_mib: 512,
        timeout: Duration::from_secs(20),
        log: log_dir.join("kvm-probe.log"),
        echo: false,
    })?;
    let ok =
        run.outcome == Outcome::Pass && run.lines.iter().any(|l| l.contains("LVS-VM-PROBE: up"));
    let accel = if ok { Accel::Kvm } else { Accel::Tcg };
    if !ok {
        let why = run
            .lines
            .iter()
            .rev()
            .find(|l| l.contains("error") || l.contains("Assertion") || l.contains("KVM"))
            .cloned()
            .unwrap_or_else(|| format!("{}", run.outcome));
        eprintln!(
            "[vm-test] KVM cannot boot the guest here ({why}); using TCG (slower). Verdict cached in {}",
            cache_file.display()
        );
    }
    fs::write(cache_file, format!("{key} => {accel}\n")).ok();
    Ok(accel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: Outcome, lines: &[&str]) -> Run {
        Run {
            outcome,
            secs: 5.0,
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    #[test]
    fn a_kernel_that_died_while_booting_is_told_apart() {
        // The console of the CI guest of 2026-11-27 11:50 (6.12, lvs job).
        let oops = [
            "[    2.446612] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI",
            "[    2.447081] RIP: 0010:sched_clock_cpu+0x9/0x190",
            "[    2.461000] Kernel panic - not syncing: Fatal exception",
        ];
        let why = died_before_init(&run(Outcome::NoResult, &oops)).expect("died before init");
        assert!(why.contains("Oops: int3"), "{why}");
        assert!(died_before_init(&run(Outcome::NoResult, &[])).is_some());
        // Once the guest's init has printed, a crash is a failure of what ran: no retry.
        let started = [
            "LVS-VM: kernel 6.12.117+deb12-amd64, 2 cpu(s), 1971 MiB, job lvs",
            "[   40.1] Oops: general protection fault",
        ];
        assert!(died_before_init(&run(Outcome::NoResult, &started)).is_none());
        // Failures and timeouts are what they are.
        assert!(died_before_init(&run(Outcome::Fail(1), &oops)).is_none());
        assert!(died_before_init(&run(Outcome::Timeout, &oops)).is_none());
        assert!(died_before_init(&run(Outcome::Pass, &[])).is_none());
    }

    #[test]
    fn the_init_mark_is_what_the_init_prints() {
        let init = include_str!("../../vm/init.sh");
        assert!(
            init.contains(&format!("echo \"{INIT_MARK}")),
            "xtask/vm/init.sh no longer prints {INIT_MARK:?} first"
        );
    }
}

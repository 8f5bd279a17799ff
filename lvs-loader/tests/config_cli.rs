//! `lvs-loader check` as an operator runs it: which files it reads, how much memory it
//! takes, and what it prints (escaped; JSON with `--json`). Issue 7 defects 7 and 11,
//! issue 8's JSON errors.
//!
//! Every child runs under a 1 GiB address-space limit, so a regression (a config read
//! without bound) fails the test instead of eating the machine.

use std::{
    ffi::OsStr,
    io::Write as _,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const PEER: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n";
const MIB: u64 = 1 << 20;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak resident set size of the child, in KiB (from wait4).
    max_rss_kib: i64,
}

/// Runs `lvs-loader ARGS` with a 1 GiB address-space limit; fails the test if it has not
/// finished after `timeout` (a config read that blocks). The child is reaped with wait4,
/// which also gives its peak RSS.
#[allow(clippy::zombie_processes)]
fn loader_within<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lvs-loader"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start lvs-loader");
    let pid = child.id() as libc::pid_t;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || std::io::read_to_string(&mut out).unwrap_or_default()),
        std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap_or_default()),
    );
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "lvs-loader {:?} still running after {timeout:?}",
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
        max_rss_kib: usage.ru_maxrss,
    }
}

fn loader<S: AsRef<OsStr>>(args: &[S]) -> Run {
    loader_within(args, Duration::from_secs(120))
}

fn check(path: &Path) -> Run {
    loader(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ])
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write config");
    p
}

/// `len` bytes of newlines, written in chunks.
fn blank_lines(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    let chunk = vec![b'\n'; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&chunk[..n as usize]).expect("write");
        left -= n;
    }
    p
}

fn assert_printable(s: &str) {
    assert!(
        s.chars()
            .all(|c| c == '\n' || lvs_loader::text::is_safe_char(c)),
        "raw control or format character in:\n{}",
        s.escape_debug()
    );
}

/// Issue 7 defect 7: each a clear error, quickly, without reading or blocking.
#[test]
fn special_files_are_refused_without_reading_or_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.toml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let sock = dir.path().join("sock.toml");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    for (path, kind) in [
        (PathBuf::from("/dev/zero"), "a character device"),
        (PathBuf::from("/dev/urandom"), "a character device"),
        (fifo.clone(), "a FIFO"),
        (sock.clone(), "a socket"),
        (dir.path().to_path_buf(), "a directory"),
    ] {
        let r = loader_within(
            &[
                OsStr::new("check"),
                OsStr::new("--config"),
                path.as_os_str(),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(r.code, Some(1), "{path:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "cannot read config: it is {kind}, not a regular file"
            )),
            "{path:?}: {}",
            r.stderr
        );
        assert!(r.max_rss_kib < 64 << 10, "{path:?}: {} KiB", r.max_rss_kib);
    }
}

/// Issue 7 defect 7: the cap is 64 MiB exactly; larger files are refused before reading.
#[test]
fn configs_over_64_mib_are_refused_and_64_mib_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sparse = dir.path().join("sparse.toml");
    std::fs::File::create(&sparse)
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse file");
    let r = check(&sparse);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .contains("1073741824 bytes, more than the 64 MiB (67108864 bytes) a config may have"),
        "{}",
        r.stderr
    );
    assert!(r.max_rss_kib < 64 << 10, "{} KiB", r.max_rss_kib);

    let hundred = blank_lines(dir.path(), "100mb.toml", 100_000_000);
    let r = check(&hundred);
    assert!(
        r.stderr.contains("100000000 bytes, more than the 64 MiB"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(&hundred).expect("rm");

    let over = blank_lines(dir.path(), "over.toml", 64 * MIB + 1);
    let r = check(&over);
    assert!(
        r.stderr.contains("67108865 bytes, more than the 64 MiB"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(&over).expect("rm");

    // Exactly 64 MiB is read and checked: the only problem is the missing peer.
    let cap = blank_lines(dir.path(), "cap.toml", 64 * MIB);
    let r = check(&cap);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("cap.toml:1:1: peer: no [[peer]] table"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// Issue 7 defect 7: peak memory of the largest configs accepted. Measured (release):
/// ~70 MB for 64 MiB of blank lines (the file itself), ~40 MB for 131,072 VIPs. Before:
/// 3.2 GB and 380 MB.
#[test]
fn memory_stays_bounded_on_the_largest_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit_kib = 192 << 10;

    let cap = blank_lines(dir.path(), "cap.toml", 64 * MIB);
    let r = check(&cap);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.max_rss_kib < limit_kib,
        "64 MiB of blank lines: {} KiB",
        r.max_rss_kib
    );
    std::fs::remove_file(&cap).expect("rm");

    // The most VIPs the map holds, each with every key.
    let mut text = String::from(PEER);
    for i in 0..131_072u32 {
        text.push_str(&format!(
            "\n[[vip]]  # entry {i}\naddress = \"10.{}.{}.{}\"\nport = 80\nprotocol = \"tcp\"\nmark = 0x3\nname = \"web-{i}\"\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    let max = write(dir.path(), "max.toml", text.as_bytes());
    let r = check(&max);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with(&format!("{}: OK: 131072 VIP(s), 1 peer(s)", max.display()))
    );
    assert!(
        r.max_rss_kib < limit_kib,
        "131,072 VIPs: {} KiB",
        r.max_rss_kib
    );

    // 16 MiB of one table's tokens: refused at 262,144, without building the rest.
    let mut flood = Vec::from(&b"x = ["[..]);
    flood.resize(16 * MIB as usize, b'1');
    for b in flood.iter_mut().skip(5).step_by(2) {
        *b = b',';
    }
    let flood = write(dir.path(), "flood.toml", &flood);
    let r = check(&flood);
    assert!(
        r.stderr.contains("more than 262144 TOML tokens"),
        "{}",
        r.stderr
    );
    assert!(
        r.max_rss_kib < limit_kib,
        "token flood: {} KiB",
        r.max_rss_kib
    );
}

/// Issue 8: with --json, errors are one JSON document on stdout; exit codes unchanged.
#[test]
fn json_errors_are_one_document_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.toml",
        format!("{PEER}[[vip]]\naddress = \"1.2.3\"\nmark = \"3\"\nprot = 1\n").as_bytes(),
    );
    let text = check(&bad);
    for flag in ["--json", "-j"] {
        let r = loader(&[
            OsStr::new(flag),
            OsStr::new("check"),
            OsStr::new("--config"),
            bad.as_os_str(),
        ]);
        assert_eq!(r.code, Some(1));
        assert_eq!(r.stderr, "", "nothing on stderr");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
        let file = bad.display().to_string();
        assert_eq!(v["error"], format!("{file}: invalid config: 3 problem(s)"));
        let problems = v["problems"].as_array().expect("problems");
        assert_eq!(problems.len(), 3);
        // The same problems as the text output, field by field.
        for (p, line) in problems.iter().zip(text.stderr.lines()) {
            let as_text = format!(
                "{}:{}:{}: {}: {}",
                p["file"].as_str().unwrap(),
                p["line"],
                p["column"],
                p["field"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            );
            assert_eq!(line.trim_start_matches("lvs-loader: error: "), as_text);
        }
        assert_eq!(problems[0]["field"], "vip[1].address");
        assert_eq!(
            (problems[0]["line"].as_u64(), problems[0]["column"].as_u64()),
            (Some(4), Some(11))
        );
        assert_eq!(problems[1]["field"], "vip[1].mark");
        assert_eq!(problems[2]["field"], "vip[1].prot");
    }
    // Not a config problem: {"error"} only.
    let r = loader(&["--json", "check", "--config", "/nonexistent/vips.toml"]);
    assert_eq!(r.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("/nonexistent/vips.toml: cannot read config"),
        "{v}"
    );
    assert!(v.get("problems").is_none(), "{v}");
    // Usage errors: exit 2, JSON when asked.
    let r = loader(&["--json", "chekc"]);
    assert_eq!(r.code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(v["error"].as_str().unwrap().contains("chekc"), "{v}");
    let r = loader(&["check"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--config"), "{}", r.stderr);
}

/// Issue 7 defect 11: paths and config text printed escaped, on stderr and in JSON.
#[test]
fn hostile_paths_and_text_are_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = OsStr::from_bytes(b"vips\x1b[2J\xe2\x80\xae\xff.toml");
    let path = dir.path().join(name);
    let body = format!(
        "{PEER}\"k\\u001b]0;owned\\u0007\" = 1\n[[vip]]\naddress = \"10.0.0.1\\u009b31m\"\nmark = 1\nname = \"a\\u202eb\"\n"
    );
    std::fs::write(&path, &body).expect("write");
    let r = loader(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ]);
    assert_eq!(r.code, Some(1));
    assert_printable(&r.stderr);
    assert!(
        r.stderr.contains(
            "vips\\x1b[2J\\u{202e}\\xff.toml:3:1: peer[1].\"k\\x1b]0;owned\\x07\": unknown key"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("\"10.0.0.1\\x9b31m\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("\"a\\u{202e}b\" contains"),
        "{}",
        r.stderr
    );
    let r = loader(&[
        OsStr::new("--json"),
        OsStr::new("check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ]);
    assert_printable(&r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(3), "{v}");
    // A missing file with such a name: the same escaping.
    let missing = dir
        .path()
        .join(OsStr::from_bytes(b"no\x1b[31mpe\xe2\x81\xa6.toml"));
    let r = loader(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        missing.as_os_str(),
    ]);
    assert_printable(&r.stderr);
    assert!(
        r.stderr.contains("no\\x1b[31mpe\\u{2066}.toml"),
        "{}",
        r.stderr
    );
    let r = loader(&[
        OsStr::new("-j"),
        OsStr::new("check"),
        OsStr::new("--config"),
        missing.as_os_str(),
    ]);
    assert_printable(&r.stdout);
}

/// Issue 7 defect 11: "caused by" printed twice.
#[test]
fn a_cause_is_printed_once() {
    let r = loader(&["check", "--config", "/nonexistent/vips.toml"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.starts_with("lvs-loader: error: /nonexistent/vips.toml: cannot read config: No such file or directory"),
        "{}",
        r.stderr
    );
}

/// Issue 7 defect 11: `sudo lvs-loader check --config /etc/shadow` must not print the
/// file's lines. Runs on the real /etc/shadow when it is readable (root).
#[test]
fn etc_shadow_is_not_echoed() {
    let Ok(shadow) = std::fs::read_to_string("/etc/shadow") else {
        eprintln!("SKIP: /etc/shadow is not readable here");
        return;
    };
    let r = check(Path::new("/etc/shadow"));
    assert_eq!(r.code, Some(1));
    let out = format!("{}{}", r.stdout, r.stderr);
    for line in shadow.lines() {
        let mut fields = line.split(':');
        let user = fields.next().unwrap_or_default();
        let hash = fields.next().unwrap_or_default();
        if hash.len() >= 4 {
            assert!(!out.contains(hash), "a password field was printed");
        }
        if user.len() >= 5 {
            assert!(!out.contains(user), "user {user:?} printed:\n{out}");
        }
    }
    assert!(out.lines().count() <= 1001, "{out}");
}

/// Issue 8: `check` shows what would be installed: one line per port of a range.
#[test]
fn check_lists_one_entry_per_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "vips.toml",
        format!("{PEER}[[vip]]\naddress = \"172.17.85.56\"\nport = [443, \"8000-8002\"]\nmark = 3\nname = \"web\"\n").as_bytes(),
    );
    let r = check(&p);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let vips: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("vip"))
        .collect();
    assert_eq!(vips.len(), 4, "{}", r.stdout);
    for (line, port) in vips.iter().zip([443, 8000, 8001, 8002]) {
        assert!(line.contains(&format!("172.17.85.56:{port}/tcp")), "{line}");
        assert!(line.ends_with("mark 0x3  (web)"), "{line}");
    }
    let r = loader(&[
        OsStr::new("--json"),
        OsStr::new("check"),
        OsStr::new("--config"),
        p.as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let ports: Vec<u64> = v["vips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![443, 8000, 8001, 8002]);
    assert!(
        v["vips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["name"] == "web")
    );
}

//! Hostile input: interface arguments that are paths, pin directories others can write,
//! strings that would drive the terminal, names that are not UTF-8, paths longer than a
//! fixed buffer, and unprivileged callers. Each is refused (or handled) before anything
//! is touched, with a clear message.

use std::{
    ffi::OsStr,
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use lvs_tests::{
    lab::{DEV, Lab, path_str, stderr},
    netns::{PinRoot, loader_bin},
};

const A: &str = lvs_tests::conf::WEB;

fn loader(pins: &Path, ns: &str, args: &[&OsStr]) -> Output {
    Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(pins)
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run lvs-loader")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn no_raw_controls(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.iter().any(|&b| b == 0x1b || b == 0x07 || b == b'\r'),
        "{what} printed a raw control character: {}",
        String::from_utf8_lossy(bytes).escape_debug()
    );
}

#[test]
fn interface_arguments_that_are_paths_are_refused() {
    let lab = Lab::new("trav");
    let a = lab.config("a.toml", A);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a)]);
    // Somebody's directory that looks like an attachment.
    let victim = lab.dir.join("victim").join("sub");
    std::fs::create_dir_all(&victim).expect("dir");
    for f in ["prog", "link", "LVS_META"] {
        std::fs::write(victim.join(f), "keep me").expect("file");
    }
    let v = path_str(&victim);
    let attached = lab.my_status().expect("entry");
    let other_root = PinRoot::new("travb");
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (lab.pins.path.clone(), vec!["detach", v]),
        (
            lab.pins.path.clone(),
            vec!["reload", v, "--config", path_str(&a)],
        ),
        (lab.pins.path.clone(), vec!["stats", v]),
        (
            lab.pins.path.clone(),
            vec!["attach", v, "--config", path_str(&a)],
        ),
        (lab.pins.path.clone(), vec!["detach", ""]),
        (lab.pins.path.clone(), vec!["detach", "."]),
        (lab.pins.path.clone(), vec!["detach", ".."]),
        (lab.pins.path.clone(), vec!["detach", "../lvs0"]),
        (lab.pins.path.clone(), vec!["stats", "lvs0/../.."]),
        // Another pin root's attachment, named by its path.
        (
            other_root.path.clone(),
            vec!["detach", attached["pin_dir"].as_str().expect("pin_dir")],
        ),
    ];
    for (root, args) in cases {
        let a: Vec<&OsStr> = args.iter().map(|s| os(s)).collect();
        let out = loader(&root, &lab.director.name, &a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("interface name"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for f in ["prog", "link", "LVS_META"] {
        assert_eq!(
            std::fs::read_to_string(victim.join(f)).ok().as_deref(),
            Some("keep me"),
            "{f} was touched"
        );
    }
    let (code, _) = lab.status();
    assert_eq!(code, Some(0), "the real attachment is untouched");
    assert_eq!(lab.my_status().expect("entry")["state"], "ok");
    assert!(!other_root.path.exists());
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn pin_directories_are_private_whatever_the_umask() {
    let lab = Lab::new("umask");
    let a = lab.config("a.toml", A);
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .args(["--netns", &lab.director.name, "attach", DEV, "--config"])
        .arg(&a)
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let e = lab.my_status().expect("entry");
    let dir = PathBuf::from(e["pin_dir"].as_str().expect("pin_dir"));
    for p in [
        lab.pins.path.clone(),
        dir.parent().expect("ns dir").to_path_buf(),
        dir,
    ] {
        assert_eq!(mode_of(&p), 0o700, "{}", p.display());
    }
}

#[test]
fn pin_root_others_can_write_is_refused() {
    let lab = Lab::new("foreign");
    let a = lab.config("a.toml", A);
    std::fs::create_dir(&lab.pins.path).expect("pre-create the pin root");
    let chown = |uid: u32| {
        std::os::unix::fs::chown(&lab.pins.path, Some(uid), Some(uid)).expect("chown");
    };
    let attach = || lab.loader(&["attach", DEV, "--config", path_str(&a)]);
    // Owned by nobody.
    chown(65534);
    let out = attach();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is owned by uid 65534") && err.contains("chown"),
        "{err}"
    );
    assert!(lab.marker_prog_ids().is_empty(), "nothing may be attached");
    // Ours, but world-writable.
    chown(0);
    std::fs::set_permissions(&lab.pins.path, std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let out = attach();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("writable by every user") && err.contains("chmod 0700"),
        "{err}"
    );
    // Group-writable.
    std::fs::set_permissions(&lab.pins.path, std::fs::Permissions::from_mode(0o770))
        .expect("chmod");
    assert!(stderr(&attach()).contains("writable by its group"));
    assert!(lab.marker_prog_ids().is_empty());
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    // Fixed as the message says: works.
    std::fs::set_permissions(&lab.pins.path, std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    assert!(attach().status.success());
}

#[test]
fn terminal_hostile_strings_are_escaped() {
    let lab = Lab::new("esc");
    // A config file whose name sets the terminal title and rings the bell.
    let hostile = lab.dir.join("a\x1b]0;pwned\x07\r.toml");
    std::fs::write(&hostile, A).expect("config");
    let out = loader(
        &lab.pins.path,
        &lab.director.name,
        &[os("attach"), os(DEV), os("--config"), hostile.as_os_str()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    no_raw_controls("attach", &out.stdout);
    for json in [false, true] {
        let mut args = vec![os("status")];
        if json {
            args.push(os("--json"));
        }
        let out = loader(&lab.pins.path, &lab.director.name, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        no_raw_controls("status", &out.stdout);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("a\\x1b]0;pwned\\x07\\x0d.toml")
                || String::from_utf8_lossy(&out.stdout)
                    .contains("a\\\\x1b]0;pwned\\\\x07\\\\x0d.toml"),
            "the path is shown escaped: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // An interface name with an escape sequence: refused, and not echoed raw.
    for cmd in ["attach", "detach", "stats"] {
        let mut args = vec![os(cmd), os("x\x1b[2J\x1b]0;t\x07")];
        if cmd == "attach" {
            args.extend([os("--config"), hostile.as_os_str()]);
        }
        let out = loader(&lab.pins.path, &lab.director.name, &args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        no_raw_controls(cmd, &out.stderr);
        assert!(stderr(&out).contains("\\x1b[2J"), "{}", stderr(&out));
    }
}

#[test]
fn an_interface_name_that_is_not_utf8_is_manageable() {
    let lab = Lab::new("nonutf");
    let a = lab.config("a.toml", A);
    let name = OsStr::from_bytes(b"v\xff.0");
    let out = Command::new("ip")
        .args(["-n", &lab.director.name, "link", "add", "name"])
        .arg(name)
        .args(["type", "veth", "peer", "name", "vpeer0"])
        .output()
        .expect("ip");
    assert!(out.status.success(), "{}", stderr(&out));
    for mode in ["netlink", "tcx"] {
        if mode == "tcx" && !lvs_loader::sys::supports_tcx() {
            continue;
        }
        let run = |args: &[&OsStr]| loader(&lab.pins.path, &lab.director.name, args);
        let out = run(&[
            os("attach"),
            name,
            os("--config"),
            a.as_os_str(),
            os("--mode"),
            os(mode),
        ]);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("v\\xff.0: attached"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = run(&[os("status")]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("v\\xff.0"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = run(&[os("stats"), name, os("--json")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(&[os("reload"), name, os("--config"), a.as_os_str()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(&[os("detach"), name]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            lab.pins.leftovers().is_empty(),
            "{:?}",
            lab.pins.leftovers()
        );
    }
}

#[test]
fn long_config_paths_are_kept_whole() {
    let lab = Lab::new("longp");
    let mut dir = lab.dir.clone();
    for i in 0..12 {
        dir.push(format!("{i:02}-{}", "d".repeat(47)));
    }
    std::fs::create_dir_all(&dir).expect("dirs");
    let cfg = dir.join("vips.toml");
    std::fs::write(&cfg, A).expect("config");
    assert!(cfg.as_os_str().len() > 600);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&cfg)]);
    let e = lab.my_status().expect("entry");
    assert_eq!(e["config_path"].as_str(), Some(path_str(&cfg)), "{e}");
}

#[test]
fn causes_are_printed_once() {
    let lab = Lab::new("causes");
    let a = lab.config("a.toml", A);
    for args in [
        vec!["--netns", "lvs-no-such-ns", "status"],
        vec![
            "--netns",
            "lvs-no-such-ns",
            "attach",
            DEV,
            "--config",
            path_str(&a),
        ],
        vec![
            "--pin-dir",
            "/proc/lvs-no-bpffs",
            "--netns",
            &lab.director.name,
            "attach",
            DEV,
            "--config",
            path_str(&a),
        ],
    ] {
        let out = Command::new(loader_bin())
            .args(&args)
            .output()
            .expect("loader");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let text = l.trim().trim_start_matches("caused by: ");
            for earlier in &lines[..i] {
                assert!(
                    !earlier.contains(text),
                    "{args:?}: {text:?} printed twice:\n{err}"
                );
            }
        }
    }
}

#[test]
fn unprivileged_callers_are_told_permission_denied() {
    let lab = Lab::new("unpriv");
    let a = lab.config("a.toml", A);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a)]);
    for args in [vec!["status"], vec!["stats", DEV]] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(loader_bin())
            .arg("--pin-dir")
            .arg(&lab.pins.path)
            .args(&args)
            .output()
            .expect("setpriv");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
        assert!(!err.contains("broken"), "{args:?}: {err}");
    }
}

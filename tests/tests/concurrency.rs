//! Concurrent commands on one interface (keepalived notify scripts, systemd and an
//! operator at once): every change is serialized by the attachment's lock, so the end
//! state is always exactly one config, the one `status` names, with one program on the
//! hook, and nothing leaks. A command that has to wait too long says who holds the lock.

use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lvs_tests::{
    lab::{DEV, Lab, path_str, prog_freed, stderr},
    netns::loader_bin,
};

/// `n` VIPs 10.<base>.x.y:80 with mark `base` (big enough that a reload takes a while).
fn config(base: u8, n: u32) -> String {
    let mut s = String::from("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[vip]]\naddress = \"10.{base}.{}.{}\"\nport = 80\nmark = {base}\n",
            i >> 8,
            i & 0xff
        ));
    }
    s
}

fn spawn(lab: &Lab, args: &[&str]) -> Child {
    Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .arg("--netns")
        .arg(&lab.director.name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lvs-loader")
}

/// Digest of a config file, from `check --json`.
fn digest(path: &Path) -> String {
    let out = Command::new(loader_bin())
        .args(["check", "--json", "--config"])
        .arg(path)
        .output()
        .expect("check");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check JSON");
    v["digest"].as_str().expect("digest").to_owned()
}

/// Exactly one config live, the one `status` names; exactly one program on the hook.
/// Returns the program id.
fn exactly_one(lab: &Lab, configs: &[(u8, u32, String)], ctx: &str) -> u32 {
    let (code, entries) = lab.status();
    assert_eq!(code, Some(0), "{ctx}: status: {entries:?}");
    assert_eq!(entries.len(), 1, "{ctx}: {entries:?}");
    let e = &entries[0];
    assert_eq!(e["state"], "ok", "{ctx}: {e}");
    let s = lab.stats();
    let marks: BTreeSet<u64> = s["vips"]
        .as_array()
        .expect("vips")
        .iter()
        .map(|v| v["mark"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        marks.len(),
        1,
        "{ctx}: VIPs of more than one config are live: {marks:?}"
    );
    let mark = *marks.first().unwrap_or(&0) as u8;
    let (_, n, d) = configs
        .iter()
        .find(|(b, _, _)| *b == mark)
        .expect("a known config");
    assert_eq!(
        s["vips"].as_array().map(Vec::len),
        Some(*n as usize),
        "{ctx}: config {mark} is live only in part"
    );
    assert_eq!(
        e["config_digest"].as_str(),
        Some(d.as_str()),
        "{ctx}: status names another config than the live one"
    );
    assert_eq!(e["vips"].as_u64(), Some(u64::from(*n)), "{ctx}: {e}");
    let hooks = lab.marker_prog_ids();
    assert_eq!(
        hooks,
        vec![e["program_id"].as_u64().unwrap_or(0) as u32],
        "{ctx}: exactly one marker on the hook"
    );
    hooks[0]
}

fn race(mode: &str) {
    let lab = Lab::new(&format!("race{}", &mode[..2]));
    let n = 5000;
    let pa = lab.config("a.toml", &config(1, n));
    let pb = lab.config("b.toml", &config(2, n));
    let configs = [(1u8, n, digest(&pa)), (2u8, n, digest(&pb))];
    let (a, b) = (path_str(&pa), path_str(&pb));
    let mut progs = BTreeSet::new();

    // Reloads racing (defect 1): one attach, then six reloads at once, twice.
    lab.loader_ok(&["attach", DEV, "--config", a, "--mode", mode]);
    for round in 0..2 {
        let kids: Vec<Child> = (0..6)
            .map(|i| {
                let c = if i % 2 == 0 { b } else { a };
                spawn(&lab, &["reload", DEV, "--config", c])
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: reload: {}",
                stderr(&out)
            );
        }
        progs.insert(exactly_one(
            &lab,
            &configs,
            &format!("{mode} round {round}, after racing reloads"),
        ));
    }
    lab.loader_ok(&["detach", DEV]);

    // Attaches racing on a fresh interface (defect 2).
    for round in 0..2 {
        let kids: Vec<Child> = (0..4)
            .map(|i| {
                let c = if i % 2 == 0 { a } else { b };
                spawn(&lab, &["attach", DEV, "--config", c, "--mode", mode])
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: attach: {}",
                stderr(&out)
            );
        }
        progs.insert(exactly_one(
            &lab,
            &configs,
            &format!("{mode} round {round}, after racing attaches"),
        ));
        lab.loader_ok(&["detach", DEV]);
        assert!(
            lab.marker_prog_ids().is_empty(),
            "round {round}: marker left after detach"
        );
    }

    // Everything at once: attach, reload, detach. Whatever wins last, the end state is
    // one whole config or nothing.
    for round in 0..2 {
        let mut kids = Vec::new();
        for i in 0..6 {
            let c = if i % 2 == 0 { a } else { b };
            kids.push(match i % 3 {
                0 => spawn(&lab, &["attach", DEV, "--config", c, "--mode", mode]),
                1 => spawn(&lab, &["reload", DEV, "--config", c]),
                _ => spawn(&lab, &["detach", DEV]),
            });
        }
        for k in kids {
            let out = k.wait_with_output().expect("wait");
            let err = stderr(&out);
            assert!(
                out.status.success() || err.contains("is not attached"),
                "mixed round {round}: {err}"
            );
            assert_eq!(out.status.signal(), None);
        }
        let ctx = format!("{mode} mixed round {round}");
        if lab.my_status().is_some() {
            progs.insert(exactly_one(&lab, &configs, &ctx));
        } else {
            assert!(lab.marker_prog_ids().is_empty(), "{ctx}: orphaned marker");
            assert!(
                lab.pins.leftovers().is_empty(),
                "{ctx}: {:?}",
                lab.pins.leftovers()
            );
        }
    }
    let _ = lab.loader(&["detach", DEV]);
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(lab.marker_prog_ids().is_empty());
    let q = lab.director.run("tc", &["qdisc", "show", "dev", DEV]);
    assert!(!q.contains("clsact"), "clsact leaked: {q}");
    for id in progs {
        assert!(prog_freed(id), "program {id} leaked");
    }
}

#[test]
fn tcx_concurrent_commands_end_in_one_config() {
    if lvs_tests::lab::tcx_or_skip("tcx_concurrent_commands_end_in_one_config") {
        race("tcx");
    }
}

#[test]
fn netlink_concurrent_commands_end_in_one_config() {
    race("netlink");
}

fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

#[test]
fn a_second_command_waits_and_names_the_holder() {
    let lab = Lab::new("lockwait");
    let pa = lab.config("a.toml", &config(1, 3));
    let pb = lab.config("b.toml", &config(2, 3));
    lab.loader_ok(&["attach", DEV, "--config", path_str(&pa)]);
    // A reload that stops itself while holding the lock.
    let mut holder = Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .args(["--netns", &lab.director.name, "reload", DEV, "--config"])
        .arg(&pb)
        .env("LVS_FAILPOINT", "reload:locked")
        .env("LVS_FAILPOINT_ACTION", "stop")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while !is_stopped(holder.id()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the holder never stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A bounded wait, then a clear refusal naming the holder.
    let t0 = Instant::now();
    let out = lab.loader(&["--wait", "0.3", "detach", DEV]);
    let waited = t0.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is busy"), "{err}");
    assert!(
        err.contains(&format!("held by pid {}", holder.id())),
        "{err}"
    );
    assert!(err.contains("reload lvs0"), "{err}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    let e = lab.my_status().expect("entry");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("pid {}", holder.id())),
        "status names the holder: {e}"
    );
    // A patient command waits for the holder to finish, then runs.
    let waiter = spawn(&lab, &["--wait", "20", "detach", DEV]);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our child.
    unsafe { libc::kill(holder.id() as i32, libc::SIGCONT) };
    assert!(holder.wait().expect("wait").success());
    let out = waiter.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

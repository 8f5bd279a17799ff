//! Crash safety, proven by fault injection: attach, reload, re-hook and detach are each
//! killed (SIGKILL, `LVS_FAILPOINT`) at every step they report (`LVS_FAILPOINT_TRACE`),
//! in both modes. After every kill, `status` must tell the truth (what it names is what
//! the datapath marks with, and no marker runs that it does not report), the next command
//! must converge, and at the end nothing is left: no pins, no filters, no TCX links, no
//! programs.

use std::{
    collections::BTreeSet, os::unix::process::ExitStatusExt as _, path::PathBuf, process::Output,
};

use lvs_tests::lab::{DEV, Lab, path_str, prog_freed, stderr, tcx_or_skip};

const A: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CE"
[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x3
name = "web"
[[vip]]
address = "172.17.85.57"
port = 443
mark = 0x3
[[vip]]
address = "2001:db8::56"
port = 80
mark = 0x6
"#;

const B: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:D8"
[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x5
name = "web"
[[vip]]
address = "172.17.85.60"
protocol = "udp"
mark = 0x7
"#;

type VipSet = BTreeSet<String>;

struct Cfg {
    name: &'static str,
    path: PathBuf,
    digest: String,
    vips: VipSet,
}

fn vip_set(vips: &serde_json::Value) -> VipSet {
    vips.as_array()
        .expect("vips")
        .iter()
        .map(|v| {
            format!(
                "{} {} {} {}",
                v["address"], v["port"], v["protocol"], v["mark"]
            )
        })
        .collect()
}

fn cfg(lab: &Lab, name: &'static str, text: &str) -> Cfg {
    let path = lab.config(&format!("{name}.toml"), text);
    let out = lvs_tests::cmd::run_ok(
        std::process::Command::new(lvs_tests::netns::loader_bin()).args([
            "check",
            "--config",
            path_str(&path),
            "--json",
        ]),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("check JSON");
    Cfg {
        name,
        digest: v["digest"].as_str().expect("digest").to_owned(),
        vips: vip_set(&v["vips"]),
        path,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Nothing,
    Interrupted,
    NotHooked,
    Live(&'static str),
}

/// What `status` says, checked against the kernel.
fn observe(lab: &Lab, cfgs: &[&Cfg], ctx: &str, seen_progs: &mut BTreeSet<u32>) -> Seen {
    let (code, entries) = lab.status();
    let mine: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["current_netns"] == true && e["interface"] == DEV)
        .collect();
    assert!(mine.len() <= 1, "{ctx}: more than one entry: {entries:?}");
    let hooks = lab.marker_prog_ids();
    seen_progs.extend(hooks.iter().copied());
    let Some(e) = mine.first() else {
        assert!(
            hooks.is_empty(),
            "{ctx}: status reports nothing, but marker(s) {hooks:?} run on {DEV} (orphaned)"
        );
        assert_eq!(code, Some(0), "{ctx}: {entries:?}");
        return Seen::Nothing;
    };
    if let Some(id) = e["program_id"].as_u64() {
        seen_progs.insert(id as u32);
    }
    let prog = e["program_id"].as_u64().map(|i| i as u32);
    match e["state"].as_str().unwrap_or("") {
        "ok" => {
            assert_eq!(code, Some(0), "{ctx}: {e}");
            let digest = e["config_digest"].as_str().unwrap_or("");
            let c = cfgs
                .iter()
                .find(|c| c.digest == digest)
                .unwrap_or_else(|| panic!("{ctx}: status names an unknown config: {e}"));
            let live = vip_set(&lab.stats()["vips"]);
            assert_eq!(
                live, c.vips,
                "{ctx}: status names config {} but the datapath holds other VIPs",
                c.name
            );
            assert_eq!(
                hooks,
                vec![prog.expect("program id")],
                "{ctx}: exactly the reported program must run: {e}"
            );
            Seen::Live(c.name)
        }
        "interrupted" => {
            assert_eq!(code, Some(1), "{ctx}: {e}");
            assert!(hooks.len() <= 1, "{ctx}: {hooks:?}");
            if let Some(h) = hooks.first() {
                assert_eq!(Some(*h), prog, "{ctx}: an unreported marker runs: {e}");
            }
            Seen::Interrupted
        }
        "not hooked" => {
            assert_eq!(code, Some(1), "{ctx}: {e}");
            assert!(hooks.is_empty(), "{ctx}: 'not hooked' but {hooks:?} run");
            Seen::NotHooked
        }
        other => panic!("{ctx}: unexpected state {other:?}: {e}"),
    }
}

/// The failpoints `args` passes, in order (`NAME#N` for the Nth pass of a name).
fn failpoints(out: &Output) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(name) = line.strip_prefix("failpoint: ") {
            let n = seen.iter().filter(|s| *s == name).count() + 1;
            seen.push(name.to_owned());
            v.push(format!("{name}#{n}"));
        }
    }
    v
}

fn traced(lab: &Lab, args: &[&str]) -> Vec<String> {
    let out = lab.loader_env(&[("LVS_FAILPOINT_TRACE", "1")], args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let fps = failpoints(&out);
    assert!(fps.len() >= 3, "{args:?}: too few failpoints: {fps:?}");
    fps
}

fn killed_at(lab: &Lab, fp: &str, args: &[&str]) {
    let out = lab.loader_env(&[("LVS_FAILPOINT", fp)], args);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{args:?} at {fp}: not killed ({}): {}",
        out.status,
        stderr(&out)
    );
}

fn attach_args<'a>(c: &'a Cfg, mode: &'a str) -> Vec<&'a str> {
    vec!["attach", DEV, "--config", path_str(&c.path), "--mode", mode]
}

fn converge_attach(
    lab: &Lab,
    c: &Cfg,
    mode: &str,
    cfgs: &[&Cfg],
    ctx: &str,
    seen: &mut BTreeSet<u32>,
) {
    lab.loader_ok(&attach_args(c, mode));
    assert_eq!(observe(lab, cfgs, ctx, seen), Seen::Live(c.name), "{ctx}");
}

fn converge_detach(lab: &Lab, cfgs: &[&Cfg], ctx: &str, seen: &mut BTreeSet<u32>) {
    let out = lab.loader(&["detach", DEV]);
    assert!(
        out.status.success() || stderr(&out).contains("is not attached"),
        "{ctx}: detach: {}",
        stderr(&out)
    );
    assert_eq!(observe(lab, cfgs, ctx, seen), Seen::Nothing, "{ctx}");
    assert!(
        lab.pins.leftovers().is_empty(),
        "{ctx}: {:?}",
        lab.pins.leftovers()
    );
    let q = lab.director.run("tc", &["qdisc", "show", "dev", DEV]);
    assert!(!q.contains("clsact"), "{ctx}: our clsact qdisc leaked: {q}");
}

/// Removes the program from its hook behind lvs-loader's back.
fn unhook(lab: &Lab, mode: &str) {
    if mode == "netlink" {
        lab.director
            .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
    } else {
        use std::os::fd::AsFd as _;
        let e = lab.my_status().expect("entry");
        let dir = PathBuf::from(e["pin_dir"].as_str().expect("pin_dir"));
        let link = lvs_loader::bpf::obj_get(&dir.join("link")).expect("link pin");
        lvs_loader::bpf::link_detach(link.as_fd()).expect("link detach");
    }
    assert!(lab.marker_prog_ids().is_empty());
}

fn every_step(mode: &str) {
    let lab = Lab::new(&format!("cr{}", &mode[..2]));
    let a = cfg(&lab, "a", A);
    let b = cfg(&lab, "b", B);
    let cfgs = [&a, &b];
    let mut seen = BTreeSet::new();
    let mut kills = 0;

    // 1. Attach, killed at every step; the next command is attach or detach.
    let steps = traced(&lab, &attach_args(&a, mode));
    assert!(
        steps.iter().any(|s| s.starts_with("attach:published")),
        "{steps:?}"
    );
    converge_detach(&lab, &cfgs, "after the traced attach", &mut seen);
    for (i, fp) in steps.iter().enumerate() {
        let ctx = format!("{mode} attach killed at {fp}");
        killed_at(&lab, fp, &attach_args(&a, mode));
        kills += 1;
        let s = observe(&lab, &cfgs, &ctx, &mut seen);
        assert!(
            matches!(s, Seen::Nothing | Seen::Interrupted | Seen::Live("a")),
            "{ctx}: {s:?}"
        );
        if i % 2 == 0 {
            converge_attach(
                &lab,
                &b,
                mode,
                &cfgs,
                &format!("{ctx}, then attach"),
                &mut seen,
            );
        }
        converge_detach(&lab, &cfgs, &format!("{ctx}, then detach"), &mut seen);
    }

    // 2. Reload, killed at every step, alternating A -> B and B -> A.
    converge_attach(&lab, &a, mode, &cfgs, "before reloads", &mut seen);
    let steps = traced(&lab, &["reload", DEV, "--config", path_str(&b.path)]);
    let (mut from, mut to) = (&b, &a);
    for fp in &steps {
        let ctx = format!("{mode} reload {} -> {} killed at {fp}", from.name, to.name);
        killed_at(&lab, fp, &["reload", DEV, "--config", path_str(&to.path)]);
        kills += 1;
        let s = observe(&lab, &cfgs, &ctx, &mut seen);
        assert!(
            s == Seen::Live(from.name) || s == Seen::Live(to.name),
            "{ctx}: {s:?}"
        );
        lab.loader_ok(&["reload", DEV, "--config", path_str(&to.path)]);
        assert_eq!(
            observe(&lab, &cfgs, &ctx, &mut seen),
            Seen::Live(to.name),
            "{ctx}"
        );
        std::mem::swap(&mut from, &mut to);
    }

    // 3. Re-hook (reload after the hook was removed), killed at every step.
    unhook(&lab, mode);
    let steps = traced(&lab, &["reload", DEV, "--config", path_str(&from.path)]);
    assert!(steps.iter().any(|s| s.starts_with("rehook:")), "{steps:?}");
    for fp in steps
        .iter()
        .filter(|s| s.starts_with("rehook:") || s.starts_with("hook:"))
    {
        let ctx = format!("{mode} re-hook killed at {fp}");
        unhook(&lab, mode);
        killed_at(&lab, fp, &["reload", DEV, "--config", path_str(&to.path)]);
        kills += 1;
        let s = observe(&lab, &cfgs, &ctx, &mut seen);
        assert!(matches!(s, Seen::NotHooked | Seen::Live(_)), "{ctx}: {s:?}");
        let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&to.path)]);
        assert!(
            s != Seen::NotHooked || out.contains("re-hooked"),
            "{ctx}: the next reload must hook it again and say so: {out}"
        );
        assert_eq!(
            observe(&lab, &cfgs, &ctx, &mut seen),
            Seen::Live(to.name),
            "{ctx}"
        );
    }

    // 4. Detach, killed at every step; the next command is detach or attach.
    let steps = traced(&lab, &["detach", DEV]);
    for (i, fp) in steps.iter().enumerate() {
        let ctx = format!("{mode} detach killed at {fp}");
        converge_attach(&lab, &a, mode, &cfgs, &format!("{ctx}: setup"), &mut seen);
        killed_at(&lab, fp, &["detach", DEV]);
        kills += 1;
        let s = observe(&lab, &cfgs, &ctx, &mut seen);
        assert!(
            matches!(s, Seen::Nothing | Seen::Interrupted | Seen::Live("a")),
            "{ctx}: {s:?}"
        );
        if i % 2 == 1 {
            converge_attach(
                &lab,
                &b,
                mode,
                &cfgs,
                &format!("{ctx}, then attach"),
                &mut seen,
            );
        }
        converge_detach(&lab, &cfgs, &format!("{ctx}, then detach"), &mut seen);
    }

    for id in &seen {
        assert!(
            prog_freed(*id),
            "{mode}: program {id} still exists after the final detach"
        );
    }
    eprintln!(
        "{mode}: {kills} kills, {} programs seen, all freed",
        seen.len()
    );
}

#[test]
fn tcx_killed_at_every_step() {
    if tcx_or_skip("tcx_killed_at_every_step") {
        every_step("tcx");
    }
}

#[test]
fn netlink_killed_at_every_step() {
    every_step("netlink");
}

/// Syscalls that change state outside the process (bpffs, rtnetlink).
const MUTATING: &str =
    "mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,sendto,sendmsg";

/// The kill the issue reproduced defect 3 with (`strace -e inject=mkdir:signal=KILL:when=2`
/// on a netlink attach), at every state-changing syscall an attach makes: independent of
/// the loader's own failpoints, so it runs against any lvs-loader binary.
#[test]
fn netlink_attach_killed_by_strace_at_every_state_changing_syscall() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIP: strace is not installed");
        return;
    }
    let lab = Lab::new("strace");
    let a = cfg(&lab, "a", A);
    let b = cfg(&lab, "b", B);
    let cfgs = [&a, &b];
    let mut seen = BTreeSet::new();
    let loader = lvs_tests::netns::loader_bin();
    let strace = |extra: &[&str]| {
        std::process::Command::new("strace")
            .args(["-f", "-qq"])
            .args(extra)
            .arg(&loader)
            .arg("--pin-dir")
            .arg(&lab.pins.path)
            .args(["--netns", &lab.director.name])
            .args(attach_args(&a, "netlink"))
            .output()
            .expect("strace")
    };
    let log = lab.dir.join("strace.log");
    let out = strace(&["-e", &format!("trace={MUTATING}"), "-o", path_str(&log)]);
    assert!(out.status.success(), "{}", stderr(&out));
    // (syscall, occurrence) in order.
    let mut calls: Vec<(String, usize)> = Vec::new();
    for line in std::fs::read_to_string(&log).expect("log").lines() {
        if line.contains("resumed>") {
            continue;
        }
        let rest = line.split_once(' ').map_or(line, |(pid, r)| {
            if pid.bytes().all(|b| b.is_ascii_digit()) {
                r
            } else {
                line
            }
        });
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        let n = calls.iter().filter(|(c, _)| c == name).count() + 1;
        calls.push((name.to_owned(), n));
    }
    assert!(calls.len() >= 3, "{calls:?}");
    converge_detach(&lab, &cfgs, "after the traced attach", &mut seen);
    for (name, n) in &calls {
        let ctx = format!("netlink attach killed by strace at {name} #{n}");
        let out = strace(&[
            "-o",
            "/dev/null",
            "-e",
            &format!("inject={name}:signal=KILL:when={n}"),
        ]);
        assert!(!out.status.success(), "{ctx}: not killed");
        let s = observe(&lab, &cfgs, &ctx, &mut seen);
        assert!(
            matches!(s, Seen::Nothing | Seen::Interrupted | Seen::Live("a")),
            "{ctx}: {s:?}"
        );
        // The next attach and detach converge.
        converge_attach(
            &lab,
            &a,
            "netlink",
            &cfgs,
            &format!("{ctx}, then attach"),
            &mut seen,
        );
        converge_detach(&lab, &cfgs, &format!("{ctx}, then detach"), &mut seen);
    }
    for id in &seen {
        assert!(prog_freed(*id), "program {id} still exists");
    }
    eprintln!("{} state-changing syscalls killed: {calls:?}", calls.len());
}

/// `n` named VIPs `<prefix>-i` at <base>.x.y.z.
fn named_vips(prefix: &str, base: u8, n: u32) -> String {
    let mut s = String::from("[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[vip]]\naddress = \"{base}.{}.{}.{}\"\nport = 80\nmark = {base}\nname = \"{prefix}-{i}\"\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    s
}

/// A reload that replaces most of a huge config takes over counter slots of removed VIPs;
/// those are reset (counters zeroed, new names written) right after the flip. Killed
/// exactly between the flip and that reset, `status` already names the new config, and
/// the next command finishes the reset from the post-flip journal.
#[test]
fn reload_killed_right_after_the_flip_is_finished_from_the_journal() {
    let lab = Lab::new("journal");
    // Just over half the 131,072 slots: 928 of the new VIPs must take over removed ones'.
    let n = 66_000;
    let a = lab.config("a.toml", &named_vips("a", 10, n));
    let b = lab.config("b.toml", &named_vips("b", 11, n));
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a)]);
    killed_at(
        &lab,
        "apply:flipped",
        &["reload", DEV, "--config", path_str(&b)],
    );
    let e = lab.my_status().expect("entry");
    assert_eq!(e["state"], "ok", "{e}");
    assert_eq!(
        e["config_path"].as_str(),
        Some(path_str(&b)),
        "status names the live config"
    );
    let out = lab.loader(&["reload", DEV, "--config", path_str(&b)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let note = stderr(&out);
    assert!(
        note.contains("finished an interrupted reload") && note.contains("counter slot(s) reset"),
        "{note}"
    );
    let s = lab.stats();
    let vips = s["vips"].as_array().expect("vips");
    assert_eq!(vips.len(), n as usize);
    let stale: Vec<&serde_json::Value> = vips
        .iter()
        .filter(|v| !v["name"].as_str().unwrap_or("").starts_with("b-"))
        .take(3)
        .collect();
    assert!(
        stale.is_empty(),
        "names of removed VIPs left on reused slots: {stale:?}"
    );
}

//! Putting the marker back first on its hook (what `reload`, `attach --position` and the
//! daemon do when something was put in front), killed with SIGKILL at every step: after
//! each kill `status` is truthful (hooked or "not hooked", never a program it does not
//! name), the next `reload` converges to exactly one marker, first, and nothing leaks
//! (no second tc filter of ours, no TCX link, no pins after `detach`).

use std::{
    os::fd::{BorrowedFd, OwnedFd},
    time::Duration,
};

use lvs_loader::bench_support::EmptyProgram;
use lvs_tests::{
    daemon::{DaemonLab, config_text, describe},
    lab::{DEV, path_str, tcx_or_skip},
};

/// The failpoints a command passes (`NAME#N` for the Nth pass of a name).
fn trace(lab: &DaemonLab, args: &[&str]) -> Vec<String> {
    let out = lab.loader_env(&[("LVS_FAILPOINT_TRACE", "1")], args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen: Vec<String> = Vec::new();
    let mut points = Vec::new();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(name) = line.strip_prefix("failpoint: ") {
            seen.push(name.to_owned());
            let n = seen.iter().filter(|s| *s == name).count();
            points.push(format!("{name}#{n}"));
        }
    }
    points
}

fn state(lab: &DaemonLab) -> (String, Option<u64>) {
    // (exit 1 when not ok)
    let out = lab.loader(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let e = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["interface"] == DEV))
        .cloned()
        .expect("an entry");
    (
        e["state"].as_str().unwrap_or("").to_owned(),
        e["program_id"].as_u64(),
    )
}

/// After a kill: what status says is what runs; then a reload converges (to first on
/// the hook when `first`; else to what `status --check` accepts as configured).
fn converge(lab: &DaemonLab, point: &str, cfg: &str, first: bool) {
    let (st, prog) = state(lab);
    let hooks = lab.hooks(DEV);
    let ours: Vec<_> = hooks.iter().filter(|h| h.is_marker()).collect();
    match st.as_str() {
        // (A netlink move killed between adding the new filter and removing the old one
        // leaves the same program in two filters for that moment: same marks.)
        "ok" => assert!(
            !ours.is_empty() && ours.iter().all(|h| h.prog_id.map(u64::from) == prog),
            "{point}: status ok but the hook is {}",
            describe(&hooks)
        ),
        "not hooked" => assert!(ours.is_empty(), "{point}: {}", describe(&hooks)),
        other => panic!("{point}: status {other}: {}", describe(&hooks)),
    }
    lab.loader_ok(&["reload", DEV, "--config", cfg]);
    let hooks = lab.hooks(DEV);
    assert!(
        !first || hooks[0].is_marker(),
        "{point}: not first: {}",
        describe(&hooks)
    );
    assert_eq!(
        hooks.iter().filter(|h| h.is_marker()).count(),
        1,
        "{point}: {}",
        describe(&hooks)
    );
    let (code, out) = lab.check(&[DEV]);
    assert_eq!(code, Some(0), "{point}: {out}");
}

fn intruder(lab: &DaemonLab, prog: &mut EmptyProgram) -> OwnedFd {
    let fd = prog.program_fd().expect("empty program fd");
    let _in = lab.director.enter();
    let ifindex =
        lvs_loader::sys::ifindex(&lvs_loader::IfName::new(DEV).unwrap()).expect("DEV exists");
    // SAFETY: the fd is owned by `prog`, alive for this call.
    let prog_fd = unsafe { BorrowedFd::borrow_raw(fd) };
    lvs_loader::bpf::tcx_link_create(prog_fd, ifindex, lvs_loader::bpf::BPF_F_BEFORE)
        .expect("attach a program in front")
}

#[test]
fn tcx_reorder_killed_at_every_step() {
    if !tcx_or_skip("tcx_reorder_killed_at_every_step") {
        return;
    }
    let lab = DaemonLab::new("rct");
    let cfg = lab.config("vips.toml", &config_text(0..20));
    let cfg = path_str(&cfg).to_owned();
    lab.loader_ok(&["attach", DEV, "--config", &cfg, "--mode", "tcx"]);
    let mut empty = EmptyProgram::load().unwrap();
    let mut link = Some(intruder(&lab, &mut empty));
    let points = trace(&lab, &["reload", DEV, "--config", &cfg]);
    assert!(
        points
            .iter()
            .any(|p| p.starts_with("reorder:link-detached")),
        "{points:?}"
    );
    for p in &points {
        // Something in front again, for each kill.
        drop(link.take());
        lvs_tests::daemon::wait_for("the other program to go", Duration::from_secs(5), || {
            lab.hooks(DEV).iter().all(|h| h.name != "lvs_empty")
        });
        link = Some(intruder(&lab, &mut empty));
        assert!(!lab.hooks(DEV)[0].is_marker());
        let out = lab.loader_env(&[("LVS_FAILPOINT", p)], &["reload", DEV, "--config", &cfg]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{p}: not killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        converge(&lab, p, &cfg, true);
        // The other program is still there, behind.
        assert_eq!(lab.hooks(DEV)[1].name, "lvs_empty");
    }
    eprintln!(
        "tcx reorder: killed at {} step(s), each converged",
        points.len()
    );
    drop(link);
    lab.loader_ok(&["detach", DEV]);
    assert!(lab.hooks(DEV).is_empty(), "{}", describe(&lab.hooks(DEV)));
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

#[test]
fn netlink_reorder_killed_at_every_step() {
    let lab = DaemonLab::new("rcn");
    let cfg = lab.config("vips.toml", &config_text(0..20));
    let cfg = path_str(&cfg).to_owned();
    // Someone's filter at priority 10, ours at 50 behind it; then `--position first`
    // moves ours to priority 1.
    lab.director
        .run("tc", &["qdisc", "add", "dev", DEV, "clsact"]);
    lab.director.run(
        "tc",
        &[
            "filter", "add", "dev", DEV, "ingress", "pref", "10", "protocol", "all", "u32",
            "match", "u32", "0", "0", "flowid", "1:1",
        ],
    );
    let setup = || {
        let _ = lab.loader(&["detach", DEV]);
        lab.loader_ok(&[
            "attach",
            DEV,
            "--config",
            &cfg,
            "--mode",
            "netlink",
            "--priority",
            "50",
        ]);
    };
    setup();
    let first = ["attach", DEV, "--config", &cfg, "--position", "first"];
    let points = trace(&lab, &first);
    assert!(
        points.iter().any(|p| p.starts_with("reorder:filter-added")),
        "{points:?}"
    );
    for p in &points {
        setup();
        let out = lab.loader_env(&[("LVS_FAILPOINT", p)], &first);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{p}: not killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        converge(&lab, p, &cfg, false);
        // One filter of ours, at priority 1 if the order change was recorded, at 50 if
        // the kill came first (then it is what status says it wants).
        let prefs: Vec<u16> = lab
            .hooks(DEV)
            .iter()
            .filter(|h| h.is_marker())
            .filter_map(|h| match h.position {
                lvs_loader::hook::HookPosition::Filter { priority, .. } => Some(priority),
                _ => None,
            })
            .collect();
        assert!(prefs == [1] || prefs == [50], "{p}: {prefs:?}");
    }
    eprintln!(
        "netlink reorder: killed at {} step(s), each converged",
        points.len()
    );
    lab.loader_ok(&["detach", DEV]);
    // Only someone else's filter (and qdisc) is left.
    let left = lab.hooks(DEV);
    assert!(
        !left.is_empty() && left.iter().all(|h| !h.is_marker()),
        "{}",
        describe(&left)
    );
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

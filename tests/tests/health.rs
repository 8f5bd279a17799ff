//! `status --check [IFACE...]` (what keepalived's vrrp_script runs): exit 0 only when
//! the marker is hooked on the interface of its name, in its namespace, first on the hook
//! (unless attached otherwise), with the config on disk unchanged since it was applied;
//! exit 1 and one line per problem for each way that can fail. And hook order:
//! `--position first|last`, `--priority N`, recorded and kept by re-hooks, what `status`
//! shows about it.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use lvs_loader::bench_support::EmptyProgram;
use lvs_tests::{
    daemon::{DaemonLab, config_text, describe},
    lab::{DEV, path_str, tcx_or_skip},
    netns::NetNs,
};

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

/// Asserts `status --check ARGS` exits `code` and its output contains `needle`.
fn check(lab: &DaemonLab, args: &[&str], code: i32, needle: &str) -> String {
    let (c, out) = lab.check(args);
    assert_eq!(c, Some(code), "status --check {args:?}:\n{out}");
    assert!(
        out.contains(needle),
        "status --check {args:?}: no {needle:?} in:\n{out}"
    );
    out
}

fn run_checks(lab: &DaemonLab, mode: &str) {
    let cfg = lab.config("vips.toml", &config_text(0..3));
    // Nothing attached: a named interface fails, and so does "every attachment" (none).
    check(lab, &[DEV], 1, "lvs0: not attached by lvs-loader");
    check(lab, &[], 1, "no interface attached");
    check(lab, &["nosuch0"], 1, "no such interface");
    lab.loader_ok(&["attach", DEV, "--config", path_str(&cfg), "--mode", mode]);
    check(lab, &[DEV], 0, "lvs0: ok: first on its hook");
    check(lab, &[], 0, "lvs0: ok");
    // JSON: the same verdict, machine-readable.
    let out = lab.loader(&["--json", "status", "--check", DEV]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["ok"], true, "{v}");

    // The config changed on disk since it was applied.
    std::fs::write(&cfg, config_text(0..4)).unwrap();
    let out = check(lab, &[DEV], 1, "changed since it was applied");
    assert!(out.contains("lvs-loader reload lvs0 --config"), "{out}");
    let out = lab.loader(&["--json", "status", "--check", DEV]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["problems"][0]["kind"], "config-changed", "{v}");
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    check(lab, &[DEV], 0, "ok");
    // ... or can't be read any more.
    std::fs::remove_file(&cfg).unwrap();
    check(lab, &[DEV], 1, "cannot read");
    std::fs::write(&cfg, config_text(0..4)).unwrap();
    check(lab, &[DEV], 0, "ok");

    // The hook removed.
    match mode {
        "netlink" => {
            lab.director
                .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
        }
        _ => {
            let dir = status_pin_dir(lab);
            let link = lvs_loader::bpf::obj_get(&dir.join("link")).unwrap();
            lvs_loader::bpf::link_detach(link.as_fd()).unwrap();
        }
    }
    check(lab, &[DEV], 1, "lvs0: not on the interface's hook");
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    check(lab, &[DEV], 0, "ok");

    // Renamed away: the name no longer carries it.
    lab.director.rename_link(DEV, "lvs0old");
    check(lab, &[DEV], 1, "lvs0:");
    lab.director.rename_link("lvs0old", DEV);
    check(lab, &[DEV], 0, "ok");

    // Moved to another namespace.
    let y = NetNs::new("hcy");
    lab.director.ip(&["link", "set", DEV, "netns", &y.name]);
    let out = check(lab, &[DEV], 1, "lvs0:");
    assert!(out.contains("moved") || out.contains("gone"), "{out}");
    y.ip(&["link", "set", DEV, "netns", &lab.director.name]);
    lab.director.ip(&["link", "set", DEV, "up"]);
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    check(lab, &[DEV], 0, "ok");

    // Deleted.
    lab.director.ip(&["link", "del", DEV]);
    check(lab, &[DEV], 1, "gone");
    lab.add_dev(DEV, "tx0");
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    check(lab, &[DEV], 0, "ok");
    lab.loader_ok(&["detach", DEV]);
}

fn status_pin_dir(lab: &DaemonLab) -> std::path::PathBuf {
    let v: serde_json::Value = serde_json::from_str(&lab.loader_ok(&["status", "--json"])).unwrap();
    let e = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == DEV)
        .unwrap();
    e["pin_dir"].as_str().unwrap().into()
}

#[test]
fn check_exit_codes_netlink() {
    let lab = DaemonLab::new("hcn");
    run_checks(&lab, "netlink");
}

#[test]
fn check_exit_codes_tcx_and_order() {
    if !tcx_or_skip("check_exit_codes_tcx_and_order") {
        return;
    }
    let lab = DaemonLab::new("hct");
    run_checks(&lab, "tcx");

    // Something put in front: flagged by status and --check; `reload` puts it back.
    let cfg = lab.config("vips.toml", &config_text(0..3));
    lab.loader_ok(&["attach", DEV, "--config", path_str(&cfg)]);
    let mut empty = EmptyProgram::load().unwrap();
    let link = intruder(&lab, &mut empty);
    let out = check(&lab, &[DEV], 1, "not first on the hook: tcx prog");
    assert!(out.contains("lvs_empty"), "{out}");
    let st = lab.loader(&["status"]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("not first on the hook"), "{text}");
    assert!(
        text.contains("on the hook, in order (wants first): tcx prog")
            && text.find("lvs_empty") < text.find("lvs_ingress (this)"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&lab.loader_ok(&["status", "--json"])).unwrap();
    assert_eq!(v[0]["in_front"][0]["name"], "lvs_empty", "{v}");
    assert_eq!(v[0]["order"], "first");
    let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    assert!(out.contains("re-hooked: put back first"), "{out}");
    let h = lab.hooks(DEV);
    assert!(
        h[0].is_marker() && h[1].name == "lvs_empty",
        "{}",
        describe(&h)
    );
    check(&lab, &[DEV], 0, "ok");
    drop(link);

    // Attached --position last: something in front is as configured.
    lab.loader_ok(&["detach", DEV]);
    let link = intruder(&lab, &mut empty);
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--position",
        "last",
    ]);
    let h = lab.hooks(DEV);
    assert!(
        h[0].name == "lvs_empty" && h[1].is_marker(),
        "{}",
        describe(&h)
    );
    check(&lab, &[DEV], 0, "hooked (last)");
    // The recorded order survives a re-hook: still last.
    let dir = status_pin_dir(&lab);
    let l = lvs_loader::bpf::obj_get(&dir.join("link")).unwrap();
    lvs_loader::bpf::link_detach(l.as_fd()).unwrap();
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    let h = lab.hooks(DEV);
    assert!(
        h[0].name == "lvs_empty" && h[1].is_marker(),
        "{}",
        describe(&h)
    );
    // `attach --position first` on the attached interface changes the order.
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--position",
        "first",
    ]);
    assert!(
        lab.hooks(DEV)[0].is_marker(),
        "{}",
        describe(&lab.hooks(DEV))
    );
    check(&lab, &[DEV], 0, "first on its hook");
    // A netlink attachment behind a TCX program can't be first: flagged.
    lab.loader_ok(&["detach", DEV]);
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "netlink",
    ]);
    let out = check(&lab, &[DEV], 1, "TCX programs run before every tc filter");
    assert!(out.contains("not first"), "{out}");
    // --priority is a tc priority: refused for TCX.
    lab.loader_ok(&["detach", DEV]);
    let out = lab.loader(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "tcx",
        "--priority",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tc filter priority, for --mode netlink"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.hooks(DEV).iter().all(|h| !h.is_marker()));
    drop(link);
}

#[test]
fn netlink_priorities() {
    let lab = DaemonLab::new("hcp");
    let cfg = lab.config("vips.toml", &config_text(0..3));
    let pref = |lab: &DaemonLab| -> Vec<(u16, String)> {
        lab.hooks(DEV)
            .into_iter()
            .filter_map(|h| match h.position {
                lvs_loader::hook::HookPosition::Filter { priority, .. } => Some((priority, h.name)),
                _ => None,
            })
            .collect()
    };
    // Default (first): priority 1, in front of someone's filter at 100.
    lab.director
        .run("tc", &["qdisc", "add", "dev", DEV, "clsact"]);
    lab.director.run(
        "tc",
        &[
            "filter", "add", "dev", DEV, "ingress", "pref", "100", "protocol", "all", "u32",
            "match", "u32", "0", "0", "flowid", "1:1",
        ],
    );
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "netlink",
    ]);
    let p = pref(&lab);
    assert_eq!(p[0], (1, "lvs_ingress".into()), "{p:?}");
    check(&lab, &[DEV], 0, "first on its hook");
    lab.loader_ok(&["detach", DEV]);
    // --position last: above 100 (behind the other filter, as asked).
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "netlink",
        "--position",
        "last",
    ]);
    assert_eq!(
        pref(&lab).last(),
        Some(&(101, "lvs_ingress".into())),
        "{:?}",
        pref(&lab)
    );
    check(&lab, &[DEV], 0, "hooked (last)");
    lab.loader_ok(&["detach", DEV]);
    // --priority 7: exactly 7, kept by a re-hook after the qdisc is deleted.
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "netlink",
        "--priority",
        "7",
    ]);
    assert_eq!(pref(&lab)[0], (7, "lvs_ingress".into()), "{:?}", pref(&lab));
    check(&lab, &[DEV], 0, "hooked (priority 7)");
    lab.director
        .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    assert_eq!(pref(&lab), vec![(7, "lvs_ingress".to_owned())]);
    lab.loader_ok(&["detach", DEV]);
    // A taken priority: refused, nothing left behind.
    lab.director
        .run("tc", &["qdisc", "add", "dev", DEV, "clsact"]);
    lab.director.run(
        "tc",
        &[
            "filter", "add", "dev", DEV, "ingress", "pref", "7", "protocol", "all", "u32", "match",
            "u32", "0", "0", "flowid", "1:1",
        ],
    );
    let out = lab.loader(&[
        "attach",
        DEV,
        "--config",
        path_str(&cfg),
        "--mode",
        "netlink",
        "--priority",
        "7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.hooks(DEV).iter().all(|h| !h.is_marker()));
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

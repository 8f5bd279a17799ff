//! Namespace lifecycle: an attached interface moved to another namespace (the TCX link
//! travels with it, a clsact qdisc does not), and a namespace deleted while attached
//! (its pins would hold their maps in kernel memory forever, and a new namespace that gets
//! the same inode number must not inherit them).

use std::path::Path;

use lvs_tests::{
    lab::{DEV, Lab, marker_prog_ids, path_str, prog_freed, stderr, tcx_or_skip},
    netns::{NetNs, PinRoot, loader_at, loader_ok_at, netns_inode, status_at},
};

const A: &str = lvs_tests::conf::WEB;

fn entry(entries: &[serde_json::Value], inode: u64) -> &serde_json::Value {
    entries
        .iter()
        .find(|e| {
            // (`netns_inode`: the starting code's JSON, so this test runs against it too.)
            (e["netns"]["inode"] == inode || e["netns_inode"] == inode) && e["interface"] == DEV
        })
        .unwrap_or_else(|| panic!("no entry for ns inode {inode}: {entries:?}"))
}

fn prog_id(e: &serde_json::Value) -> u32 {
    e["program_id"].as_u64().expect("program id") as u32
}

#[test]
fn tcx_interface_moved_to_another_namespace() {
    if !tcx_or_skip("tcx_interface_moved_to_another_namespace") {
        return;
    }
    let lab = Lab::new("mvt");
    let a = lab.config("a.toml", A);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a), "--mode", "tcx"]);
    let x = netns_inode(&lab.director);
    let prog = prog_id(&lab.my_status().expect("entry"));
    let y = NetNs::new("mvty");
    lab.director.ip(&["link", "set", DEV, "netns", &y.name]);
    // The program went with the device.
    assert_eq!(marker_prog_ids(&y, DEV), vec![prog]);

    // status, from the old and from the new namespace: moved, and where to.
    for ns in [&lab.director, &y] {
        let (code, entries) = status_at(&lab.pins.path, &ns.name);
        assert_eq!(code, Some(1), "status fails while it is not ok");
        let e = entry(&entries, x);
        assert_eq!(e["state"], "moved", "{e}");
        let detail = e["detail"].as_str().unwrap_or("");
        assert!(detail.contains(&y.name) && detail.contains("lvs0"), "{e}");
    }

    // An attach in the new namespace must not stack a second marker.
    let out = loader_at(
        &lab.pins.path,
        &y.name,
        &["attach", DEV, "--config", path_str(&a)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("already carries an lvs-ebpf program") && err.contains("moved here"),
        "{err}"
    );
    assert_eq!(marker_prog_ids(&y, DEV), vec![prog], "still one marker");

    // detach in the old namespace still removes it.
    lab.loader_ok(&["detach", DEV]);
    assert!(
        marker_prog_ids(&y, DEV).is_empty(),
        "the moved marker was not detached"
    );
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(prog_freed(prog));
}

#[test]
fn tcx_moved_marker_is_detached_from_its_new_namespace() {
    if !tcx_or_skip("tcx_moved_marker_is_detached_from_its_new_namespace") {
        return;
    }
    let lab = Lab::new("mvd");
    let a = lab.config("a.toml", A);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a), "--mode", "tcx"]);
    let prog = prog_id(&lab.my_status().expect("entry"));
    let y = NetNs::new("mvdy");
    lab.director.ip(&["link", "set", DEV, "netns", &y.name]);
    let out = loader_ok_at(&lab.pins.path, &y.name, &["detach", DEV]);
    assert!(
        out.contains("detached") && out.contains("network namespace"),
        "{out}"
    );
    assert!(marker_prog_ids(&y, DEV).is_empty());
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(prog_freed(prog));
    // Now a fresh attach there is fine.
    loader_ok_at(
        &lab.pins.path,
        &y.name,
        &["attach", DEV, "--config", path_str(&a)],
    );
    loader_ok_at(&lab.pins.path, &y.name, &["detach", DEV]);
}

#[test]
fn netlink_interface_moved_to_another_namespace() {
    let lab = Lab::new("mvn");
    let a = lab.config("a.toml", A);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a), "--mode", "netlink"]);
    let x = netns_inode(&lab.director);
    let prog = prog_id(&lab.my_status().expect("entry"));
    let y = NetNs::new("mvny");
    lab.director.ip(&["link", "set", DEV, "netns", &y.name]);
    // The kernel drops a device's qdiscs (and our filter) when it changes namespace.
    assert!(marker_prog_ids(&y, DEV).is_empty());
    let (code, entries) = status_at(&lab.pins.path, &lab.director.name);
    assert_eq!(code, Some(1));
    assert_eq!(entry(&entries, x)["state"], "interface gone", "{entries:?}");
    // A reload fails loudly instead of "reloaded" with nothing hooked.
    let out = lab.loader(&["reload", DEV, "--config", path_str(&a)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the interface is gone"),
        "{}",
        stderr(&out)
    );
    // In the new namespace the interface is free to attach.
    loader_ok_at(
        &lab.pins.path,
        &y.name,
        &["attach", DEV, "--config", path_str(&a)],
    );
    loader_ok_at(&lab.pins.path, &y.name, &["detach", DEV]);
    lab.loader_ok(&["detach", DEV]);
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(prog_freed(prog));
}

fn attach_in_own_namespace(pins: &Path, tag: &str, mode: &str, cfg: &Path) -> (NetNs, u64, u32) {
    let z = NetNs::new(tag);
    z.ip(&["link", "add", DEV, "type", "veth", "peer", "name", "lvs0p"]);
    z.ip(&["link", "set", DEV, "up"]);
    loader_ok_at(
        pins,
        &z.name,
        &["attach", DEV, "--config", path_str(cfg), "--mode", mode],
    );
    let ino = netns_inode(&z);
    let (_, entries) = status_at(pins, &z.name);
    let prog = prog_id(entry(&entries, ino));
    (z, ino, prog)
}

#[test]
fn deleted_namespace_is_reported_and_freed() {
    let pins = PinRoot::new("nsgone");
    let dir = std::env::temp_dir().join(format!("lvs-nsgone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("a.toml");
    std::fs::write(&cfg, A).expect("config");
    let mode = if lvs_loader::sys::supports_tcx() {
        "tcx"
    } else {
        "netlink"
    };
    let (z, ino, prog) = attach_in_own_namespace(&pins.path, "nsgz", mode, &cfg);
    let (z2, ino2, prog2) = attach_in_own_namespace(&pins.path, "nsgz2", "netlink", &cfg);
    drop(z);
    drop(z2);
    let w = NetNs::new("nsgw");
    let (code, entries) = status_at(&pins.path, &w.name);
    assert_eq!(code, Some(1), "{entries:?}");
    for i in [ino, ino2] {
        let e = entry(&entries, i);
        assert_eq!(e["state"], "namespace gone", "{e}");
        assert!(
            e["detail"].as_str().unwrap_or("").contains("--orphans"),
            "{e}"
        );
    }

    // A new namespace that gets the dead one's inode number inherits nothing.
    let mut reused = None;
    for _ in 0..40 {
        let n = NetNs::new("nsgr");
        if netns_inode(&n) == ino || netns_inode(&n) == ino2 {
            reused = Some(n);
            break;
        }
        drop(n);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    match &reused {
        Some(n) => {
            n.ip(&["link", "add", DEV, "type", "veth", "peer", "name", "lvs0p"]);
            for args in [
                vec!["stats", DEV],
                vec!["reload", DEV, "--config", path_str(&cfg)],
            ] {
                let out = loader_at(&pins.path, &n.name, &args);
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{args:?} inherited a dead namespace's pins"
                );
                assert!(stderr(&out).contains("is not attached"), "{}", stderr(&out));
            }
        }
        None => eprintln!(
            "note: no namespace reused inode {ino}/{ino2} within 2 s; inheritance not exercised"
        ),
    }
    drop(reused);

    let out = loader_ok_at(&pins.path, &w.name, &["detach", "--orphans", "--json"]);
    let freed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(freed.as_array().map(Vec::len), Some(2), "{freed}");
    assert!(pins.leftovers().is_empty(), "{:?}", pins.leftovers());
    assert!(
        prog_freed(prog) && prog_freed(prog2),
        "the orphans' programs still exist"
    );
    let (code, entries) = status_at(&pins.path, &w.name);
    assert_eq!((code, entries.len()), (Some(0), 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test helpers' own hygiene: a test process killed outright leaves its namespaces
/// and pin roots behind; the next test process removes those of dead processes and
/// never those of a live one.
#[test]
fn leftovers_of_dead_test_processes_are_removed() {
    // A pid that existed and is gone now.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait");
    let live = std::process::id();
    let ns = |pid: u32| format!("lvst-reap-{pid}-0");
    let pins = |pid: u32| std::path::PathBuf::from(format!("/sys/fs/bpf/lvs-test-reap-{pid}-0"));
    for pid in [dead, live] {
        lvs_tests::netns::run_ok(std::process::Command::new("ip").args(["netns", "add", &ns(pid)]));
        std::fs::create_dir_all(pins(pid).join("eth0")).expect("pin dir");
    }
    let removed = lvs_tests::reap::stale_leftovers();
    assert!(
        removed.contains(&format!("netns {}", ns(dead))),
        "{removed:?}"
    );
    assert!(!Path::new("/run/netns").join(ns(dead)).exists());
    assert!(!pins(dead).exists(), "the dead process's pin root is gone");
    // The live process's (ours) stay.
    assert!(Path::new("/run/netns").join(ns(live)).exists());
    assert!(pins(live).join("eth0").exists());
    lvs_tests::netns::run_ok(std::process::Command::new("ip").args(["netns", "del", &ns(live)]));
    std::fs::remove_dir_all(pins(live)).expect("remove our pin root");
}

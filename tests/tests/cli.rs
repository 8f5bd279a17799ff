//! The CLI's behaviour on bad input and missing preconditions: clear errors, exit code 1,
//! and nothing changed.

use std::{
    net::{IpAddr, Ipv4Addr},
    process::Command,
};

use lvs_tests::{
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str, stderr},
    netns::loader_bin,
};

const GOOD: &str = lvs_tests::conf::WEB;
const BAD: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[vip]]\naddress = \"119.253.282.6\"\nport = 80\nmark = 0x5\n";

fn web() -> Vec<u8> {
    Frame::v4(
        [0x52, 0x54, 0, 1, 2, 3],
        Ipv4Addr::new(172, 17, 85, 100),
        Ipv4Addr::new(172, 17, 85, 56),
        IPPROTO_TCP,
        1,
        80,
    )
    .with_dst_mac(DIRECTOR_MAC)
    .bytes()
}

#[test]
fn a_bad_reload_changes_nothing() {
    let lab = Lab::new("badrl");
    let good = lab.config("good.toml", GOOD);
    let bad = lab.config("bad.toml", BAD);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&good)]);
    let status_before = lab.loader_ok(&["status", "--json"]);
    let stats_before = lab.stats();

    let out = lab.loader(&["reload", DEV, "--config", path_str(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:4:11: vip[1].address:", bad.display())),
        "{err}"
    );
    assert!(err.contains("119.253.282.6"), "{err}");
    // attach with a bad config on an attached interface: the same.
    let out = lab.loader(&["attach", DEV, "--config", path_str(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    assert_eq!(
        lab.loader_ok(&["status", "--json"]),
        status_before,
        "status changed"
    );
    assert_eq!(lab.stats(), stats_before, "maps changed");
    let vip: IpAddr = Ipv4Addr::new(172, 17, 85, 56).into();
    lab.watch_marks(&[vip], &[3, 5]);
    lab.send(&[web()]);
    assert_eq!(lab.mark_count(vip, 3), 1, "the old config still marks");
}

#[test]
fn a_bad_attach_leaves_nothing() {
    let lab = Lab::new("badat");
    let bad = lab.config("bad.toml", BAD);
    let out = lab.loader(&["attach", DEV, "--config", path_str(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert_eq!(lab.ingress_hooks().trim(), "");
}

#[test]
fn unknown_interface() {
    let lab = Lab::new("noif");
    let good = lab.config("good.toml", GOOD);
    let out = lab.loader(&["attach", "nosuch0", "--config", path_str(&good)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("interface \"nosuch0\" does not exist"),
        "{}",
        stderr(&out)
    );
    let out = lab.loader(&["stats", "nosuch0"]);
    assert!(
        stderr(&out).contains("interface \"nosuch0\" does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn interface_not_attached() {
    let lab = Lab::new("notat");
    let good = lab.config("good.toml", GOOD);
    for args in [
        vec!["stats", DEV],
        vec!["detach", DEV],
        vec!["reload", DEV, "--config", path_str(&good)],
    ] {
        let out = lab.loader(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("lvs0 is not attached by lvs-loader"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("lvs-loader attach lvs0 --config FILE"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_privileges_are_named() {
    let dir = std::env::temp_dir().join(format!("lvs-cli-priv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vips.toml");
    std::fs::write(&cfg, GOOD).expect("write");
    // As nobody, without capabilities: refused before anything is touched.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(loader_bin())
        .args([
            "--pin-dir",
            "/sys/fs/bpf/lvs-cli-priv-never",
            "attach",
            "lo",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .expect("setpriv");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN"),
        "{err}"
    );
    assert!(err.contains("run it as root"), "{err}");
    assert!(!std::path::Path::new("/sys/fs/bpf/lvs-cli-priv-never").exists());
}

#[test]
fn pin_dir_not_on_bpffs() {
    let lab = Lab::new("nobpffs");
    let good = lab.config("good.toml", GOOD);
    let out = Command::new(loader_bin())
        .args([
            "--pin-dir",
            "/tmp/lvs-not-bpffs/pins",
            "--netns",
            &lab.director.name,
            "attach",
            DEV,
            "--config",
        ])
        .arg(&good)
        .output()
        .expect("loader");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not on a bpf filesystem: mount one with `mount -t bpf bpf DIR`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(lab.ingress_hooks().trim(), "", "nothing attached");
}

#[test]
fn unknown_netns() {
    let out = Command::new(loader_bin())
        .args(["--netns", "lvs-no-such-ns", "status"])
        .output()
        .expect("loader");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("network namespace \"lvs-no-such-ns\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_validates_only() {
    let lab = Lab::new("check");
    let good = lab.config("good.toml", GOOD);
    let bad = lab.config("bad.toml", BAD);
    let out = Command::new(loader_bin())
        .args(["check", "--config", path_str(&good), "--json"])
        .output()
        .expect("loader");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["vips"][0]["name"], "web");
    assert_eq!(v["vips"][0]["mark"], 3);
    assert_eq!(v["peers"][0]["mac"], "00:0c:29:57:88:ce");
    let out = Command::new(loader_bin())
        .args(["check", "--config", path_str(&bad)])
        .output()
        .expect("loader");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "bad.toml:4:11: vip[1].address: \"119.253.282.6\" is not a valid IPv4 address"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tcx_mode_on_an_old_kernel_is_refused_clearly() {
    if lvs_loader::sys::supports_tcx() {
        eprintln!(
            "SKIP: this kernel has TCX; the refusal is exercised on 6.1 in `cargo xtask vm-test`"
        );
        return;
    }
    let lab = Lab::new("oldk");
    let good = lab.config("good.toml", GOOD);
    let out = lab.loader(&["attach", DEV, "--config", path_str(&good), "--mode", "tcx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--mode tcx needs Linux >= 6.6"),
        "{}",
        stderr(&out)
    );
    // auto falls back to netlink
    let out = lab.loader_ok(&["attach", DEV, "--config", path_str(&good), "--json"]);
    assert!(out.contains("\"mode\": \"netlink\""), "{out}");
}

#[test]
fn prometheus_output() {
    let lab = Lab::new("prom");
    let good = lab.config("good.toml", GOOD);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&good)]);
    lab.send(&[web(), web()]);
    let text = lab.loader_ok(&["stats", DEV, "--prometheus"]);
    assert!(
        text.contains("lvs_ebpf_vip_marked_packets_total{interface=\"lvs0\",vip=\"172.17.85.56\",port=\"80\",protocol=\"tcp\",mark=\"0x3\",name=\"web\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE lvs_ebpf_vip_peer_packets_total counter"),
        "{text}"
    );
}

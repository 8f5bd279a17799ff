//! The loader end to end in real network namespaces: attach (TCX and netlink), traffic
//! from a veth, the marks the kernel's netfilter then sees, counters equal to what was
//! sent, reload, detach leaving nothing behind, pins surviving the loader's exit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_tests::{
    frames::{Frame, IPPROTO_TCP, IPPROTO_UDP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str, stderr, tcx_or_skip},
    netns::loader_ok_at,
};

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0xc1, 0x1e, 0x01];
const PEER: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
const VIP2: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 60);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x56);
const SRC: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 100);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

const CONFIG: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CE"
name = "dr2"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x3
name = "web"

[[vip]]
address = "2001:db8::56"
port = 80
mark = 0x6
name = "web6"
"#;

const CONFIG2: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CE"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x5
name = "web"

[[vip]]
address = "172.17.85.60"
protocol = "udp"
mark = 0x7
name = "dns-all-ports"
"#;

fn to_director(f: Frame) -> Vec<u8> {
    f.with_dst_mac(DIRECTOR_MAC).bytes()
}

fn web(src_mac: [u8; 6]) -> Vec<u8> {
    to_director(Frame::v4(src_mac, SRC, VIP, IPPROTO_TCP, 40000, 80))
}

fn web6(src_mac: [u8; 6]) -> Vec<u8> {
    to_director(Frame::v6(src_mac, SRC6, VIP6, IPPROTO_TCP, 40000, 80))
}

fn n(frame: Vec<u8>, count: usize) -> Vec<Vec<u8>> {
    vec![frame; count]
}

/// Attach, send, check kernel-seen marks and counters, reload, detach.
fn lifecycle(mode: &str) {
    let lab = Lab::new(&format!("lc{}", &mode[..2]));
    let v4: IpAddr = VIP.into();
    let v6: IpAddr = VIP6.into();
    let v4b: IpAddr = VIP2.into();
    lab.watch_marks(&[v4, v4b], &[0, 3, 5, 7]);
    lab.watch_marks(&[v6], &[0, 6]);
    let c1 = lab.config("vips.toml", CONFIG);
    let out = lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&c1),
        "--mode",
        mode,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("attach JSON");
    assert_eq!(report["action"], "attached", "{report}");
    assert_eq!(report["mode"], mode, "{report}");
    assert_eq!(report["vips"], 2);

    // The loader has exited; its pins keep the program and maps alive.
    assert!(
        lab.pins.leftovers().iter().any(|p| p.ends_with("prog")),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(
        lab.ingress_hooks().contains("lvs_ingress"),
        "hook missing: {}",
        lab.ingress_hooks()
    );

    lab.send(&n(web(CLIENT), 7));
    lab.send(&n(web(PEER), 4));
    lab.send(&n(web6(CLIENT), 3));
    lab.send(&n(web6(PEER), 2));
    lab.send(&n(
        to_director(Frame::v4(CLIENT, SRC, VIP, IPPROTO_TCP, 1, 81)),
        5,
    ));

    assert_eq!(
        lab.mark_count(v4, 3),
        7,
        "marked v4 packets seen by netfilter"
    );
    assert_eq!(
        lab.mark_count(v4, 0),
        4 + 5,
        "peer and non-VIP-port packets stay unmarked"
    );
    assert_eq!(lab.mark_count(v6, 6), 3);
    assert_eq!(lab.mark_count(v6, 0), 2);

    let s = lab.stats();
    let web_s = &s["vips"][0];
    assert_eq!(web_s["name"], "web", "{s}");
    assert_eq!(web_s["address"], "172.17.85.56");
    assert_eq!(web_s["port"], 80);
    assert_eq!(web_s["protocol"], "tcp");
    assert_eq!(web_s["mark"], 3);
    assert_eq!(web_s["marked_packets"], 7, "{s}");
    assert_eq!(web_s["marked_bytes"], 7 * web(CLIENT).len() as u64, "{s}");
    assert_eq!(web_s["peer_packets"], 4, "{s}");
    assert_eq!(web_s["peer_bytes"], 4 * web(PEER).len() as u64, "{s}");
    assert_eq!(s["vips"][1]["marked_packets"], 3, "{s}");
    assert_eq!(s["vips"][1]["peer_packets"], 2, "{s}");
    assert_eq!(s["totals"]["marked_packets"], 10, "{s}");
    assert_eq!(s["totals"]["no_vip"], 5, "{s}");
    assert!(
        s["totals"]["packets_seen"].as_u64().unwrap_or(0) >= 21,
        "{s}"
    );
    assert_eq!(s["peers"][0], "00:0c:29:57:88:ce");

    // status
    let st: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["status", "--json"])).expect("status JSON");
    let me = st
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["current_netns"] == true)
        .expect("our entry");
    assert_eq!(me["interface"], DEV);
    assert_eq!(me["mode"], mode);
    assert_eq!(me["state"], "ok");
    assert_eq!(me["vips"], 2);
    assert_eq!(me["peers"], 1);
    assert_eq!(me["config_path"], path_str(&c1));
    assert!(me["program_id"].as_u64().is_some(), "{me}");

    // reload: web's mark changes, web6 goes away, an any-port UDP VIP arrives
    let c2 = lab.config("vips2.toml", CONFIG2);
    let r: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["reload", DEV, "--config", path_str(&c2), "--json"]))
            .expect("JSON");
    assert_eq!(
        (
            r["added"].as_u64(),
            r["removed"].as_u64(),
            r["kept"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{r}"
    );
    lab.send(&n(web(CLIENT), 2));
    lab.send(&n(web6(CLIENT), 1));
    lab.send(&n(
        to_director(Frame::v4(CLIENT, SRC, VIP2, IPPROTO_UDP, 1, 5353)),
        3,
    ));
    assert_eq!(lab.mark_count(v4, 5), 2, "new mark after reload");
    assert_eq!(lab.mark_count(v6, 0), 3, "removed VIP no longer marked");
    assert_eq!(lab.mark_count(v4b, 7), 3, "added any-port VIP marked");
    let s = lab.stats();
    assert_eq!(
        s["vips"][0]["marked_packets"], 9,
        "kept VIP keeps its counters: {s}"
    );
    assert_eq!(
        s["vips"][1]["port"],
        serde_json::Value::Null,
        "any-port VIP has port null: {s}"
    );

    // detach: nothing left
    lab.loader_ok(&["detach", DEV]);
    assert!(
        lab.pins.leftovers().is_empty(),
        "pins left: {:?}",
        lab.pins.leftovers()
    );
    assert_eq!(lab.ingress_hooks().trim(), "", "hooks left after detach");
    lab.send(&n(web(CLIENT), 2));
    assert_eq!(lab.mark_count(v4, 5), 2, "no marking after detach");
    if mode == "netlink" {
        let q = lab.director.run("tc", &["qdisc", "show", "dev", DEV]);
        assert!(
            !q.contains("clsact"),
            "the clsact qdisc we created is gone: {q}"
        );
    }
}

#[test]
fn tcx_lifecycle() {
    if tcx_or_skip("tcx_lifecycle") {
        lifecycle("tcx");
    }
}

#[test]
fn netlink_lifecycle() {
    lifecycle("netlink");
}

#[test]
fn attach_twice_is_a_reload() {
    let lab = Lab::new("twice");
    let c1 = lab.config("a.toml", CONFIG);
    let c2 = lab.config("b.toml", CONFIG2);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c1)]);
    let out = lab.loader_ok(&["attach", DEV, "--config", path_str(&c2), "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(r["action"], "reloaded", "{r}");
    let hooks = lab.ingress_hooks();
    // One line per hooked program (a tc filter line names lvs_ingress twice: filter and
    // program name).
    assert_eq!(
        hooks.lines().filter(|l| l.contains("lvs_ingress")).count(),
        1,
        "exactly one program attached: {hooks}"
    );
}

#[test]
fn two_namespaces_with_the_same_interface_name() {
    let a = Lab::new("twa");
    let b = Lab::new("twb");
    let ca = a.config("a.toml", CONFIG);
    let cb = b.config("b.toml", CONFIG2);
    // Same pin root for both: the namespace keeps them apart.
    let shared = a.pins.path.clone();
    let attach = |lab: &Lab, cfg: &std::path::Path| {
        loader_ok_at(
            &shared,
            &lab.director.name,
            &["attach", DEV, "--config", path_str(cfg)],
        );
    };
    attach(&a, &ca);
    attach(&b, &cb);
    let v4: IpAddr = VIP.into();
    a.watch_marks(&[v4], &[3, 5]);
    b.watch_marks(&[v4], &[3, 5]);
    a.send(&n(web(CLIENT), 2));
    b.send(&n(web(CLIENT), 3));
    assert_eq!((a.mark_count(v4, 3), a.mark_count(v4, 5)), (2, 0));
    assert_eq!((b.mark_count(v4, 3), b.mark_count(v4, 5)), (0, 3));
    let ns_dirs: Vec<_> = std::fs::read_dir(&shared)
        .expect("pin root")
        .flatten()
        .collect();
    assert_eq!(ns_dirs.len(), 2, "one pin directory per namespace");
    // Detaching one leaves the other running.
    loader_ok_at(&shared, &a.director.name, &["detach", DEV]);
    b.send(&n(web(CLIENT), 1));
    assert_eq!(b.mark_count(v4, 5), 4);
    loader_ok_at(&shared, &b.director.name, &["detach", DEV]);
    assert!(a.pins.leftovers().is_empty(), "{:?}", a.pins.leftovers());
}

#[test]
fn netlink_detach_leaves_other_filters_and_qdisc() {
    let lab = Lab::new("others");
    lab.director
        .run("tc", &["qdisc", "add", "dev", DEV, "clsact"]);
    lab.director.run(
        "tc",
        &[
            "filter", "add", "dev", DEV, "ingress", "pref", "60000", "protocol", "all", "u32",
            "match", "u32", "0", "0", "flowid", "1:1",
        ],
    );
    let c = lab.config("a.toml", CONFIG);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c), "--mode", "netlink"]);
    // Someone else's u32 filter, after ours (pref 60000).
    let filters = lab
        .director
        .run("tc", &["filter", "show", "dev", DEV, "ingress"]);
    assert!(
        filters.contains("u32") && filters.contains("lvs_ingress"),
        "{filters}"
    );
    lab.loader_ok(&["detach", DEV]);
    let filters = lab
        .director
        .run("tc", &["filter", "show", "dev", DEV, "ingress"]);
    assert!(filters.contains("u32"), "other filter removed: {filters}");
    assert!(!filters.contains("lvs_ingress"), "{filters}");
    let q = lab.director.run("tc", &["qdisc", "show", "dev", DEV]);
    assert!(
        q.contains("clsact"),
        "someone else's clsact was removed: {q}"
    );
}

#[test]
fn tcx_runs_alongside_other_programs() {
    if !tcx_or_skip("tcx_runs_alongside_other_programs") {
        return;
    }
    // Another user's program on the same hook, attached first: ours must not stop it and
    // it must not stop us (both return TCX_NEXT / TC_ACT_UNSPEC).
    let lab = Lab::new("alongside");
    let c = lab.config("a.toml", CONFIG);
    let other = lab.config("other.toml", CONFIG2);
    let other_pins = lvs_tests::netns::PinRoot::new("other");
    loader_ok_at(
        &other_pins.path,
        &lab.director.name,
        &["attach", DEV, "--config", path_str(&other), "--mode", "tcx"],
    );
    // Another lvs-ebpf marker is already there: refused unless asked for.
    let out = lab.loader(&["attach", DEV, "--config", path_str(&c), "--mode", "tcx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already carries an lvs-ebpf program")
            && stderr(&out).contains("another --pin-dir"),
        "{}",
        stderr(&out)
    );
    lab.loader_ok(&[
        "attach",
        DEV,
        "--config",
        path_str(&c),
        "--mode",
        "tcx",
        "--allow-stacking",
        "--position",
        "last",
    ]);
    let v4: IpAddr = VIP.into();
    lab.watch_marks(&[v4], &[3, 5]);
    lab.send(&n(web(CLIENT), 2));
    // Both ran: the one that runs last (ours, mark 3, --position last) wins.
    assert_eq!(lab.mark_count(v4, 3), 2);
    let s = lab.stats();
    assert_eq!(s["vips"][0]["marked_packets"], 2);
    lab.loader_ok(&["detach", DEV]);
    assert!(
        lab.ingress_hooks().contains("lvs_ingress"),
        "the other program must stay attached"
    );
    loader_ok_at(&other_pins.path, &lab.director.name, &["detach", DEV]);
}

#[test]
fn short_ip_frames_are_counted_as_malformed() {
    let lab = Lab::new("short");
    let c = lab.config("a.toml", CONFIG);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
    // Ethernet header + 10 bytes claiming IPv4 / IPv6: BPF_PROG_TEST_RUN refuses these,
    // a veth delivers them.
    let mut f = web(CLIENT);
    f.truncate(14 + 10);
    lab.sender().send(&f);
    let mut f6 = web6(CLIENT);
    f6.truncate(14 + 30);
    lab.sender().send(&f6);
    let s = lab.stats();
    assert_eq!(s["totals"]["malformed"], 2, "{s}");
    assert_eq!(s["totals"]["marked_packets"], 0, "{s}");
}

#[test]
fn attach_rehooks_when_someone_removed_the_filter() {
    let lab = Lab::new("rehook");
    let c = lab.config("a.toml", CONFIG);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c), "--mode", "netlink"]);
    // Someone deletes the clsact qdisc (and our filter with it).
    lab.director
        .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
    let out = lab.loader(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "status fails when not ok");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let me = st
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["current_netns"] == true)
        .expect("entry");
    assert_eq!(me["state"], "not hooked", "{me}");
    // attach again: hooked again (and says so), not a reload of maps nobody reads; and no
    // stray tool output (the starting code printed tc's "Error: Invalid handle.").
    let out = lab.loader(&[
        "attach",
        DEV,
        "--config",
        path_str(&c),
        "--mode",
        "netlink",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing on stderr");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["action"], "re-hooked", "{r}");
    let v4: IpAddr = VIP.into();
    lab.watch_marks(&[v4], &[3]);
    lab.send(&n(web(CLIENT), 2));
    assert_eq!(lab.mark_count(v4, 3), 2);
}

/// `reload` on an attachment whose hook someone removed must hook it again and say so,
/// not print "reloaded" while nothing marks (defect 10).
fn reload_rehooks(mode: &str) {
    let lab = Lab::new(&format!("rh{}", &mode[..2]));
    let c = lab.config("a.toml", CONFIG);
    let c2 = lab.config("b.toml", CONFIG2);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c), "--mode", mode]);
    if mode == "netlink" {
        lab.director
            .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
    } else {
        use std::os::fd::AsFd as _;
        let e = lab.my_status().expect("entry");
        let dir = std::path::PathBuf::from(e["pin_dir"].as_str().expect("pin_dir"));
        let link = lvs_loader::bpf::obj_get(&dir.join("link")).expect("link pin");
        lvs_loader::bpf::link_detach(link.as_fd()).expect("detach the link");
    }
    let v4: IpAddr = VIP.into();
    lab.watch_marks(&[v4], &[0, 5]);
    lab.send(&n(web(CLIENT), 2));
    assert_eq!(lab.mark_count(v4, 0), 2, "nothing marks while unhooked");
    let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&c2)]);
    assert!(out.contains("re-hooked"), "{out}");
    lab.send(&n(web(CLIENT), 3));
    assert_eq!(lab.mark_count(v4, 5), 3, "marked again after the reload");
    let (code, _) = lab.status();
    assert_eq!(code, Some(0));
    assert_eq!(lab.marker_prog_ids().len(), 1);
}

#[test]
fn netlink_reload_rehooks_after_the_qdisc_was_deleted() {
    reload_rehooks("netlink");
}

#[test]
fn tcx_reload_rehooks_after_the_link_was_detached() {
    if tcx_or_skip("tcx_reload_rehooks_after_the_link_was_detached") {
        reload_rehooks("tcx");
    }
}

#[test]
fn reload_fails_loudly_when_the_interface_is_gone() {
    let lab = Lab::new("ifgone");
    let c = lab.config("a.toml", CONFIG);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
    lab.director.ip(&["link", "del", DEV]);
    let out = lab.loader(&["reload", DEV, "--config", path_str(&c)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("the interface is gone"),
        "{}",
        stderr(&out)
    );
    let (code, _) = lab.status();
    assert_eq!(code, Some(1), "status fails: not ok");
    assert_eq!(lab.my_status().expect("entry")["state"], "interface gone");
    lab.loader_ok(&["detach", DEV]);
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

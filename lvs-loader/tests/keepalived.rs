//! `check --keepalived` and `--peer-config` on good and broken configurations (with
//! includes), compared with real keepalived (`keepalived -t`). The checks that look at
//! this host's MACs run in a fresh network namespace whose interfaces carry DR1's (or
//! DR2's) MACs from the seed example (root needed, like the rest of `cargo xtask test`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/keepalived")
        .join(f)
}

const DR1_MACS: [(&str, &str); 2] = [("eth0", "00:0c:29:dc:d2:6b"), ("eth1", "00:0c:29:dc:d2:75")];
const DR2_MACS: [(&str, &str); 2] = [("eth0", "00:0c:29:57:88:ce"), ("eth1", "00:0c:29:57:88:d8")];

/// Runs `prog args` in a new network namespace with veth interfaces named and addressed
/// as `macs` (so keepalived finds its interfaces and lvs-loader this host's MACs).
fn in_netns(macs: &[(&str, &str)], prog: &str, args: &[&str]) -> Output {
    let mut script = String::new();
    for (i, (dev, mac)) in macs.iter().enumerate() {
        script.push_str(&format!(
            "ip link add {dev} address {mac} type veth peer name lvskp{i} || exit 97; "
        ));
    }
    script.push_str("exec \"$@\"");
    Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script, "sh", prog])
        .args(args)
        .output()
        .expect("unshare")
}

fn check(macs: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let o = in_netns(macs, env!("CARGO_BIN_EXE_lvs-loader"), &a);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), out)
}

fn p(f: &str) -> String {
    data(f).to_str().unwrap().to_owned()
}

#[test]
fn keepalived_itself_accepts_the_good_config() {
    let o = in_netns(
        &DR1_MACS,
        "keepalived",
        &["-t", "-f", &p("good/keepalived.conf")],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "keepalived -t: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // And rejects the broken one (a missing include, an empty virtual server...).
    let o = in_netns(
        &DR1_MACS,
        "keepalived",
        &["-t", "-f", &p("broken/keepalived.conf")],
    );
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn good_config_passes_on_dr1() {
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--keepalived",
            &p("good/keepalived.conf"),
            "--peer-config",
            &p("dr2-vips.toml"),
        ],
    );
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("keepalived: 5 file(s) read; 0 problem(s), 0 warning(s)"),
        "{out}"
    );
}

#[test]
fn broken_config_reports_every_problem_with_its_line() {
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--keepalived",
            &p("broken/keepalived.conf"),
        ],
    );
    assert_eq!(rc, 1, "{out}");
    let web = p("broken/conf.d/10-web.conf");
    let main = p("broken/keepalived.conf");
    let cfg = p("dr1-vips.toml");
    let want = [
        format!(
            "{web}:1: problem: virtual_server 172.17.85.56 80 schedules 172.17.85.56:80/tcp by address, not by mark"
        ),
        format!(
            "{web}:10: problem: virtual_server fwmark 7 is inet, but mark 0x7 is set on IPv6 VIPs"
        ),
        format!(
            "{web}:18: problem: virtual_server fwmark 9 (inet): no VIP in the config has mark 0x9"
        ),
        format!(
            "{web}:26: problem: virtual_server fwmark 5 has no real_server: keepalived ignores it"
        ),
        format!(
            "{main}:3: problem: mark 0x5 (5) is one keepalived allocates itself: nftables_ipvs marks 2 virtual server group(s) from 5 up (5-6)"
        ),
        format!("{main}:18: problem: include conf.d/missing.conf: no such file"),
        format!("{cfg}: problem: mark 0x3 (172.17.85.56:80/tcp) has no `virtual_server fwmark 3`"),
        format!("{cfg}: problem: VIP 119.253.28.6 is in no vrrp_instance's virtual_ipaddress"),
        format!("{cfg}: problem: VIP 2001:db8::56 is in no vrrp_instance's virtual_ipaddress"),
        format!("{main}:3: warning: mark 0x7 (7) is above keepalived's nftables_ipvs marks (5-6)"),
    ];
    for w in &want {
        assert!(
            out.lines().any(|l| l.starts_with(w.as_str())),
            "missing {w:?} in:\n{out}"
        );
    }
    assert!(out.contains("9 problem(s), 1 warning(s)"), "{out}");
}

#[test]
fn peer_config_checks_use_this_hosts_macs() {
    // On DR1 with DR1's own config given as the peer's: its peers are not this host's
    // MACs, and the same MACs are peers on both sides; marks equal everywhere.
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--peer-config",
            &p("dr1-vips.toml"),
        ],
    );
    assert_eq!(rc, 1, "{out}");
    for mac in ["00:0c:29:57:88:ce", "00:0c:29:57:88:d8"] {
        assert!(
            out.contains(&format!("problem: {mac} is a peer in both configs")),
            "{out}"
        );
    }
    assert_eq!(out.matches("on both directors").count(), 3, "{out}");
    // DR1's config on DR2 (the wrong box): its peers are this host's own MACs.
    let (rc, out) = check(
        &DR2_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--peer-config",
            &p("dr2-vips.toml"),
        ],
    );
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("peer 00:0c:29:57:88:ce is this host's own MAC (eth0)"),
        "{out}"
    );
    assert!(
        out.contains("peer 00:0c:29:57:88:d8 is this host's own MAC (eth1)"),
        "{out}"
    );
    assert!(out.contains("the peer config lists 00:0c:29:dc:d2:6b as its peer (this director), but no interface of this host has that MAC"), "{out}");
    // The right box: clean.
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--peer-config",
            &p("dr2-vips.toml"),
        ],
    );
    assert_eq!(rc, 0, "{out}");
}

#[test]
fn suggested_blocks_satisfy_the_check_and_keepalived() {
    let dir = tempfile::tempdir().unwrap();
    let base = "global_defs {\n    router_id DR1\n}\nvrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    virtual_ipaddress {\n        172.17.85.56/24 dev eth0\n        119.253.28.6/24 dev eth1\n    }\n    virtual_ipaddress_excluded {\n        2001:db8::56/64 dev eth0\n    }\n}\n";
    let k1 = dir.path().join("k1.conf");
    std::fs::write(&k1, base).unwrap();
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--keepalived",
            k1.to_str().unwrap(),
            "--suggest",
        ],
    );
    assert_eq!(rc, 1, "{out}");
    let start = out.find("# for ").expect("suggestions");
    let end = out.rfind("}\n").expect("end of suggestions") + 2;
    let blocks = &out[start..end];
    assert_eq!(
        blocks.matches("virtual_server fwmark").count(),
        3,
        "{blocks}"
    );
    assert!(blocks.contains("ip_family inet6"), "{blocks}");
    let k2 = dir.path().join("k2.conf");
    std::fs::write(&k2, format!("{base}{blocks}")).unwrap();
    let (rc, out) = check(
        &DR1_MACS,
        &[
            "--config",
            &p("dr1-vips.toml"),
            "--keepalived",
            k2.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{out}\n{blocks}");
    let o = in_netns(&DR1_MACS, "keepalived", &["-t", "-f", k2.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "keepalived -t on the suggestions: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

//! `import --verify` and `export` against the real tools (root: network namespaces,
//! iptables-legacy, nftables, BPF_PROG_TEST_RUN; run by `cargo xtask test`):
//!
//! * every translatable corpus rule set verifies: the same frames, marked alike by the
//!   original rules and by the imported config in the loaded program;
//! * verification fails, naming the frames, when the config differs from the rules
//!   (--merge-peers on the seed's rules without -i; a config with one mark changed);
//! * iptables-restore --test (legacy and nft) accepts what `export` prints;
//! * the scratch namespace is gone after a run, and after a SIGKILL mid-run.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use lvs_loader::import::{self, Format, Options, verify};

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(f)
}

fn loader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvs-loader"))
        .args(args)
        .output()
        .expect("run lvs-loader")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `verify: N frames, all marked alike (M marked)` -> (N, M)
fn alike(stderr: &str) -> Option<(usize, usize)> {
    let l = stderr.lines().find(|l| l.contains("all marked alike"))?;
    let n = l
        .strip_prefix("verify: ")?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let m = l.split('(').nth(1)?.split(' ').next()?.parse().ok()?;
    Some((n, m))
}

#[test]
fn translatable_corpus_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let all = [
        "seed-dr1.rules",
        "seed-dr2.rules",
        "chain-variant.rules",
        "firewalld-direct.rules",
        "ipv6-both-families.rules",
        "multiport.rules",
        "order-conflict.rules",
    ];
    // Under qemu's TCG every iptables/nft call is slow: three files cover -i, chains and
    // both families there.
    let in_vm = std::env::var_os("LVS_IN_VM").is_some();
    for f in all {
        if in_vm
            && !matches!(
                f,
                "seed-dr1.rules" | "chain-variant.rules" | "ipv6-both-families.rules"
            )
        {
            continue;
        }
        let out_dir = dir.path().join(f);
        let o = loader(&[
            "import",
            "--verify",
            "--out-dir",
            out_dir.to_str().unwrap(),
            data(f).to_str().unwrap(),
        ]);
        let (_, err) = text(&o);
        assert!(o.status.success(), "{f}: {err}");
        let (n, marked) = alike(&err).unwrap_or_else(|| panic!("{f}: no verdict in {err}"));
        assert!(n >= 90, "{f}: only {n} frames");
        assert!(
            marked >= 3,
            "{f}: only {marked} frames marked: the frames miss the VIPs"
        );
    }
}

#[test]
fn one_interface_at_a_time() {
    for (iface, vip) in [("eth0", "172.17.85.56"), ("eth1", "119.253.28.6")] {
        let o = loader(&[
            "import",
            "--verify",
            "--iface",
            iface,
            data("seed-dr1.rules").to_str().unwrap(),
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{iface}: {err}");
        assert!(
            out.contains(&format!("address = \"{vip}\"")) && out.matches("[[vip]]").count() == 1,
            "{out}"
        );
        assert_eq!(alike(&err), Some((135, 4)), "{iface}: {err}");
    }
}

#[test]
fn merged_peers_show_exactly_the_cross_nic_frames() {
    let o = loader(&[
        "import",
        "--verify",
        "--merge-peers",
        data("seed-dr1-commands.rules").to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        out.contains("[[vip]]"),
        "the config is still printed: {out}"
    );
    let diffs: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": iptables-legacy 0x") && l.contains(", lvs-ebpf 0x"))
        .collect();
    // The frames from each peer MAC to the other NIC's VIP (plain, first fragment and,
    // where the kernel has 802.1Q, VLAN-tagged), nothing else.
    let vlan = !err.contains("VLAN-tagged frames left out");
    let mut want = Vec::new();
    for (vip, mark, mac) in [
        ("119.253.28.6", 5, "00:0c:29:57:88:ce"),
        ("172.17.85.56", 3, "00:0c:29:57:88:d8"),
    ] {
        want.push(format!(
            "  {vip}:80/tcp from {mac} on lvsv-other: iptables-legacy {mark:#x}, lvs-ebpf 0x0"
        ));
        want.push(format!("  {vip}:80/tcp first fragment from {mac} on lvsv-other: iptables-legacy {mark:#x}, lvs-ebpf 0x0"));
        if vlan {
            want.push(format!("  {vip}:80/tcp VLAN 100 tagged from {mac} on lvsv-other.100: iptables-legacy {mark:#x}, lvs-ebpf 0x0"));
        }
    }
    assert_eq!(diffs, want, "{err}");
    assert!(
        err.contains(&format!("verify: {} of ", want.len())),
        "{err}"
    );
    // iptables-nft ran too and is listed apart: it differs from legacy on fragments only.
    for l in err.lines().filter(|l| l.contains(", iptables-nft 0x")) {
        assert!(l.contains("non-first"), "{l}");
    }
}

fn imported(f: &str) -> import::ImportResult {
    import::import(
        &std::fs::read_to_string(data(f)).unwrap(),
        &Options {
            format: Format::Auto,
            merge_peers: false,
            source_name: f.into(),
        },
    )
}

#[test]
fn a_config_that_differs_from_the_rules_fails_verification() {
    let r = imported("ipv6-both-families.rules");
    let good = verify::verify(&r, &r.configs).expect("verify");
    assert!(good.all_alike(), "{}", good.render());
    // One exact-port VIP with another mark: every frame to it from a client differs.
    let mut bad = r.configs.clone();
    let v = bad[0]
        .config
        .vips
        .iter_mut()
        .find(|v| v.port == Some(443))
        .unwrap();
    v.mark = 0x99;
    let rep = verify::verify(&r, &bad).expect("verify");
    assert!(!rep.all_alike());
    assert!(
        rep.differences
            .iter()
            .all(|d| d.summary.starts_with("192.0.2.10:443/tcp")
                && d.iptables == 0x41
                && d.lvs_ebpf == 0x99),
        "{}",
        rep.render()
    );
    // Only the client MAC's plain frame (the fragments go to the first port, 9).
    assert_eq!(rep.differences.len(), 1, "{}", rep.render());
    assert_eq!(rep.references, ["iptables-legacy", "iptables-nft"]);
    // A VIP missing from the config: its frames stay unmarked in lvs-ebpf.
    let mut missing = r.configs.clone();
    missing[0]
        .config
        .vips
        .retain(|v| v.address.to_string() != "2001:db8::58");
    let rep = verify::verify(&r, &missing).expect("verify");
    assert!(
        !rep.differences.is_empty()
            && rep
                .differences
                .iter()
                .all(|d| d.summary.starts_with("[2001:db8::58]:9/sctp")
                    && d.iptables == 0x62
                    && d.lvs_ebpf == 0),
        "{}",
        rep.render()
    );
}

/// Runs `tool --test` on `input` inside a fresh network namespace.
fn restore_test(tool: &str, input: &str) -> Output {
    use std::io::Write as _;
    let mut c = Command::new("unshare")
        .args(["--net", "--", tool, "--test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare");
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn iptables_restore_accepts_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vips.toml");
    std::fs::write(
        &cfg,
        "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n[[peer]]\nmac = \"00:0C:29:57:88:D8\"\n\
         [[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x3\nname = \"web \\\"internal\\\" 1\"\n\
         [[vip]]\naddress = \"172.17.85.56\"\nprotocol = \"udp\"\nmark = 0x13\n\
         [[vip]]\naddress = \"172.17.85.56\"\nport = 9\nprotocol = \"sctp\"\nmark = 0x23\n\
         [[vip]]\naddress = \"2001:db8::56\"\nport = 80\nmark = 0xffffffff\n",
    )
    .unwrap();
    for (fam, tools) in [
        ("ipv4", ["iptables-legacy-restore", "iptables-nft-restore"]),
        (
            "ipv6",
            ["ip6tables-legacy-restore", "ip6tables-nft-restore"],
        ),
    ] {
        let o = loader(&[
            "export",
            "--iptables",
            "--config",
            cfg.to_str().unwrap(),
            "--family",
            fam,
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(out.contains("*mangle") && out.contains("COMMIT"), "{out}");
        for tool in tools {
            let t = restore_test(tool, &out);
            assert!(
                t.status.success(),
                "{tool} --test rejects:\n{out}\n{}",
                String::from_utf8_lossy(&t.stderr)
            );
        }
        // And a broken line is rejected (the check is real).
        let broken = out.replace("--set-mark", "--set-mork");
        assert!(
            !restore_test(tools[0], &broken).status.success(),
            "{tools:?} accepted garbage"
        );
    }
}

/// Inodes of every network namespace some process or bind mount holds.
fn live_netns_inodes() -> std::collections::BTreeSet<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut s = std::collections::BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let tasks = e.path().join("task");
        for t in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            if let Ok(m) = std::fs::metadata(t.path().join("ns/net")) {
                s.insert(m.ino());
            }
        }
    }
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(m) = std::fs::metadata(e.path()) {
            s.insert(m.ino());
        }
    }
    s
}

#[test]
fn the_scratch_namespace_dies_with_the_loader() {
    use std::os::unix::fs::MetadataExt as _;
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    // A rule set big enough to keep --verify busy for a while.
    let mut rules = String::from("*mangle\n:PREROUTING ACCEPT [0:0]\n");
    for i in 0..60 {
        rules.push_str(&format!(
            "-A PREROUTING -d 172.17.{}.{}/32 -p tcp -m multiport --dports 80,443,8080 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-mark {}\n",
            i / 200, i % 200 + 1, i + 1
        ));
    }
    rules.push_str("COMMIT\n");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.rules");
    std::fs::write(&f, rules).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvs-loader"))
        .args(["import", "--verify", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until one of its threads is in another namespace: the scratch one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scratch = loop {
        let tasks = PathBuf::from(format!("/proc/{}/task", child.id()));
        let found = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|t| {
                let ino = std::fs::metadata(t.path().join("ns/net")).ok()?.ino();
                (ino != own).then_some(ino)
            });
        if let Some(ino) = found {
            break ino;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scratch namespace seen"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "lvs-loader ended before its scratch namespace was seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(live_netns_inodes().contains(&scratch));
    child.kill().unwrap(); // SIGKILL: no cleanup code runs
    child.wait().unwrap();
    // Commands it started may finish a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live_netns_inodes().contains(&scratch) {
        assert!(
            std::time::Instant::now() < deadline,
            "scratch namespace {scratch} outlived lvs-loader"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // And a normal run leaves nothing in the host namespace: no veth of ours here.
    let o = loader(&[
        "import",
        "--verify",
        data("multiport.rules").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("lvsv"),
        "a scratch link leaked into the host namespace"
    );
}

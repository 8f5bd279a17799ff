//! `lvs-loader diff IFACE --config FILE` and `reload --dry-run` on a real attachment:
//! exactly what a reload would add, remove and change, against the live maps, and
//! nothing written (the datapath keeps marking with the live config).

use lvs_tests::lab::{DEV, Lab, path_str, stderr};

const LIVE: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CE"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x3
name = "web"

[[vip]]
address = "172.17.85.57"
port = 80
mark = 0x4
name = "old"

[[vip]]
address = "2001:db8::56"
port = 443
mark = 0x6
name = "web6"
"#;

const NEXT: &str = r#"
[[peer]]
mac = "00:0C:29:57:88:CF"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 0x13
name = "web"

[[vip]]
address = "2001:db8::56"
port = 443
mark = 0x6
name = "web6-renamed"

[[vip]]
address = "172.17.85.58"
protocol = "udp"
mark = 0x8
"#;

#[test]
fn diff_and_dry_run_show_the_reload_and_change_nothing() {
    let lab = Lab::new("dif");
    let live = lab.config("live.toml", LIVE);
    let next = lab.config("next.toml", NEXT);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&live)]);
    let before = lab.stats();

    let same = lab.loader_ok(&["diff", DEV, "--config", path_str(&live)]);
    assert!(same.contains(": no change (3 VIP(s) unchanged)"), "{same}");

    let out = lab.loader_ok(&["diff", DEV, "--config", path_str(&next)]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with(": +1 -1 ~2 =0 VIP(s), peers +1 -1"),
        "{out}"
    );
    assert_eq!(
        &lines[1..],
        [
            "+ peer 00:0c:29:57:88:cf",
            "- peer 00:0c:29:57:88:ce",
            "+ vip  172.17.85.58:*/udp                       mark 0x8  (172.17.85.58:*/udp)",
            "- vip  172.17.85.57:80/tcp                      mark 0x4  (old)",
            "~ vip  172.17.85.56:80/tcp                      mark 0x3 -> 0x13",
            "~ vip  [2001:db8::56]:443/tcp                   name web6 -> web6-renamed",
        ],
        "{out}"
    );
    let dry = lab.loader_ok(&["reload", DEV, "--config", path_str(&next), "--dry-run"]);
    assert_eq!(dry, out, "reload --dry-run differs from diff");
    let j: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["diff", DEV, "--config", path_str(&next), "--json"]))
            .expect("diff --json");
    assert_eq!(j["added"][0]["mark"], 8, "{j}");
    assert_eq!(j["removed"][0]["name"], "old", "{j}");
    assert_eq!(j["changed"].as_array().map(Vec::len), Some(2), "{j}");

    // Nothing was written: same counters, and the old config still marks.
    assert_eq!(lab.stats(), before);
    let e = lab.loader_ok(&[
        "explain",
        DEV,
        "--src-mac",
        "52:54:00:c1:1e:01",
        "--dst",
        "172.17.85.57:80",
    ]);
    assert!(e.contains("marked 0x4 by VIP old"), "{e}");

    // After the real reload the diff is empty.
    lab.loader_ok(&["reload", DEV, "--config", path_str(&next)]);
    let after = lab.loader_ok(&["diff", DEV, "--config", path_str(&next)]);
    assert!(after.contains("no change (3 VIP(s) unchanged)"), "{after}");

    // A changed mark_mask alone is a change.
    let masked = lab.config(
        "masked.toml",
        &NEXT.replace("mark = 0x8\n", "mark = 0x8\nmark_mask = 0xff\n"),
    );
    let out = lab.loader_ok(&["diff", DEV, "--config", path_str(&masked)]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("~ vip  172.17.85.58:*/udp")
                && l.ends_with("mark_mask 0xffffffff -> 0xff")),
        "{out}"
    );

    // A config that outgrows the maps: the dry run says the reload would swap in a new
    // program and map set (capacity 256 for 3 VIPs; 300 VIPs need 1,024); one that fits
    // says nothing about capacity.
    assert!(!out.contains("capacity"), "{out}");
    let big = String::from(NEXT) + &lvs_tests::conf::extra_vips(0..297);
    let big = lab.config("big.toml", &big);
    let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&big), "--dry-run"]);
    assert!(
        out.lines().any(|l| l
            == "capacity 256 -> 1024 VIP slots: the reload swaps in a new program and map set (counters carried over)"),
        "{out}"
    );
    // Once grown, a config that needs a quarter or less of the maps shrinks them (3 VIPs:
    // 256 of 1,024); one that needs more than a quarter keeps them (200 VIPs: 512).
    lab.loader_ok(&["reload", DEV, "--config", path_str(&big)]);
    let out = lab.loader_ok(&["diff", DEV, "--config", path_str(&next)]);
    assert!(
        out.lines().any(|l| l
            == "capacity 1024 -> 256 VIP slots: the reload swaps in a new program and map set (counters carried over)"),
        "{out}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["diff", DEV, "--config", path_str(&next), "--json"]))
            .expect("diff JSON");
    assert_eq!(
        (&j["capacity"], &j["capacity_needed"], &j["resize_to"]),
        (&1024.into(), &256.into(), &256.into()),
        "{j}"
    );
    let mid = String::from(NEXT) + &lvs_tests::conf::extra_vips(0..197);
    let mid = lab.config("mid.toml", &mid);
    let out = lab.loader_ok(&["diff", DEV, "--config", path_str(&mid)]);
    assert!(!out.contains("capacity"), "{out}");

    // Errors: a bad config (file:line:column), an interface not attached.
    let bad = lab.config("bad.toml", "[[vip]]\naddress = \"1.2.3.4\"\nmark = 0\n");
    let o = lab.loader(&["diff", DEV, "--config", path_str(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.toml:3:8: vip[1].mark"),
        "{}",
        stderr(&o)
    );
    let o = lab.loader(&["diff", "lo", "--config", path_str(&next)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("lo is not attached"), "{}", stderr(&o));
}

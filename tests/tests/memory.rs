//! Kernel memory that follows the config (issue 11): an attachment's maps are sized from
//! its config (`capacity_for`), and a reload that does not fit grows them (one that
//! needs a quarter or less shrinks them) with a new program and map set swapped in on
//! the hook in one step, crash-safely.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    os::{
        fd::{AsFd as _, AsRawFd as _},
        unix::process::ExitStatusExt as _,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use lvs_ebpf_common::{MIN_CAPACITY, SHRINK_FACTOR, capacity_for, map_names};
use lvs_tests::{
    conf::{PEER_MAC, WEB_MARK, WEB_VIP, web_with},
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str, stderr, tcx_or_skip},
};

/// VIPs of the grown config (besides the web VIP of [`web_with`]): the fewest that cross
/// both thresholds, so every reload, `stats` and kill below stays cheap under qemu TCG
/// (a 5,000-VIP config made this file the slowest step of `vm-test`; scale itself is
/// `fixtures_scale.rs`'s job). Its capacity is four times [`MIN_CAPACITY`]: growing to it
/// skips a power of two (256 -> 1,024), and the 1-VIP config needs a quarter of it, so
/// going back shrinks.
const BIG: u32 = 256;
/// Capacity of the grown config's maps.
const BIG_CAPACITY: u32 = capacity_for(BIG as usize + 1);
// The thresholds the tests below cross, from the sizing rule (not from
// `resized_capacity`, the code under test): the grown config does not fit the 1-VIP
// maps (growth), the 1-VIP config needs a SHRINK_FACTORth or less of the grown maps
// (shrink), half the VIPs needs more than that (no swap).
const _: () = assert!(capacity_for(1) == MIN_CAPACITY);
const _: () = assert!(BIG_CAPACITY > 2 * MIN_CAPACITY);
const _: () = assert!(MIN_CAPACITY * SHRINK_FACTOR <= BIG_CAPACITY);
const _: () = assert!(capacity_for(BIG as usize / 2 + 1) * SHRINK_FACTOR > BIG_CAPACITY);
const _: () = assert!(capacity_for(BIG as usize / 2 + 1) <= BIG_CAPACITY);
/// The last extra VIP of the grown config and its mark (`web_with`'s numbering).
const NEW_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, ((BIG - 1) >> 8) as u8, ((BIG - 1) & 255) as u8);
const NEW_MARK: u32 = 0x100 + BIG - 1;

fn frame(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    Frame::v4(
        [0x52, 0x54, 0, 9, 9, 9],
        Ipv4Addr::new(172, 17, 85, 100),
        dst,
        IPPROTO_TCP,
        1,
        port,
    )
    .with_dst_mac(DIRECTOR_MAC)
    .bytes()
}

/// (max_entries, memlock) of every map pinned in `dir`, by name, from fdinfo.
fn pinned_maps(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("pin dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(fd) = lvs_loader::bpf::obj_get(&e.path()) else {
            continue;
        };
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .expect("fdinfo");
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if field("map_type").is_some() {
            out.insert(
                name,
                (
                    field("max_entries").expect("max_entries"),
                    field("memlock").expect("memlock"),
                ),
            );
        }
    }
    out
}

fn pin_dir(lab: &Lab) -> PathBuf {
    let e = lab.my_status().expect("status entry");
    PathBuf::from(e["pin_dir"].as_str().expect("pin_dir"))
}

fn capacity(lab: &Lab) -> u64 {
    let s = lab.my_status().expect("status entry");
    let c = s["capacity"].as_u64().expect("capacity in status");
    assert_eq!(lab.stats()["capacity"].as_u64(), Some(c), "stats --json");
    c
}

/// Only the published attachment's directory and its pins are left.
fn no_stale_pins(lab: &Lab, ctx: &str) {
    let stale: Vec<PathBuf> = lab
        .pins
        .leftovers()
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains(":new") || s.contains(":old") || s.contains("link:next")
        })
        .collect();
    assert!(stale.is_empty(), "{ctx}: stale pins {stale:?}");
}

fn attach(lab: &Lab, cfg: &Path, mode: &str) {
    lab.loader_ok(&["attach", DEV, "--config", path_str(cfg), "--mode", mode]);
}

fn small_config_small_maps(mode: &str) {
    let lab = Lab::new(&format!("mm{}", &mode[..2]));
    let a = lab.config("a.toml", &web_with(PEER_MAC, 0..0));
    attach(&lab, &a, mode);
    assert_eq!(capacity(&lab), u64::from(MIN_CAPACITY));
    let maps = pinned_maps(&pin_dir(&lab));
    let entries = |n: &str| maps.get(n).unwrap_or_else(|| panic!("{n} in {maps:?}")).0;
    let c = u64::from(MIN_CAPACITY);
    assert_eq!(entries(map_names::V4_TABLE), c, "{maps:?}");
    assert_eq!(entries(map_names::V6_TABLE), 2 * c, "{maps:?}");
    assert_eq!(entries(map_names::VIP_STATS), c + 1, "{maps:?}");
    assert_eq!(entries(map_names::VIP_INFO), c, "{maps:?}");
    // Every map the program uses (the trace ring buffer is not pinned but counts too).
    let prog = lvs_loader::bpf::obj_get(&pin_dir(&lab).join("prog")).expect("prog pin");
    let all = lvs_loader::bpf::prog_map_memory(prog.as_fd()).expect("map memory");
    let unpinned: Vec<_> = all.iter().filter(|m| !maps.contains_key(&m.name)).collect();
    assert!(
        unpinned.iter().any(|m| m.name == map_names::TRACE_EVENTS),
        "{all:?}"
    );
    let total: u64 =
        maps.values().map(|(_, m)| m).sum::<u64>() + unpinned.iter().map(|m| m.bytes).sum::<u64>();
    eprintln!("{mode}: 1 VIP, kernel map memory {total} B: {maps:?} + {unpinned:?}");
    // Issue 11: 1 VIP on 3 interfaces under 4 MiB.
    assert!(3 * total < 4 << 20, "{total} B per interface");
    // The web VIP is marked with maps this small.
    lab.watch_marks(&[WEB_VIP.into()], &[WEB_MARK]);
    lab.send(&[frame(WEB_VIP, 80)]);
    assert_eq!(lab.mark_count(WEB_VIP.into(), WEB_MARK), 1);
}

#[test]
fn a_small_config_gets_small_maps_netlink() {
    small_config_small_maps("netlink");
}

#[test]
fn a_small_config_gets_small_maps_tcx() {
    if tcx_or_skip("a_small_config_gets_small_maps_tcx") {
        small_config_small_maps("tcx");
    }
}

/// Reloads `to` over an attachment of `from` while a sender floods the web VIP (in both
/// configs): not one packet goes unmarked, the maps are swapped for maps of `to`'s size
/// (a new program, the old one freed, no stale pins) and the web VIP's counters are
/// carried over exactly.
fn resizes_under_traffic(mode: &str, tag: &str, from: &str, to: &str) -> Lab {
    let lab = Lab::new(&format!("m{tag}{}", &mode[..2]));
    let a = lab.config("from.toml", from);
    let b = lab.config("to.toml", to);
    attach(&lab, &a, mode);
    let old_prog = lab.marker_prog_ids();
    let vip: IpAddr = WEB_VIP.into();
    lab.watch_marks(&[vip, NEW_VIP.into()], &[0, WEB_MARK, NEW_MARK]);
    let batch = vec![frame(WEB_VIP, 80); 64];
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let n = lab.sender().send_batch(&batch);
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        let _stop = lvs_tests::StopOnDrop(&stop);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&b)]);
        assert!(out.contains("reloaded"), "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    let sent = sent.load(Ordering::Relaxed);
    let marked = lab.mark_count(vip, WEB_MARK);
    let unmarked = lab.mark_count(vip, 0);
    eprintln!("{mode}: swap while sending {sent} packets: {marked} marked, {unmarked} unmarked");
    assert!(sent > 1000, "the sender must overlap the swap: {sent}");
    assert_eq!(unmarked, 0, "packets missed their mark during the swap");
    assert_eq!(marked, sent);
    // New maps and program, sized for the new config; the old program is gone.
    let vips = lab.stats()["vips"].as_array().map_or(0, Vec::len);
    assert_eq!(capacity(&lab), u64::from(capacity_for(vips)));
    let new_prog = lab.marker_prog_ids();
    assert_eq!(new_prog.len(), 1, "one program on the hook");
    assert_ne!(new_prog, old_prog, "a new program");
    assert!(lvs_tests::lab::prog_freed(old_prog[0]), "old program freed");
    no_stale_pins(&lab, "after the swap");
    // The web VIP's counters were carried over exactly: every packet sent, counted by
    // the old program or the new one, once.
    let st = lab.stats();
    assert_eq!(
        st["vips"][0]["marked_packets"].as_u64(),
        Some(sent),
        "{}",
        st["vips"][0]
    );
    assert_eq!(
        st["totals"]["marked"].as_u64(),
        Some(sent),
        "{}",
        st["totals"]
    );
    lab
}

fn grows_under_traffic(mode: &str) {
    let small = web_with(PEER_MAC, 0..0);
    let lab = resizes_under_traffic(mode, "g", &small, &web_with(PEER_MAC, 0..BIG));
    assert_eq!(capacity(&lab), u64::from(BIG_CAPACITY));
    // Every new VIP is marked (the last one checked on the wire, all in stats).
    lab.send(&[frame(NEW_VIP, 443)]);
    assert_eq!(lab.mark_count(NEW_VIP.into(), NEW_MARK), 1);
    assert_eq!(lab.mark_count(NEW_VIP.into(), 0), 0);
    assert_eq!(
        lab.stats()["vips"].as_array().map(Vec::len),
        Some(BIG as usize + 1)
    );
    // A reload to more than a quarter of the capacity does not swap maps: half the VIPs.
    let prog = lab.marker_prog_ids();
    let half = lab.config("half.toml", &web_with(PEER_MAC, 0..BIG / 2));
    let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&half)]);
    assert!(out.contains("reloaded"), "{out}");
    assert_eq!(
        lab.marker_prog_ids(),
        prog,
        "no new program for a fitting reload"
    );
    assert_eq!(capacity(&lab), u64::from(BIG_CAPACITY));
}

#[test]
fn a_reload_that_does_not_fit_grows_under_traffic_netlink() {
    grows_under_traffic("netlink");
}

#[test]
fn a_reload_that_does_not_fit_grows_under_traffic_tcx() {
    if tcx_or_skip("a_reload_that_does_not_fit_grows_under_traffic_tcx") {
        grows_under_traffic("tcx");
    }
}

/// A reload to a config that needs a quarter or less of the maps shrinks them (the
/// memory follows the config down too), with the same guarantees as growth.
fn shrinks_under_traffic(mode: &str) {
    let big = web_with(PEER_MAC, 0..BIG);
    let lab = resizes_under_traffic(mode, "s", &big, &web_with(PEER_MAC, 0..0));
    assert_eq!(capacity(&lab), u64::from(MIN_CAPACITY));
    // The removed VIPs are gone from the datapath.
    lab.send(&[frame(NEW_VIP, 443)]);
    assert_eq!(lab.mark_count(NEW_VIP.into(), NEW_MARK), 0);
    assert_eq!(lab.stats()["vips"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_reload_to_a_quarter_shrinks_under_traffic_netlink() {
    shrinks_under_traffic("netlink");
}

#[test]
fn a_reload_to_a_quarter_shrinks_under_traffic_tcx() {
    if tcx_or_skip("a_reload_to_a_quarter_shrinks_under_traffic_tcx") {
        shrinks_under_traffic("tcx");
    }
}

/// The failpoints a command passes (`NAME#N`), from `LVS_FAILPOINT_TRACE`.
fn traced(lab: &Lab, args: &[&str]) -> Vec<String> {
    let out = lab.loader_env(&[("LVS_FAILPOINT_TRACE", "1")], args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
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

/// The web VIP is marked right now (one frame through the director): its counting rule,
/// at `*wire` packets so far, counts exactly one more.
fn web_marked(lab: &Lab, ctx: &str, wire: &mut u64) {
    lab.send(&[frame(WEB_VIP, 80)]);
    *wire += 1;
    assert_eq!(
        lab.mark_count(WEB_VIP.into(), WEB_MARK),
        *wire,
        "{ctx}: the web VIP went unmarked"
    );
}

/// The capacity of the live maps (`status` and `stats` agree) and the VIPs `stats` lists.
fn capacity_and_vips(lab: &Lab) -> (u64, usize) {
    let s = lab.my_status().expect("status entry");
    let c = s["capacity"].as_u64().expect("capacity in status");
    let st = lab.stats();
    assert_eq!(st["capacity"].as_u64(), Some(c), "stats --json");
    (c, st["vips"].as_array().map_or(0, Vec::len))
}

fn growth_killed_at_every_step(mode: &str) {
    let lab = Lab::new(&format!("mk{}", &mode[..2]));
    let a = lab.config("a.toml", &web_with(PEER_MAC, 0..0));
    let b = lab.config("b.toml", &web_with(PEER_MAC, 0..BIG));
    let grow_args = ["reload", DEV, "--config", path_str(&b)];
    attach(&lab, &a, mode);
    lab.watch_marks(&[WEB_VIP.into(), NEW_VIP.into()], &[WEB_MARK, NEW_MARK]);
    let steps = traced(&lab, &grow_args);
    assert!(
        steps.iter().any(|s| s.starts_with("grow:swapped")),
        "{steps:?}"
    );
    let small = u64::from(MIN_CAPACITY);
    let big = u64::from(BIG_CAPACITY);
    assert_eq!(capacity(&lab), big);
    let mut kills = 0;
    // Whether the attachment runs `a` on the small maps (where every kill starts from),
    // and its web VIP's marked packets then.
    let mut at_small: Option<u64> = None;
    // Packets the counting rules of the web VIP and NEW_VIP have seen: every frame the
    // loop sends is accounted for, so one read per check suffices.
    let mut web_wire = lab.mark_count(WEB_VIP.into(), WEB_MARK);
    let mut new_wire = lab.mark_count(NEW_VIP.into(), NEW_MARK);
    for (i, fp) in steps.iter().enumerate() {
        // Back to the small maps: detach, attach a; unless the last recovery left them
        // (a reload to `a` that undid the growth, or finished it and shrank back) and
        // checked them already. That saves a program load, the dear part of each kill
        // under qemu TCG, on every second kill; the growth then starts from maps and a
        // program that were swapped in before, which a real reload meets too.
        let web_before = match at_small {
            Some(n) => n,
            None => {
                lab.loader_ok(&["detach", DEV]);
                attach(&lab, &a, mode);
                assert_eq!(capacity(&lab), small);
                0
            }
        };
        let ctx = format!("{mode} growth killed at {fp}");
        let out = lab.loader_env(&[("LVS_FAILPOINT", fp)], &grow_args);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "{ctx}: not killed: {}",
            stderr(&out)
        );
        kills += 1;
        // Whatever step it died at, exactly one of our programs is on the hook and it
        // marks the VIP both configs have.
        assert_eq!(
            lab.marker_prog_ids().len(),
            1,
            "{ctx}: {}",
            lab.ingress_hooks()
        );
        web_marked(&lab, &ctx, &mut web_wire);
        // `status` names the config the hook runs: the new one marks NEW_VIP.
        lab.send(&[frame(NEW_VIP, 443)]);
        let n = lab.mark_count(NEW_VIP.into(), NEW_MARK);
        assert!(
            n == new_wire || n == new_wire + 1,
            "{ctx}: {n} after {new_wire}"
        );
        let new_runs = n > new_wire;
        new_wire = n;
        let st = lab.my_status().expect("status entry");
        let want = if new_runs { BIG as u64 + 1 } else { 1 };
        assert_eq!(st["vips"].as_u64(), Some(want), "{ctx}: status {st}");
        // The next command finishes or undoes it: old or new maps, never a mix.
        let back_to_small = if i % 2 == 0 {
            let out = lab.loader_ok(&["reload", DEV, "--config", path_str(&a)]);
            assert!(out.contains("reloaded"), "{ctx}: {out}");
            let (c, vips) = capacity_and_vips(&lab);
            assert!(c == small || c == big, "{ctx}: capacity {c}");
            assert_eq!(vips, 1, "{ctx}");
            c == small
        } else {
            lab.loader_ok(&["reload", DEV, "--config", path_str(&b)]);
            assert_eq!(capacity_and_vips(&lab), (big, BIG as usize + 1), "{ctx}");
            lab.send(&[frame(NEW_VIP, 443)]);
            new_wire += 1;
            assert_eq!(lab.mark_count(NEW_VIP.into(), NEW_MARK), new_wire, "{ctx}");
            false
        };
        no_stale_pins(&lab, &ctx);
        assert_eq!(lab.marker_prog_ids().len(), 1, "{ctx}");
        web_marked(&lab, &ctx, &mut web_wire);
        // Counted exactly once whichever program counted it: one web frame after the
        // kill, one now.
        let st = lab.stats();
        let web = web_before + 2;
        assert_eq!(
            st["vips"][0]["marked_packets"].as_u64(),
            Some(web),
            "{ctx}: {}",
            st["vips"][0]
        );
        at_small = back_to_small.then_some(web);
    }
    eprintln!("{mode}: {kills} kills during growth, each recovered");
    lab.loader_ok(&["detach", DEV]);
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
    assert!(lab.marker_prog_ids().is_empty());
}

#[test]
fn growth_killed_at_every_step_recovers_netlink() {
    growth_killed_at_every_step("netlink");
}

#[test]
fn growth_killed_at_every_step_recovers_tcx() {
    if tcx_or_skip("growth_killed_at_every_step_recovers_tcx") {
        growth_killed_at_every_step("tcx");
    }
}

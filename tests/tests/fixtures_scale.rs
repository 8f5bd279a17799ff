//! Large tables through BPF_PROG_TEST_RUN (every VIP of 40,000 found, keys in their
//! second bucket included; a reload replacing all 70,000 VIPs), and the loaded programs'
//! shape (no BPF subprogram call).

use std::net::{Ipv4Addr, Ipv6Addr};

use lvs_tests::{fixture::*, frames::*, harness::Loaded};

/// A reload that replaces every VIP of a config larger than half the map: the new VIPs
/// run out of fresh counter slots and take over the removed VIPs' slots, whose counters
/// restart from zero.
#[test]
fn reload_replacing_every_vip_of_a_huge_config() {
    use lvs_loader::config::{Config, Peer, Protocol, Vip};
    let make = |base: u8, n: u32, mark: u32| Config {
        peers: vec![Peer {
            mac: PEER1,
            name: None,
        }],
        vips: (0..n)
            .map(|i| Vip {
                address: std::net::IpAddr::from([base, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
                port: Some(80),
                protocol: Protocol::Tcp,
                mark,
                mark_mask: u32::MAX,
                name: None,
            })
            .collect(),
        digest: [0; 32],
        path: None,
    };
    let n = 70_000;
    let mut dp = Loaded::with_config(make(10, n, 0xa));
    let to = |a: [u8; 4]| Frame::v4(CLIENT, SRC4, Ipv4Addr::from(a), IPPROTO_TCP, 1, 80).bytes();
    for _ in 0..3 {
        assert_eq!(dp.run(&to([10, 0, 0, 7]), 0).mark, 0xa);
    }
    // The last VIP too: its slot is in the last chunk the loader reads the counters in
    // when it retires removed slots (`batch::fold_array`, 16,384 slots per chunk here).
    let last = n - 1;
    for _ in 0..2 {
        let a = [10, (last >> 16) as u8, (last >> 8) as u8, last as u8];
        assert_eq!(dp.run(&to(a), 0).mark, 0xa);
    }
    let b = make(11, n, 0xb);
    let report = dp.apply_config(b);
    assert_eq!(
        (report.added, report.removed, report.kept),
        (n as usize, n as usize, 0),
        "a reload replacing 70,000 of 70,000 VIPs"
    );
    assert_eq!(dp.run(&to([10, 0, 0, 7]), 0).mark, 0, "old VIP gone");
    assert_eq!(dp.run(&to([11, 0, 0, 7]), 0).mark, 0xb, "new VIP marked");
    let s = dp.stats();
    assert_eq!(s.vips.len(), n as usize);
    let total: u64 = s.vips.iter().map(|v| v.marked_packets).sum();
    assert_eq!(total, 1, "reused slots start from zero: {total}");
    // The totals keep the removed VIPs' packets (they moved to the retired slot).
    assert_eq!(s.totals["marked"], 6, "{:?}", s.totals);
    assert_eq!(s.totals["packets_seen"], 7, "{:?}", s.totals);
}

/// A large table: every VIP is found through the real program (including keys the
/// builder had to put in their second bucket) and counted in its own slot.
#[test]
fn every_vip_of_a_large_config_is_marked_and_counted() {
    use lvs_loader::config::{Config, Peer, Protocol, Vip};
    let n = 20_000u32;
    // Scattered addresses (a bijection of i): sequential ones spread perfectly under
    // multiply-shift hashing and would never need a key's second bucket.
    let scatter = |mut x: u32| {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    };
    let addr = move |i: u32| std::net::Ipv4Addr::from(scatter(i + 1));
    let addr6 = move |i: u32| {
        let x = scatter(i + 1);
        Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, (x >> 16) as u16, x as u16)
    };
    let vip = |address: std::net::IpAddr, i: u32, mark: u32| Vip {
        address,
        port: Some(80 + (i % 3) as u16),
        protocol: Protocol::Tcp,
        mark,
        mark_mask: u32::MAX,
        name: None,
    };
    let config = Config {
        peers: vec![Peer {
            mac: PEER1,
            name: None,
        }],
        vips: (0..n)
            .map(|i| vip(addr(i).into(), i, 0x1000 + i))
            .chain((0..n).map(|i| vip(addr6(i).into(), i, 0x10_0000 + i)))
            .collect(),
        digest: [0; 32],
        path: None,
    };
    let mut dp = Loaded::with_config(config);
    let step = 7;
    for i in (0..n).step_by(step) {
        let f = Frame::v4(CLIENT, SRC4, addr(i), IPPROTO_TCP, 1, 80 + (i % 3) as u16).bytes();
        assert_eq!(dp.run(&f, 0).mark, 0x1000 + i, "VIP {i}");
        let other_port = Frame::v4(CLIENT, SRC4, addr(i), IPPROTO_TCP, 1, 83).bytes();
        assert_eq!(dp.run(&other_port, 0).mark, 0, "VIP {i}, port 83");
        let f = Frame::v6(CLIENT, SRC6, addr6(i), IPPROTO_TCP, 1, 80 + (i % 3) as u16).bytes();
        assert_eq!(dp.run(&f, 0).mark, 0x10_0000 + i, "IPv6 VIP {i}");
        let other_port = Frame::v6(CLIENT, SRC6, addr6(i), IPPROTO_TCP, 1, 83).bytes();
        assert_eq!(dp.run(&other_port, 0).mark, 0, "IPv6 VIP {i}, port 83");
    }
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    let hits = 2 * (0..n).step_by(step).count() as u64;
    assert_eq!(s.totals["marked"], hits, "{:?}", s.totals);
    assert_eq!(s.totals["no_vip"], hits, "{:?}", s.totals);
    assert_eq!(s.totals["internal_errors"], 0, "{:?}", s.totals);
    let counted = s.vips.iter().filter(|v| v.marked_packets == 1).count() as u64;
    assert_eq!(counted, hits, "each VIP counted once in its own slot");
}

/// No call of a non-helper function (a BPF subprogram, e.g. a compiler_builtins
/// `memset`) anywhere in either program: the kernel's xlated image has no BPF-to-BPF
/// call and the JIT emitted a single function.
#[test]
fn no_subprogram_calls_in_the_loaded_programs() {
    let mut dp = loaded();
    let main_fd = dp.dp.program_fd().expect("fd");
    let explain_fd = dp.dp.explain_fd().expect("lvs_explain");
    for (what, fd) in [("lvs_ingress", main_fd), ("lvs_explain", explain_fd)] {
        let img = lvs_loader::testrun::prog_image(fd).expect("program image");
        assert!(!img.xlated.is_empty(), "{what}: no instructions");
        assert_eq!(
            img.subprogram_calls(),
            0,
            "{what}: BPF-to-BPF calls in the xlated image"
        );
        assert_eq!(img.functions, 1, "{what}: the JIT emitted subprograms");
    }
}

//! Mark bits (`mark_mask`): the config key, the datapath's xt_MARK arithmetic on frames
//! that arrive already marked (BPF_PROG_TEST_RUN with `skb->mark` set in ctx_in), and
//! the already-marked counter, counted once per packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_ebpf_common::{global, xt_mark};
use lvs_loader::config::{self, Config, Peer, Protocol, Vip};
use lvs_tests::{frames::*, harness::Loaded};

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const SRC4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 7);

/// Input marks: none, all bits, a pattern, bits only outside / only inside a low mask.
const MARKS_IN: [u32; 7] = [
    0,
    u32::MAX,
    0xdead_beef,
    0x0000_0100,
    0x0000_00ff,
    0x8000_0000,
    0x1234_5678,
];

fn errors(text: &str) -> Vec<String> {
    match config::parse(text, "m.toml") {
        Ok(c) => panic!("accepted:\n{text}\n{c:?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

const HEAD: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n";

#[test]
fn mark_mask_in_the_config_global_and_per_vip() {
    // Default: all 32 bits.
    let c = config::parse(
        &format!("{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 3\n"),
        "m.toml",
    )
    .unwrap();
    assert_eq!(c.vips[0].mark_mask, u32::MAX);

    // Global (top of the file), overridden per VIP, applied to every port of a list.
    let text = format!(
        "mark_mask = 0xff\n{HEAD}\
         [[vip]]\naddress = \"10.0.0.1\"\nport = [80, 443]\nmark = 0x3\n\
         [[vip]]\naddress = \"10.0.0.2\"\nmark = 0x300\nmark_mask = 0xff00\n\
         [[vip]]\naddress = \"10.0.0.3\"\nmark = 0x4\nmark_mask = 0xffffffff\n"
    );
    let c = config::parse(&text, "m.toml").unwrap();
    let m: Vec<(u32, u32)> = c.vips.iter().map(|v| (v.mark, v.mark_mask)).collect();
    assert_eq!(
        m,
        [(0x3, 0xff), (0x3, 0xff), (0x300, 0xff00), (0x4, u32::MAX)]
    );
    // Also to the VIPs of an inline array written before it.
    let inline = "vip = [{ address = \"10.0.0.9\", mark = 0x10 }, { address = \"10.0.0.8\", mark = 0x20, mark_mask = 0xf0 }]\n\
                  mark_mask = 0xff\npeer = [{ mac = \"00:0C:29:57:88:CE\" }]\n";
    let ci = config::parse(inline, "m.toml").unwrap();
    let m: Vec<(u32, u32)> = ci.vips.iter().map(|v| (v.mark, v.mark_mask)).collect();
    assert_eq!(m, [(0x10, 0xff), (0x20, 0xf0)]);
    // The digest covers the key (a changed mask is a changed config).
    let c2 = config::parse(&text.replace("0xff\n[[peer]]", "0xfff\n[[peer]]"), "m.toml").unwrap();
    assert_ne!(c.digest, c2.digest);
}

#[test]
fn mark_mask_errors_have_line_and_column() {
    let e = errors(&format!(
        "{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 0x103\nmark_mask = 0xff\n"
    ));
    assert_eq!(
        e,
        [
            "m.toml:5:8: vip[1].mark: 0x103 has bits outside its mark_mask 0xff (0x100): xt_MARK (--set-xmark 0x103/0xff) would toggle those bits of other users' marks; lvs-ebpf refuses it: keep the mark inside the mask"
        ]
    );
    // Against the global mask.
    let e = errors(&format!(
        "mark_mask = 0xf0\n{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 0x1f\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "m.toml:6:8: vip[1].mark: 0x1f has bits outside the global mark_mask 0xf0 (0xf)"
        ),
        "{e:?}"
    );
    // Bad values and types, all in one run, sorted by position.
    let e = errors(&format!(
        "mark_mask = 0\n{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 1\nmark_mask = 0x100000000\n\
         [[vip]]\naddress = \"10.0.0.2\"\nmark = 1\nmark_mask = \"0xff\"\n\
         [[vip]]\naddress = \"10.0.0.3\"\nmark = 1\nmark_mask = -1\n"
    ));
    assert_eq!(
        e,
        [
            "m.toml:1:13: mark_mask: must not be 0 (no bit of the mark would be lvs-ebpf's; omit it for all 32 bits)",
            "m.toml:7:13: vip[1].mark_mask: 0x100000000 is outside 0x1-0xffffffff",
            "m.toml:11:13: vip[2].mark_mask: expected an integer (mark_mask = 0xff00), found a string",
            "m.toml:15:13: vip[3].mark_mask: -1 is outside 0x1-0xffffffff",
        ]
    );
    // A typo'd key lists mark_mask among the known ones.
    let e = errors(&format!(
        "{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 1\nmask = 0xff\n"
    ));
    assert_eq!(
        e,
        [
            "m.toml:6:1: vip[1].mask: unknown key: a vip table has address, port, protocol, mark, mark_mask or name"
        ]
    );
    // 15 masks besides the full one fit the datapath's mask classes; a 16th does not.
    let vips = |n: u32| -> String {
        (1..=n)
            .map(|i| {
                format!(
                    "[[vip]]\naddress = \"10.0.1.{i}\"\nmark = 1\nmark_mask = {:#x}\n",
                    1 | (i << 8)
                )
            })
            .collect()
    };
    let ok = config::parse(&format!("{HEAD}{}", vips(15)), "m.toml").unwrap();
    assert_eq!(ok.vips.len(), 15);
    let e = errors(&format!("{HEAD}{}", vips(16)));
    assert_eq!(
        e,
        [
            "m.toml:66:13: vip[16].mark_mask: a 16th distinct mark_mask: a config may use at most 15 masks besides 0xffffffff"
        ]
    );
}

fn vip(address: IpAddr, port: Option<u16>, mark: u32, mark_mask: u32) -> Vip {
    Vip {
        address,
        port,
        protocol: Protocol::Tcp,
        mark,
        mark_mask,
        name: None,
    }
}

fn config_of(vips: Vec<Vip>) -> Config {
    Config {
        peers: vec![Peer {
            mac: PEER,
            name: None,
        }],
        vips,
        digest: [0; 32],
        path: None,
    }
}

/// (mark, mask) pairs the datapath must apply exactly as xt_MARK: full, partial, one
/// bit, the high bits, mask 0 (a pure XOR, as `--xor-mark`), value bits outside the mask
/// (toggled, as `--set-xmark 0x103/0xff` does; the config refuses them, the datapath
/// still computes them exactly).
const CASES: [(u32, u32); 7] = [
    (0x3, u32::MAX),
    (0x3, 0xff),
    (0x100, 0x100),
    (0xab00_0000, 0xff00_0000),
    (0x5, 0),
    (0x103, 0xff),
    (0x7fff_ffff, 0xffff_0000),
];

#[test]
fn the_mark_is_xt_mark_of_the_arriving_mark_for_every_mask() {
    // One VIP per case and family, exact-port and any-port.
    let mut vips = Vec::new();
    for (i, &(mark, mask)) in CASES.iter().enumerate() {
        let i = i as u8;
        vips.push(vip(
            IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)),
            Some(80),
            mark,
            mask,
        ));
        vips.push(vip(
            IpAddr::V4(Ipv4Addr::new(10, 2, 0, i)),
            None,
            mark,
            mask,
        ));
        vips.push(vip(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i.into())),
            Some(80),
            mark,
            mask,
        ));
    }
    let dp = Loaded::with_config(config_of(vips));
    for (i, &(mark, mask)) in CASES.iter().enumerate() {
        let i = i as u8;
        let frames = [
            (
                "v4",
                Frame::v4(
                    CLIENT,
                    SRC4,
                    Ipv4Addr::new(10, 1, 0, i),
                    IPPROTO_TCP,
                    4000,
                    80,
                ),
            ),
            (
                "v4 any-port",
                Frame::v4(
                    CLIENT,
                    SRC4,
                    Ipv4Addr::new(10, 2, 0, i),
                    IPPROTO_TCP,
                    4000,
                    9999,
                ),
            ),
            (
                "v6",
                Frame::v6(
                    CLIENT,
                    SRC6,
                    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i.into()),
                    IPPROTO_TCP,
                    4000,
                    80,
                ),
            ),
        ];
        for (what, f) in &frames {
            for m_in in MARKS_IN {
                let out = dp.run(&f.bytes(), m_in).mark;
                assert_eq!(
                    out,
                    xt_mark(m_in, mark, mask),
                    "{what} VIP {mark:#x}/{mask:#x}, arriving with {m_in:#x}: got {out:#x}"
                );
                // From the peer: untouched, whatever the mask.
                let mut p = f.clone();
                p.src_mac = PEER;
                assert_eq!(dp.run(&p.bytes(), m_in).mark, m_in, "{what} from the peer");
            }
        }
    }
    // The arithmetic itself, spelled out for the cases people ask about.
    assert_eq!(xt_mark(0xdead_beef, 0x3, u32::MAX), 0x3, "full mask: set");
    assert_eq!(
        xt_mark(0xdead_beef, 0x3, 0xff),
        0xdead_be03,
        "other bits kept"
    );
    assert_eq!(xt_mark(0xdead_beef, 0x5, 0), 0xdead_beea, "mask 0: xor");
    assert_eq!(
        xt_mark(0x100, 0x103, 0xff),
        0x003,
        "value outside mask: toggled"
    );
    // No VIP: untouched.
    let other = Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 9, 9, 9), IPPROTO_TCP, 1, 80);
    for m_in in MARKS_IN {
        assert_eq!(dp.run(&other.bytes(), m_in).mark, m_in);
    }
}

#[test]
fn the_full_mask_sets_all_32_bits_as_before() {
    let dp = Loaded::new(&format!(
        "{HEAD}[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x3\n"
    ));
    let f = Frame::v4(
        CLIENT,
        SRC4,
        Ipv4Addr::new(172, 17, 85, 56),
        IPPROTO_TCP,
        1,
        80,
    );
    for m_in in MARKS_IN {
        assert_eq!(
            dp.run(&f.bytes(), m_in).mark,
            0x3,
            "arriving with {m_in:#x}"
        );
    }
}

#[test]
fn masks_follow_reloads_and_each_generation_has_its_own_classes() {
    let text = |masks: &[(u32, u32)]| -> String {
        let mut s = HEAD.to_owned();
        for (i, (m, k)) in masks.iter().enumerate() {
            s += &format!(
                "[[vip]]\naddress = \"10.3.0.{}\"\nmark = {m:#x}\nmark_mask = {k:#x}\n",
                i + 1
            );
        }
        s
    };
    let frame =
        |i: u8| Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 3, 0, i), IPPROTO_TCP, 1, 80).bytes();
    let m_in = 0xa5a5_a5a5;
    let gen_a = [(0x1, 0xff), (0x200, 0xff00), (0x7, 0xffff_ffff)];
    // The same VIPs with the classes in another order and other masks.
    let gen_b = [(0x200, 0xff00), (0x30000, 0xff_0000), (0x1, 0xf)];
    let mut dp = Loaded::new(&text(&gen_a));
    for round in 0..3 {
        for g in [&gen_a[..], &gen_b[..]] {
            if round > 0 || g != gen_a {
                dp.apply(&text(g));
            }
            for (i, &(m, k)) in g.iter().enumerate() {
                assert_eq!(
                    dp.run(&frame(i as u8 + 1), m_in).mark,
                    xt_mark(m_in, m, k),
                    "round {round}, VIP {i}: {m:#x}/{k:#x}"
                );
            }
            // What `stats` reads back from the live generation.
            let s = dp.stats();
            let live: Vec<(u32, u32)> = s.vips.iter().map(|v| (v.mark, v.mark_mask)).collect();
            assert_eq!(live, g);
        }
    }
}

#[test]
fn more_mask_classes_than_the_datapath_holds_are_refused_whole() {
    let vips: Vec<Vip> = (1..=16u32)
        .map(|i| {
            vip(
                IpAddr::V4(Ipv4Addr::new(10, 4, 0, i as u8)),
                None,
                1,
                1 | i << 8,
            )
        })
        .collect();
    let mut dp = Loaded::new(&format!(
        "{HEAD}[[vip]]\naddress = \"10.4.0.1\"\nmark = 0x9\n"
    ));
    let e = dp.dp.apply(&config_of(vips)).unwrap_err();
    assert!(
        e.to_string().contains("more than 15 distinct mark masks"),
        "{e}"
    );
    // Nothing changed.
    let f = Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 4, 0, 1), IPPROTO_TCP, 1, 80);
    assert_eq!(dp.run(&f.bytes(), 0xff00).mark, 0x9);
}

#[test]
fn packets_that_arrive_marked_are_counted_once() {
    let mut dp = Loaded::new(&format!(
        "{HEAD}[[vip]]\naddress = \"10.5.0.1\"\nport = 80\nmark = 0x3\nmark_mask = 0xff\nname = \"web\"\n\
         [[vip]]\naddress = \"10.5.0.2\"\nmark = 0x4\nname = \"any\"\n"
    ));
    let web = Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 5, 0, 1), IPPROTO_TCP, 1, 80);
    let mut web_peer = web.clone();
    web_peer.src_mac = PEER;
    let any = Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 5, 0, 2), IPPROTO_TCP, 1, 53);
    let none = Frame::v4(CLIENT, SRC4, Ipv4Addr::new(10, 5, 0, 3), IPPROTO_TCP, 1, 80);
    let arp = Frame::raw(CLIENT, 0x0806, vec![0; 28]);
    // (frame, packets arriving unmarked, packets arriving marked)
    let plan: [(&Frame, u64, u64); 5] = [
        (&web, 5, 3),
        (&web_peer, 2, 4),
        (&any, 1, 6),
        (&none, 7, 2),
        (&arp, 3, 5),
    ];
    for (f, clean, marked) in plan {
        for _ in 0..clean {
            dp.run(&f.bytes(), 0);
        }
        for i in 0..marked {
            dp.run(&f.bytes(), 0x100 << i);
        }
    }
    let s = dp.stats();
    let by_name = |n: &str| s.vips.iter().find(|v| v.name == n).unwrap();
    assert_eq!(
        (by_name("web").marked_packets, by_name("web").peer_packets),
        (8, 6)
    );
    assert_eq!(by_name("web").already_marked, 3 + 4);
    assert_eq!(by_name("any").already_marked, 6);
    assert_eq!(s.totals[global::ALREADY_MARKED], 3 + 4 + 6 + 2 + 5);
    // Once per packet: every outcome total still adds up to the packets sent.
    assert_eq!(
        s.totals["packets_seen"],
        5 + 3 + 2 + 4 + 1 + 6 + 7 + 2 + 3 + 5
    );
    assert_eq!(s.totals["no_vip"], 9);
    assert_eq!(s.totals["not_ip"], 8);

    // A removed VIP's already-marked count stays in the total (the retired slot).
    dp.apply(&format!(
        "{HEAD}[[vip]]\naddress = \"10.5.0.2\"\nmark = 0x4\nname = \"any\"\n"
    ));
    let after = dp.stats();
    assert_eq!(after.totals[global::ALREADY_MARKED], 20);
    assert_eq!(after.vips.len(), 1);
}

// ---------------------------------------------------------------------------------------
// import / export / import --verify with masks (real iptables-legacy and iptables-nft in
// a scratch namespace vs BPF_PROG_TEST_RUN, frames arriving with and without a mark).

use lvs_loader::{
    export,
    import::{self, Format, Options, verify},
};

const MASKED_RULES: &str = "\
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -d 172.17.85.56/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-xmark 0x3/0xff
-A PREROUTING -d 172.17.85.57/32 -p udp -m udp --dport 53 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-mark 0x100/0xff00
-A PREROUTING -d 172.17.85.58/32 -p tcp -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-xmark 0x10000/0xff0000
-A PREROUTING -d 172.17.85.58/32 -p tcp -m tcp --dport 443 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-xmark 0x2/0xff
-A PREROUTING -d 172.17.85.59/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-mark 0x7
COMMIT
# Generated by ip6tables-save
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8::56/128 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-xmark 0x40000000/0xc0000000
COMMIT
";

fn import_text(text: &str) -> import::ImportResult {
    import::import(
        text,
        &Options {
            format: Format::Auto,
            merge_peers: false,
            source_name: "masked.rules".into(),
        },
    )
}

fn marks_of(c: &Config) -> Vec<(String, u32, u32)> {
    let mut v: Vec<(String, u32, u32)> = c
        .vips
        .iter()
        .map(|v| {
            (
                config::format_endpoint(v.address, v.port, v.protocol),
                v.mark,
                v.mark_mask,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn import_translates_masks_and_verify_proves_them_on_premarked_frames() {
    let r = import_text(MASKED_RULES);
    assert!(!r.has_errors(), "{:?}", r.problems);
    assert_eq!(r.configs.len(), 1);
    let want = vec![
        ("172.17.85.56:80/tcp".to_owned(), 0x3, 0xff),
        // --set-mark V/M is --set-xmark V/(V|M), as libxt_MARK parses it.
        ("172.17.85.57:53/udp".to_owned(), 0x100, 0xff00),
        ("172.17.85.58:*/tcp".to_owned(), 0x10000, 0xff0000),
        // Both rules run on port 443: xt_MARK composed, (m & ~0xff00ff) ^ 0x10002.
        ("172.17.85.58:443/tcp".to_owned(), 0x10002, 0xff00ff),
        ("172.17.85.59:80/tcp".to_owned(), 0x7, u32::MAX),
        ("[2001:db8::56]:80/tcp".to_owned(), 0x4000_0000, 0xc000_0000),
    ];
    assert_eq!(marks_of(&r.configs[0].config), want);
    assert!(r.configs[0].toml.contains("mark_mask = 0xff00ff\n"));

    let rep = verify::verify(&r, &r.configs).expect("verify");
    assert!(rep.all_alike(), "{}", rep.render());
    assert_eq!(rep.references[0], "iptables-legacy");
    let probes = verify::probes(&[(String::new(), Some(0))], &r, &r.configs, &[false]);
    let premarked = probes
        .iter()
        .filter(|p| p.mark_in == verify::PREMARK)
        .count();
    assert!(
        premarked * 2 == probes.len(),
        "{premarked} of {}",
        probes.len()
    );

    // Verification catches a lost mask: with 0x3 over all 32 bits, exactly the frames
    // that arrive marked differ (unmarked ones get 0x3 either way).
    let mut lost = r.configs.clone();
    for v in &mut lost[0].config.vips {
        if v.mark == 0x3 {
            v.mark_mask = u32::MAX;
        }
    }
    let bad = verify::verify(&r, &lost).expect("verify");
    assert!(!bad.differences.is_empty(), "{}", bad.render());
    for d in &bad.differences {
        assert!(
            d.summary.starts_with("172.17.85.56:80/tcp")
                && d.summary.contains("arriving with mark 0x5aa5c33c")
                && d.iptables == xt_mark(verify::PREMARK, 0x3, 0xff)
                && d.lvs_ebpf == 0x3,
            "{}",
            bad.render()
        );
    }
}

#[test]
fn import_refuses_value_bits_outside_the_mask() {
    let r = import_text(
        "*mangle\n-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -j MARK --set-xmark 0x103/0xff\nCOMMIT\n",
    );
    assert!(r.has_errors());
    assert!(
        r.problems.iter().any(|p| p.line == Some(2)
            && p.reason
                .contains("--set-xmark 0x103/0xff has value bits outside its mask (0x100)")),
        "{:?}",
        r.problems
    );
}

#[test]
fn export_prints_set_xmark_and_its_import_round_trips() {
    let text = format!(
        "mark_mask = 0xff\n{HEAD}\
         [[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x3\nname = \"web\"\n\
         [[vip]]\naddress = \"172.17.85.56\"\nprotocol = \"udp\"\nmark = 0x300\nmark_mask = 0xff00\n\
         [[vip]]\naddress = \"2001:db8::56\"\nport = 443\nmark = 0x80000000\nmark_mask = 0x80000000\n\
         [[vip]]\naddress = \"172.17.85.57\"\nport = 80\nmark = 0x9\nmark_mask = 0xffffffff\n"
    );
    let c = config::parse(&text, "m.toml").unwrap();
    let rules = export::iptables_restore(&c, None);
    assert!(rules.contains("-j MARK --set-xmark 0x3/0xff\n"), "{rules}");
    assert!(
        rules.contains("-j MARK --set-xmark 0x300/0xff00\n"),
        "{rules}"
    );
    assert!(
        rules.contains("-j MARK --set-xmark 0x80000000/0x80000000\n"),
        "{rules}"
    );
    assert!(rules.contains("-j MARK --set-mark 0x9\n"), "{rules}");
    assert!(!rules.contains("WARNING"), "{rules}");
    let r = import_text(&rules);
    assert!(!r.has_errors(), "{:?}", r.problems);
    assert_eq!(marks_of(&r.configs[0].config), marks_of(&c));
    // And the exported rules, run by iptables, mark as the config does.
    let rep = verify::verify(
        &r,
        std::slice::from_ref(&import::Imported {
            ifaces: vec![String::new()],
            toml: text.clone(),
            config: c.clone(),
        }),
    )
    .expect("verify");
    assert!(rep.all_alike(), "{}", rep.render());

    // An any-port VIP whose bits an exact-port VIP does not own: iptables would run both
    // rules on that port; export says so.
    let overlap = config::parse(
        &format!(
            "{HEAD}[[vip]]\naddress = \"10.0.0.1\"\nmark = 0x100\nmark_mask = 0xff00\n\
             [[vip]]\naddress = \"10.0.0.1\"\nport = 80\nmark = 0x3\nmark_mask = 0xff\n"
        ),
        "m.toml",
    )
    .unwrap();
    let rules = export::iptables_restore(&overlap, None);
    assert!(
        rules.contains("# WARNING: 10.0.0.1:80/tcp matches the any-port rule of 10.0.0.1:*/tcp too: iptables leaves that rule's bits 0xff00 set"),
        "{rules}"
    );
}

#[test]
fn check_keepalived_warns_that_ipvs_matches_all_32_bits() {
    use lvs_loader::keepalived::{check, parse};
    let dir = std::env::temp_dir().join(format!("lvs-marks-ka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    172.17.85.56\n  }\n}\n\
         virtual_server fwmark 3 {\n  lb_algo rr\n  lb_kind DR\n  real_server 172.17.85.54 80 {\n  }\n}\n\
         virtual_server fwmark 4 {\n  lb_algo rr\n  lb_kind DR\n  real_server 172.17.85.54 80 {\n  }\n}\n",
    )
    .unwrap();
    let k = parse::parse_file(&conf, Some("dr1".into()));
    let config = |mask3: &str| {
        config::parse(
            &format!(
                "{HEAD}[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 3\n{mask3}\
                 [[vip]]\naddress = \"172.17.85.56\"\nport = 443\nmark = 4\n"
            ),
            "m.toml",
        )
        .unwrap()
    };
    let warnings = |c: &Config| -> Vec<String> {
        check::check(c, Some(&k), None, &Default::default())
            .findings
            .into_iter()
            .filter(|f| f.message.contains("IPVS schedules"))
            .map(|f| {
                assert_eq!(f.level, check::Level::Warning, "{}", f.message);
                format!("{}: {}", f.loc.map_or(0, |l| l.line), f.message)
            })
            .collect()
    };
    assert_eq!(
        warnings(&config("")),
        Vec::<String>::new(),
        "full masks: nothing to say"
    );
    let w = warnings(&config("mark_mask = 0xff\n"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("10: mark 0x3/0xff (172.17.85.56:80/tcp): lvs-ebpf sets only the bits 0xff, but IPVS schedules `virtual_server fwmark 3` only when all 32 bits of the mark equal 3: a packet that arrives with any of the bits 0xffffff00 set"),
        "{w:?}"
    );
    assert!(w[0].contains("--and-mark 0xff"), "{w:?}");
    // A warning, not a problem: the exit status stays 0 for an otherwise good setup.
    let r = check::check(
        &config("mark_mask = 0xff\n"),
        Some(&k),
        None,
        &Default::default(),
    );
    assert!(
        r.findings.iter().all(|f| f.level == check::Level::Warning),
        "{:?}",
        r.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Differential test against the real thing: the same frames go into one namespace running
//! lvs-ebpf and one running the equivalent iptables-legacy recipe
//! (`model::iptables_rules`). Counting rules appended to `mangle PREROUTING` in both
//! tell which mark each frame carried when netfilter saw it. Every frame must land on
//! the same mark in both, and on what the reference model predicts.
//!
//! The one intended difference: frames the recipe's xt matches "hot-drop" (a TCP header
//! cut short, a TCP fragment at offset 8, unreadable IPv6 extension headers) are dropped
//! by iptables; lvs-ebpf never drops, it leaves them as the model says.
//!
//! A second run gives the VIPs masks (a global `mark_mask`, per-VIP ones, one full; the
//! recipe then uses `--set-xmark M/MASK`, as `model::iptables_rules` writes it), including
//! an any-port VIP whose mask bits the exact-port VIP lacks (iptables composes both rules'
//! marks there, lvs-ebpf applies the exact one: each as the model predicts), and makes
//! every frame arrive already marked (two arriving marks): frames from a client namespace
//! lose their mark crossing into the director (`skb_scrub_packet`), so these are sent
//! from a packet socket with `SO_MARK` inside the director namespace, over a veth pair
//! whose both ends live there (the mark survives), into the interface the marker or the
//! recipe watches.

use std::{collections::BTreeSet, net::IpAddr};

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use lvs_tests::{
    framegen,
    frames::*,
    lab::{DEV, DIRECTOR_MAC, DIRECTOR_MAC_STR, Lab, mark_count, path_str},
    model::{self, Expectation, Netfilter},
    netns::NetNs,
};
use proptest::strategy::{Strategy as _, ValueTree as _};

const VLAN_ID: u16 = 100;

/// The mark of a frame that arrives with none.
const UNMARKED: u32 = 0;

/// Sync frames go to these addresses: once netfilter has counted one, every frame sent
/// before it on the same link has been through PREROUTING too (one backlog queue, in
/// order), so a slow guest can't make a frame look dropped.
const SYNC4: [u8; 4] = [192, 0, 2, 254];
const SYNC6: &str = "2001:db8::fe";

fn sync_frame(v6: bool) -> Vec<u8> {
    let mac = framegen::MACS[0];
    let f = if v6 {
        Frame::v6(
            mac,
            "2001:db8:1::1".parse().expect("ip"),
            SYNC6.parse().expect("ip"),
            IPPROTO_UDP,
            1,
            9,
        )
    } else {
        Frame::v4(
            mac,
            [198, 51, 100, 1].into(),
            SYNC4.into(),
            IPPROTO_UDP,
            1,
            9,
        )
    };
    f.with_dst_mac(DIRECTOR_MAC).bytes()
}

fn sync_addr(v6: bool) -> String {
    if v6 {
        format!("{SYNC6}/128")
    } else {
        "192.0.2.254/32".to_owned()
    }
}

fn tables(v6: bool) -> (&'static str, &'static str) {
    if v6 {
        ("ip6tables-legacy", "ip6tables-legacy-save")
    } else {
        ("iptables-legacy", "iptables-legacy-save")
    }
}

/// Appends, after whatever is in PREROUTING already, a rule that counts and skips the sync
/// frames, then counting rules `-m mark --mark M` for every mark the config uses and 0.
fn watch_all(ns: &NetNs, marks: &BTreeSet<u32>) {
    for v6 in [false, true] {
        let (bin, _) = tables(v6);
        ns.run(
            bin,
            &[
                "-w",
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-d",
                &sync_addr(v6),
                "-j",
                "RETURN",
            ],
        );
        for m in marks {
            ns.run(
                bin,
                &[
                    "-w",
                    "-t",
                    "mangle",
                    "-A",
                    "PREROUTING",
                    "-m",
                    "mark",
                    "--mark",
                    &format!("{m:#x}"),
                ],
            );
        }
    }
}

/// The sync counter and the mark counters (mark -> packets) of one family.
#[derive(Clone)]
struct Counters {
    sync: u64,
    marks: Vec<(u32, u64)>,
}

fn snapshot(ns: &NetNs, v6: bool, marks: &BTreeSet<u32>) -> Counters {
    let out = ns.run(tables(v6).1, &["-c", "-t", "mangle"]);
    let rules: Vec<(u64, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix('[').and_then(|l| l.split_once("] ")))
        .map(|(c, rule)| {
            (
                c.split(':')
                    .next()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .expect("counter"),
                rule.trim(),
            )
        })
        .collect();
    let count = |want: &str| {
        rules
            .iter()
            .find(|(_, r)| *r == want)
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("no rule {want} in {out}"))
    };
    Counters {
        sync: count(&format!("-A PREROUTING -d {} -j RETURN", sync_addr(v6))),
        marks: marks
            .iter()
            .map(|m| (*m, count(&format!("-A PREROUTING -m mark --mark {m:#x}"))))
            .collect(),
    }
}

/// Sends `frame` then a sync frame, waits until netfilter has seen the sync frame, and
/// says which mark (if any) `frame` carried. `last` is the family's previous snapshot.
fn observe(
    lab: &Lab,
    frame: &[u8],
    v6: bool,
    marks: &BTreeSet<u32>,
    last: &mut Counters,
) -> Result<Option<u32>, String> {
    observe_via(
        &lab.director,
        &|f| lab.sender().send(f),
        frame,
        v6,
        marks,
        last,
    )
}

/// [`observe`] with frames handed to `send`, counted in `director`.
fn observe_via(
    director: &NetNs,
    send: &dyn Fn(&[u8]),
    frame: &[u8],
    v6: bool,
    marks: &BTreeSet<u32>,
    last: &mut Counters,
) -> Result<Option<u32>, String> {
    send(frame);
    send(&sync_frame(v6));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lab_director = director;
    let now = loop {
        let c = snapshot(lab_director, v6, marks);
        if c.sync > last.sync {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync frame never reached netfilter in {}",
            lab_director.name
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let hits: Vec<u32> = last
        .marks
        .iter()
        .zip(&now.marks)
        .filter(|(b, a)| a.1 != b.1)
        .map(|(b, _)| b.0)
        .collect();
    *last = now;
    match hits.as_slice() {
        [] => Ok(None),
        [m] => Ok(Some(*m)),
        _ => Err(format!("several counters moved: {hits:?}")),
    }
}

/// The iptables-legacy recipe (`model::iptables_rules`) in `ns`'s mangle PREROUTING.
fn install_recipe(ns: &NetNs, config: &lvs_loader::config::Config) {
    for (v6, args) in model::iptables_rules(config) {
        let mut a: Vec<&str> = vec!["-w"];
        a.extend(args.iter().map(String::as_str));
        ns.run(tables(v6).0, &a);
    }
}

fn vlan_supported(ns: &NetNs) -> bool {
    ns.output(
        "ip",
        &[
            "link",
            "add",
            "link",
            DEV,
            "name",
            "lvs0.100",
            "type",
            "vlan",
            "id",
            &VLAN_ID.to_string(),
        ],
    )
    .status
    .success()
}

fn is_v6(frame: &[u8]) -> bool {
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    let mut off = 14;
    while et == ETH_P_8021Q && frame.len() >= off + 4 {
        et = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
        off += 4;
    }
    et == ETH_P_IPV6
}

/// How a frame compared, when it matched the model.
enum Outcome {
    /// The IP layer dropped it in both namespaces.
    DroppedBoth,
    /// iptables hot-dropped it; lvs-ebpf left it as the model says.
    HotDrop,
    /// This kernel's ip6tables dropped a chain past the payload; lvs-ebpf as the model.
    ChainPastEnd,
    /// Both passed it with the marks the model predicts; `marked`: a rule matched;
    /// `composed`: iptables applied more rules than lvs-ebpf (masks of an any-port and an
    /// exact-port VIP overlapping), so the two marks may differ by design.
    Compared { marked: bool, composed: bool },
}

/// Judges one frame that arrived with mark `pre`: what lvs-ebpf's and the recipe's
/// namespaces saw (`None`: no counter moved) against the model. The two must see the
/// same mark unless the model says iptables composes rules lvs-ebpf doesn't.
fn judge(exp: &Expectation, pre: u32, bpf: Option<u32>, ipt: Option<u32>) -> Option<Outcome> {
    let bpf_ok = bpf == Some(exp.bpf_mark(pre));
    if exp.dropped_before_netfilter {
        return (bpf.is_none() && ipt.is_none()).then_some(Outcome::DroppedBoth);
    }
    match exp.netfilter {
        Netfilter::HotDrop => (ipt.is_none() && bpf_ok).then_some(Outcome::HotDrop),
        // Older kernels' ip6tables drops an extension chain that ends past the payload
        // (seen on Debian's 6.1 and 6.12); lvs-ebpf must still leave it as the model says.
        Netfilter::Mark(_) if exp.chain_past_end && ipt.is_none() => {
            bpf_ok.then_some(Outcome::ChainPastEnd)
        }
        Netfilter::Mark(op) => {
            let composed = exp.bpf.is_some() && op != exp.bpf;
            let ok = ipt == exp.netfilter.mark(pre) && bpf_ok && (bpf == ipt || composed);
            ok.then_some(Outcome::Compared {
                marked: op.is_some(),
                composed,
            })
        }
    }
}

#[test]
fn lvs_ebpf_marks_like_the_iptables_recipe() {
    let config = lvs_loader::config::parse(framegen::CONFIG, "framegen.toml").expect("config");
    let bpf = Lab::new("dfb");
    let ipt = Lab::new("dfi");
    let vlans = vlan_supported(&bpf.director) && vlan_supported(&ipt.director);
    if vlans {
        for lab in [&bpf, &ipt] {
            lab.director.ip(&["link", "set", "lvs0.100", "up"]);
        }
    } else {
        eprintln!("NOTE: no 802.1Q support in this kernel (8021q): VLAN frames are left out");
    }

    // The recipe in one namespace, lvs-ebpf in the other.
    install_recipe(&ipt.director, &config);
    let cfg = bpf.config("vips.toml", framegen::CONFIG);
    bpf.loader_ok(&["attach", DEV, "--config", path_str(&cfg)]);

    let mut marks: BTreeSet<u32> = config.vips.iter().map(|v| v.mark).collect();
    marks.insert(UNMARKED);
    watch_all(&bpf.director, &marks);
    watch_all(&ipt.director, &marks);

    // Frames: the generator's (IP only, at most one 802.1Q tag with our VLAN id).
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = framegen::frame();
    let mut frames = Vec::new();
    // Fewer under qemu's TCG, where every iptables-save costs ~100 ms.
    let wanted = if std::env::var_os("LVS_IN_VM").is_some() {
        160
    } else {
        400
    };
    while frames.len() < wanted {
        let f = strategy.new_tree(&mut runner).expect("tree").current();
        let mut f = f;
        f[0..6].copy_from_slice(&DIRECTOR_MAC);
        let et = u16::from_be_bytes([f[12], f[13]]);
        let keep = match et {
            ETH_P_IP | ETH_P_IPV6 => true,
            ETH_P_8021Q if vlans => {
                // one tag, ours
                f[14..16].copy_from_slice(&VLAN_ID.to_be_bytes());
                let inner = u16::from_be_bytes([f[16], f[17]]);
                inner == ETH_P_IP || inner == ETH_P_IPV6
            }
            _ => false,
        };
        if keep {
            frames.push(f);
        }
    }

    let mut failures = Vec::new();
    let (mut same, mut hotdrops, mut dropped, mut marked, mut kernel_drops) = (0, 0, 0, 0, 0);
    let mut last_bpf = [
        snapshot(&bpf.director, false, &marks),
        snapshot(&bpf.director, true, &marks),
    ];
    let mut last_ipt = [
        snapshot(&ipt.director, false, &marks),
        snapshot(&ipt.director, true, &marks),
    ];
    for f in &frames {
        let v6 = is_v6(f);
        let got_bpf = observe(&bpf, f, v6, &marks, &mut last_bpf[usize::from(v6)]);
        let got_ipt = observe(&ipt, f, v6, &marks, &mut last_ipt[usize::from(v6)]);
        let (got_bpf, got_ipt) = match (got_bpf, got_ipt) {
            (Ok(b), Ok(i)) => (b, i),
            (b, i) => {
                failures.push(format!(
                    "frame {}: bpf {b:?} iptables {i:?}",
                    lvs_tests::harness::hex(f)
                ));
                continue;
            }
        };
        let exp = model::evaluate(&config, f);
        // Frames from the sender namespace arrive unmarked (`skb_scrub_packet`).
        let outcome = judge(&exp, UNMARKED, got_bpf, got_ipt);
        match outcome {
            Some(Outcome::DroppedBoth) => dropped += 1,
            Some(Outcome::HotDrop) => hotdrops += 1,
            Some(Outcome::ChainPastEnd) => kernel_drops += 1,
            Some(Outcome::Compared {
                marked: m,
                composed,
            }) => {
                assert!(!composed, "full masks compose nothing: {exp:?}");
                same += 1;
                marked += usize::from(m);
            }
            None => {}
        }
        if outcome.is_none() {
            failures.push(format!(
                "frame {}:\n    lvs-ebpf saw {got_bpf:?}, iptables saw {got_ipt:?}, model {exp:?}",
                lvs_tests::harness::hex(f)
            ));
        }
    }
    eprintln!(
        "{} frames: {same} compared mark for mark ({marked} marked), {hotdrops} hot-dropped by iptables, {kernel_drops} IPv6 chains past the payload dropped by this kernel's ip6tables, {dropped} dropped by the IP layer in both",
        frames.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} frames differ:\n{}",
        failures.len(),
        frames.len(),
        failures.join("\n")
    );
    assert!(
        marked >= wanted / 5,
        "too few marked frames to mean anything: {marked}"
    );
    assert!(same >= wanted * 3 / 4, "too few comparable frames: {same}");
}

#[test]
fn fixture_addresses_round_trip_through_iptables() {
    // The counting helper itself: a frame to the VIP from a client is seen with mark 3 by
    // the iptables recipe, from the peer with mark 0.
    let config = lvs_loader::config::parse(framegen::CONFIG, "framegen.toml").expect("config");
    let lab = Lab::new("dfr");
    install_recipe(&lab.director, &config);
    let vip: IpAddr = "172.17.85.56".parse().expect("ip");
    lab.watch_marks(&[vip], &[0, 3]);
    let f = |mac| {
        Frame::v4(
            mac,
            "198.51.100.1".parse().expect("ip"),
            "172.17.85.56".parse().expect("ip"),
            IPPROTO_TCP,
            1,
            80,
        )
        .with_dst_mac(DIRECTOR_MAC)
        .bytes()
    };
    lab.send(&[
        f(framegen::MACS[0]),
        f(framegen::MACS[0]),
        f(framegen::MACS[1]),
    ]);
    assert_eq!(mark_count(&lab.director, vip, 3), 2);
    assert_eq!(mark_count(&lab.director, vip, 0), 1);
}

/// An AF_PACKET socket on `dev` inside `ns` whose frames carry `skb->mark = mark`.
struct MarkedSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl MarkedSender {
    fn open(ns: &NetNs, dev: &str, mark: u32) -> Self {
        let _guard = ns.enter();
        let name = lvs_loader::IfName::new(dev).expect("interface name");
        let ifindex = lvs_loader::sys::ifindex(&name).expect("ifindex") as i32;
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a u32 option value.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MARK,
                (&mark as *const u32).cast(),
                4,
            )
        };
        assert_eq!(rc, 0, "SO_MARK: {}", std::io::Error::last_os_error());
        Self { fd, ifindex }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: all-zero sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        // SAFETY: valid buffer and address.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The marker (or the recipe) watches `MARKED_DEV`; frames come in from `INJECT_DEV`, its
/// veth peer in the same namespace.
const INJECT_DEV: &str = "lvsinj0";
const MARKED_DEV: &str = "lvsm0";

fn add_inject_pair(ns: &NetNs) {
    ns.ip(&[
        "link", "add", INJECT_DEV, "type", "veth", "peer", "name", MARKED_DEV,
    ]);
    ns.ip(&[
        "link",
        "set",
        "dev",
        MARKED_DEV,
        "address",
        DIRECTOR_MAC_STR,
    ]);
    ns.ip(&["link", "set", INJECT_DEV, "up"]);
    ns.ip(&["link", "set", MARKED_DEV, "up"]);
}

/// [`framegen::CONFIG`] with masks: a global `mark_mask = 0xff`, VIPs with masks of their
/// own (a nibble, the second byte, two high bits and a byte, the explicit full mask), and
/// the any-port 192.0.2.10/tcp VIP with the third byte, which its exact-port :443/tcp VIP
/// (global mask) lacks: iptables applies both rules to :443 frames, lvs-ebpf one.
fn masked_config_text() -> String {
    const GLOBAL_MASK: &str = "mark_mask = 0xff\n";
    let mut text = format!("{GLOBAL_MASK}{}", framegen::CONFIG);
    for (from, to) in [
        ("mark = 0x3\n", "mark = 0x3\nmark_mask = 0xf\n"),
        ("mark = 0x13\n", "mark = 0x1300\nmark_mask = 0xff00\n"),
        ("mark = 0x40\n", "mark = 0x400000\nmark_mask = 0xff0000\n"),
        (
            "mark = 0x42\n",
            "mark = 0x80000042\nmark_mask = 0xc00000ff\n",
        ),
        ("mark = 0x6\n", "mark = 0x6\nmark_mask = 0xffffffff\n"),
        ("mark = 0x60\n", "mark = 0x60\nmark_mask = 0xf0\n"),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in {text}");
        text = text.replace(from, to);
    }
    text
}

#[test]
fn masked_marks_on_premarked_frames_like_the_iptables_recipe() {
    /// The two marks frames arrive with (alternating), bits in and outside every mask.
    const PREMARKS: [u32; 2] = [0x5aa5_c33c, 0xa55a_3cc3];
    let text = masked_config_text();
    let config = lvs_loader::config::parse(&text, "framegen.toml").expect("config");
    let classes: BTreeSet<u32> = config.vips.iter().map(|v| v.mark_mask).collect();
    assert!(classes.len() >= 6, "{classes:x?}");
    assert_eq!(
        lvs_loader::export::overlapping_masks(&config).len(),
        1,
        "one any-port/exact-port pair with overlapping masks"
    );
    let bpf = Lab::new("dmb");
    let ipt = Lab::new("dmi");
    for lab in [&bpf, &ipt] {
        add_inject_pair(&lab.director);
    }
    // The model's recipe, any-port first: its MARK target is what `export --iptables`
    // prints (--set-xmark M/MASK for a partial mask).
    let peers: Vec<[u8; 6]> = config.peers.iter().map(|p| p.mac).collect();
    for (vip, (_, rule)) in model::rule_order(&config)
        .into_iter()
        .zip(model::iptables_rules(&config))
    {
        let export = lvs_loader::export::rule_args(vip, &peers);
        let target = |a: &[String]| a[a.len() - 3..].to_vec();
        assert_eq!(target(&rule), target(&export));
        assert_eq!(
            rule.contains(&"--set-xmark".to_owned()),
            vip.mark_mask != model::MarkOp::FULL_MASK,
            "{rule:?}"
        );
    }
    install_recipe(&ipt.director, &config);
    let cfg = bpf.config("vips.toml", &text);
    bpf.loader_ok(&["attach", MARKED_DEV, "--config", path_str(&cfg)]);

    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = framegen::frame();
    let wanted = if std::env::var_os("LVS_IN_VM").is_some() {
        60
    } else {
        200
    };
    let mut frames = Vec::new();
    while frames.len() < wanted {
        let mut f = strategy.new_tree(&mut runner).expect("tree").current();
        f[0..6].copy_from_slice(&DIRECTOR_MAC);
        if matches!(u16::from_be_bytes([f[12], f[13]]), ETH_P_IP | ETH_P_IPV6) {
            let pre = PREMARKS[frames.len() % PREMARKS.len()];
            frames.push((f, pre));
        }
    }
    // And client frames to the any-port + exact-port pair with overlapping masks, with
    // each arriving mark: iptables composes both rules' marks there.
    let overlap = lvs_loader::export::overlapping_masks(&config)[0].0;
    for pre in PREMARKS {
        let IpAddr::V4(dst) = overlap.address else {
            panic!("the overlapping pair is IPv4: {overlap:?}")
        };
        let f = Frame::v4(
            framegen::MACS[0],
            [198, 51, 100, 1].into(),
            dst,
            overlap.protocol.number(),
            1234,
            overlap.port.expect("the exact-port VIP"),
        )
        .with_dst_mac(DIRECTOR_MAC)
        .bytes();
        frames.push((f, pre));
    }
    // A counting rule for every mark the model predicts in either namespace: a wrong mark
    // moves no counter and shows as `None`.
    let mut marks: BTreeSet<u32> = PREMARKS.into();
    for (f, pre) in &frames {
        let exp = model::evaluate(&config, f);
        marks.insert(exp.bpf_mark(*pre));
        marks.extend(exp.netfilter.mark(*pre));
    }
    watch_all(&bpf.director, &marks);
    watch_all(&ipt.director, &marks);
    let tx_bpf = PREMARKS.map(|m| MarkedSender::open(&bpf.director, INJECT_DEV, m));
    let tx_ipt = PREMARKS.map(|m| MarkedSender::open(&ipt.director, INJECT_DEV, m));

    let mut last_bpf = [
        snapshot(&bpf.director, false, &marks),
        snapshot(&bpf.director, true, &marks),
    ];
    let mut last_ipt = [
        snapshot(&ipt.director, false, &marks),
        snapshot(&ipt.director, true, &marks),
    ];
    let (mut failures, mut same, mut marked, mut composed) = (Vec::new(), 0, 0, 0);
    for (f, pre) in &frames {
        let v6 = is_v6(f);
        let k = PREMARKS.iter().position(|m| m == pre).expect("a premark");
        let b = observe_via(
            &bpf.director,
            &|x| tx_bpf[k].send(x),
            f,
            v6,
            &marks,
            &mut last_bpf[usize::from(v6)],
        );
        let i = observe_via(
            &ipt.director,
            &|x| tx_ipt[k].send(x),
            f,
            v6,
            &marks,
            &mut last_ipt[usize::from(v6)],
        );
        let (Ok(got_bpf), Ok(got_ipt)) = (&b, &i) else {
            failures.push(format!(
                "frame {}: bpf {b:?} iptables {i:?}",
                lvs_tests::harness::hex(f)
            ));
            continue;
        };
        let exp = model::evaluate(&config, f);
        match judge(&exp, *pre, *got_bpf, *got_ipt) {
            Some(Outcome::Compared { marked: m, composed: c }) => {
                same += 1;
                marked += usize::from(m);
                composed += usize::from(c && got_bpf != got_ipt);
            }
            Some(_) => {}
            None => failures.push(format!(
                "frame {} arriving with {pre:#x}:\n    lvs-ebpf saw {got_bpf:x?}, iptables saw {got_ipt:x?}, model {exp:x?}",
                lvs_tests::harness::hex(f)
            )),
        }
    }
    eprintln!(
        "{} frames arriving with marks {PREMARKS:x?}, {} mask classes: {same} compared mark for mark ({marked} marked, {composed} where iptables composed two rules' marks)",
        frames.len(),
        classes.len()
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(marked >= wanted / 5, "too few marked frames: {marked}");
    assert!(same >= wanted * 3 / 4, "too few comparable frames: {same}");
    assert!(
        composed >= PREMARKS.len(),
        "too few frames reached the composed any-port + exact-port marks: {composed}"
    );
    bpf.loader_ok(&["detach", MARKED_DEV]);
}

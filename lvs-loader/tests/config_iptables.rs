//! What the config accepts, measured against the kernel and iptables-legacy/ip6tables in
//! scratch network namespaces (a thread that `unshare`s its own, so nothing has a name to
//! clash with other tests and everything disappears with the thread). Needs root.
//!
//! * IPv4-mapped VIPs (issue 7 defect 8): iptables installs `-d ::ffff:a.b.c.d` as the
//!   IPv4 address, ip6tables as an IPv6 address clients never send to; the config
//!   rejects it and names the IPv4 address iptables installed.
//! * Which addresses can be a VIP at all: a frame sent over a veth to each address
//!   configured on the receiving side shows which ones the kernel delivers.
//! * Port lists and ranges (issue 8): the marks the real program gives (BPF_PROG_TEST_RUN)
//!   equal those `-m multiport --dports` gives to real packets.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::Command,
    time::{Duration, Instant},
};

use lvs_loader::config;

const PEER: &str = "[[peer]]\nmac = \"00:0C:29:57:88:CE\"\n";

/// Runs `f` on a thread in a new, empty network namespace (with `lo` up).
fn in_scratch_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(2) affects this thread only (network namespaces are per task).
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            sh(&["ip", "link", "set", "lo", "up"]);
            f()
        })
        .join()
        .expect("scratch netns thread")
    })
}

/// Runs a command (in the calling thread's namespace), panicking on failure.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// iptables-legacy or ip6tables-legacy, waiting for the xtables lock.
fn ipt(v6: bool, args: &[&str]) -> String {
    let mut a = vec![
        if v6 {
            "ip6tables-legacy"
        } else {
            "iptables-legacy"
        },
        "-w",
    ];
    a.extend_from_slice(args);
    sh(&a)
}

/// Packet counts of the rules of `table`/`chain` whose line contains `needle`, in order.
fn counts(v6: bool, table: &str, chain: &str, needle: &str) -> Vec<u64> {
    ipt(v6, &["-t", table, "-L", chain, "-v", "-x", "-n"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(u64::MAX)
        })
        .collect()
}

/// The count of the one rule whose destination column is exactly `dst`.
fn count_for(v6: bool, table: &str, chain: &str, dst: &str) -> u64 {
    let listing = ipt(v6, &["-t", table, "-L", chain, "-v", "-x", "-n"]);
    let hits: Vec<u64> = listing
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == dst))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(u64::MAX)
        })
        .collect();
    assert_eq!(hits.len(), 1, "{dst} in:\n{listing}");
    hits[0]
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame with a UDP datagram (8 bytes of payload) from `src` to `dst`.
fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: IpAddr, dst: IpAddr, dport: u16) -> Vec<u8> {
    let payload = *b"lvs-test";
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&(20 + udp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = csum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo.extend_from_slice(&udp);
            let c = csum(&pseudo);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&udp);
    f
}

fn mac_of(dev: &str) -> [u8; 6] {
    let out = sh(&["ip", "-br", "link", "show", dev]);
    let mac = out.split_whitespace().nth(2).expect("MAC column");
    config::parse_mac(mac).unwrap_or_else(|e| panic!("{dev}: {e}"))
}

/// Sends raw frames out of `dev` (an AF_PACKET socket in the calling thread's namespace).
fn send_raw(dev: &str, frames: &[Vec<u8>]) {
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: valid C string; plain socket calls on our own fd.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0, "no {dev}");
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_ifindex = ifindex as i32;
    sa.sll_halen = 6;
    for f in frames {
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn rejection(address: &str) -> Option<String> {
    let text = format!("{PEER}[[vip]]\naddress = \"{address}\"\nmark = 3\n");
    config::parse(&text, "vips.toml")
        .err()
        .map(|e| e.diagnostics()[0].message.clone())
}

#[test]
fn an_ipv4_mapped_vip_is_refused_with_the_address_iptables_installs() {
    let (v4_rule, v6_rule, v4_hits, v6_hits) = in_scratch_netns(|| {
        for v6 in [false, true] {
            ipt(
                v6,
                &[
                    "-t",
                    "mangle",
                    "-A",
                    "PREROUTING",
                    "-d",
                    "::ffff:10.99.1.1",
                    "-p",
                    "udp",
                    "-j",
                    "MARK",
                    "--set-mark",
                    "3",
                ],
            );
        }
        let v4_rule = sh(&["iptables-legacy-save", "-t", "mangle"]);
        let v6_rule = sh(&["ip6tables-legacy-save", "-t", "mangle"]);
        // Clients: an IPv4 socket, and an IPv6 socket addressing the mapped address
        // (Linux sends that as IPv4).
        sh(&["ip", "addr", "add", "10.99.1.1/32", "dev", "lo"]);
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.send_to(b"x", "10.99.1.1:9"))
            .expect("IPv4 send");
        UdpSocket::bind("[::]:0")
            .and_then(|s| s.send_to(b"x", "[::ffff:10.99.1.1]:9"))
            .expect("IPv6 socket send");
        wait_until("both packets in PREROUTING", || {
            counts(false, "mangle", "PREROUTING", "MARK").first() == Some(&2)
        });
        (
            v4_rule,
            v6_rule,
            counts(false, "mangle", "PREROUTING", "MARK")[0],
            counts(true, "mangle", "PREROUTING", "MARK")[0],
        )
    });
    let installed = v4_rule
        .lines()
        .find_map(|l| l.strip_prefix("-A PREROUTING -d "))
        .and_then(|l| l.split('/').next())
        .expect("iptables installed a rule");
    assert_eq!(installed, "10.99.1.1", "{v4_rule}");
    assert!(
        v6_rule.contains("-A PREROUTING -d ::ffff:10.99.1.1/128"),
        "{v6_rule}"
    );
    assert_eq!(
        (v4_hits, v6_hits),
        (2, 0),
        "IPv4 marks both clients, ip6tables none"
    );

    let msg = rejection("::ffff:10.99.1.1").expect("rejected");
    assert!(
        msg.contains(&format!("write the IPv4 VIP \"{installed}\"")),
        "{msg}"
    );
    assert!(msg.contains(&format!("-d {installed}/32")), "{msg}");
    // What the message suggests is accepted.
    assert_eq!(rejection(installed), None);
}

#[test]
fn addresses_the_kernel_never_delivers_from_an_interface_are_refused() {
    // Every address is configured on lvB; a frame to it arrives on lvB from lvA.
    let v4 = [
        "10.99.1.1",
        "0.1.2.3",
        "240.0.0.1",
        "127.0.0.1",
        "127.0.0.9",
    ];
    let v6 = ["2001:db8::1", "::1", "::ffff:10.99.1.2", "::10.99.1.3"];
    let (seen, delivered) = in_scratch_netns(|| {
        sh(&[
            "ip", "link", "add", "lvA", "type", "veth", "peer", "name", "lvB",
        ]);
        for dev in ["lvA", "lvB"] {
            sh(&["ip", "link", "set", dev, "up"]);
        }
        for k in ["all", "default", "lvB"] {
            sh(&["sysctl", "-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")]);
        }
        for a in v4 {
            sh(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lvB"]);
        }
        for a in v6 {
            if a != "::1" {
                sh(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/128"),
                    "dev",
                    "lvB",
                    "nodad",
                ]);
            }
        }
        for (v6, list) in [(false, &v4[..]), (true, &v6[..])] {
            for a in list {
                ipt(
                    v6,
                    &[
                        "-t",
                        "mangle",
                        "-A",
                        "PREROUTING",
                        "-i",
                        "lvB",
                        "-d",
                        a,
                        "-j",
                        "MARK",
                        "--set-mark",
                        "3",
                    ],
                );
                ipt(v6, &["-t", "filter", "-A", "INPUT", "-i", "lvB", "-d", a]);
            }
        }
        let (to, from) = (mac_of("lvB"), [0x02, 0, 0, 0, 0, 0x01]);
        let mut frames = Vec::new();
        // The controls (first in each list) go last: once they are counted, so is the rest.
        for a in v4.iter().rev() {
            frames.push(udp_frame(
                to,
                from,
                Ipv4Addr::new(10, 99, 1, 100).into(),
                a.parse().unwrap(),
                80,
            ));
        }
        for a in v6.iter().rev() {
            let src: Ipv6Addr = "2001:db8::100".parse().unwrap();
            frames.push(udp_frame(to, from, src.into(), a.parse().unwrap(), 80));
        }
        send_raw("lvA", &frames);
        wait_until("the controls delivered", || {
            count_for(false, "filter", "INPUT", v4[0]) == 1
                && count_for(true, "filter", "INPUT", v6[0]) == 1
        });
        let mut seen = Vec::new();
        let mut delivered = Vec::new();
        for (v6, list) in [(false, &v4[..]), (true, &v6[..])] {
            for a in list {
                seen.push((*a, count_for(v6, "mangle", "PREROUTING", a)));
                delivered.push((*a, count_for(v6, "filter", "INPUT", a) == 1));
            }
        }
        (seen, delivered)
    });
    // What iptables sees: loopback IPv4 is marked in PREROUTING, then dropped as a
    // martian; IPv6 loopback is dropped before PREROUTING.
    let seen_of = |a: &str| seen.iter().find(|(x, _)| *x == a).unwrap().1;
    assert_eq!(seen_of("127.0.0.1"), 1, "{seen:?}");
    assert_eq!(seen_of("::1"), 0, "{seen:?}");
    for (a, arrives) in delivered {
        let refused = rejection(a);
        match a {
            // Delivered, but refused on purpose: ambiguous or deprecated forms of IPv4.
            "::ffff:10.99.1.2" | "::10.99.1.3" => {
                assert!(arrives, "{a}");
                let msg = refused.expect("refused");
                assert!(msg.contains("write the IPv4 VIP \"10.99.1."), "{msg}");
            }
            _ => assert_eq!(
                refused.is_none(),
                arrives,
                "{a}: kernel delivers: {arrives}, config: {refused:?}"
            ),
        }
    }
}

/// Marks of the real program (BPF_PROG_TEST_RUN) for UDP frames to `vip` at each port.
fn program_marks(config_text: &str, vip: Ipv4Addr, ports: &[u16]) -> Vec<bool> {
    let config = config::parse(config_text, "vips.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut dp = lvs_loader::datapath::Datapath::load().expect("load the program");
    dp.maps.apply(&config).expect("apply");
    let fd = dp.program_fd().expect("fd");
    ports
        .iter()
        .map(|&p| {
            let f = udp_frame(
                [0x02, 0, 0, 0, 0, 0xaa],
                [0x02, 0, 0, 0, 0, 0x01],
                Ipv4Addr::new(10, 99, 1, 100).into(),
                vip.into(),
                p,
            );
            let out = lvs_loader::testrun::run_skb(fd, &f, 0, 1).expect("test run");
            match out.mark {
                0 => false,
                3 => true,
                m => panic!("mark {m:#x}"),
            }
        })
        .collect()
}

#[test]
fn port_lists_and_ranges_mark_what_multiport_marks() {
    let probes: Vec<u16> = vec![
        1, 79, 80, 81, 442, 443, 444, 7999, 8000, 8001, 8050, 8099, 8100, 8101, 65535,
    ];
    let iptables = in_scratch_netns(|| {
        sh(&["ip", "addr", "add", "10.99.1.1/32", "dev", "lo"]);
        ipt(
            false,
            &[
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-d",
                "10.99.1.1",
                "-p",
                "udp",
                "-m",
                "multiport",
                "--dports",
                "80,443,8000:8100",
                "-j",
                "MARK",
                "--set-mark",
                "3",
            ],
        );
        for p in &probes {
            ipt(
                false,
                &[
                    "-t",
                    "mangle",
                    "-A",
                    "PREROUTING",
                    "-d",
                    "10.99.1.1",
                    "-p",
                    "udp",
                    "--dport",
                    &p.to_string(),
                    "-m",
                    "mark",
                    "--mark",
                    "3",
                ],
            );
        }
        let s = UdpSocket::bind("10.99.1.1:0").expect("bind");
        for p in &probes {
            s.send_to(b"x", (Ipv4Addr::new(10, 99, 1, 1), *p))
                .expect("send");
        }
        s.send_to(b"x", (Ipv4Addr::new(10, 99, 1, 1), 443))
            .expect("send");
        wait_until("the last packet", || {
            let c = counts(false, "mangle", "PREROUTING", "dpt:443 mark match 0x3");
            c.first() == Some(&2)
        });
        probes
            .iter()
            .map(|p| {
                let c = counts(
                    false,
                    "mangle",
                    "PREROUTING",
                    &format!("dpt:{p} mark match 0x3"),
                );
                assert_eq!(c.len(), 1, "port {p}");
                c[0] >= 1
            })
            .collect::<Vec<bool>>()
    });
    let expected: Vec<bool> = probes
        .iter()
        .map(|p| [80, 443].contains(p) || (8000..=8100).contains(p))
        .collect();
    assert_eq!(iptables, expected, "iptables multiport on {probes:?}");
    for list in ["[80, 443, \"8000-8100\"]", "[\"8000-8100\", 443, 80]"] {
        let cfg = format!(
            "{PEER}[[vip]]\naddress = \"10.99.1.1\"\nprotocol = \"udp\"\nport = {list}\nmark = 3\n"
        );
        assert_eq!(
            program_marks(&cfg, Ipv4Addr::new(10, 99, 1, 1), &probes),
            iptables,
            "lvs-ebpf with port = {list}, on {probes:?}"
        );
    }
}

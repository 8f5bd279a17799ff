//! `lvs-loader trace` on a real attachment in a test namespace: the events match the
//! packets sent (filtered by VIP and port, by source MAC) and the counters; a reload
//! while tracing (not blocked, new names); the lease ends tracing after a SIGKILL (the
//! program turns its switch off itself); the kernel's rate limit bounds the events.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lvs_tests::{
    conf::{WEB_NAMED, web_named_as},
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str},
    netns::loader_bin,
};

const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0xc1, 0x1e, 0x01];
const PEER: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
const OTHER: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 99);
const SRC: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 100);

fn frame(src: [u8; 6], dst: Ipv4Addr, port: u16) -> Vec<u8> {
    Frame::v4(src, SRC, dst, IPPROTO_TCP, 40000, port)
        .with_dst_mac(DIRECTOR_MAC)
        .bytes()
}

fn attached(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    let c = lab.config("vips.toml", WEB_NAMED);
    lab.loader_ok(&["attach", DEV, "--config", path_str(&c)]);
    lab
}

/// `lvs-loader trace DEV ARGS...` in the background, returned once it is armed (it says
/// so on stderr).
fn start_trace(lab: &Lab, args: &[&str]) -> Child {
    let mut child = Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .arg("--netns")
        .arg(&lab.director.name)
        .args(["trace", DEV])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trace");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) if line.contains("tracing lvs0") => child,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trace did not start: {other:?}");
        }
    }
}

/// Waits for the trace to exit by itself (within `secs`) and returns its stdout lines.
fn finish(mut child: Child, secs: u64) -> Vec<String> {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "trace exited with {st}");
            break;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trace did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    use std::io::Read as _;
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    out.lines().map(str::to_owned).collect()
}

/// The control line's trace switch of DEV (read in the director's namespace).
fn switch(lab: &Lab) -> u32 {
    let _ns = lab.director.enter();
    let name = lvs_loader::IfName::new(DEV).expect("name");
    let att = lvs_loader::Attachment::open(&lab.pins.path, &name).expect("attachment");
    lvs_loader::maps::MapSet::from_pins(&att.dir())
        .expect("maps")
        .trace_switch()
        .expect("switch")
}

fn suffix(line: &str) -> &str {
    // "TIME SRC > DST: message": drop the time.
    line.split_once(' ').map_or(line, |(_, r)| r)
}

#[test]
fn events_match_the_packets_filtered_by_vip_and_mac() {
    let lab = attached("trv");
    assert_eq!(switch(&lab), 0, "tracing is off by default");
    let t = start_trace(&lab, &["--vip", "172.17.85.56:80", "--count", "4"]);
    assert_ne!(switch(&lab), 0, "trace armed the switch");
    lab.send(&[
        frame(CLIENT, OTHER, 80),
        frame(CLIENT, VIP, 443),
        frame(CLIENT, VIP, 80),
        frame(PEER, VIP, 80),
        frame(CLIENT, VIP, 80),
    ]);
    // A reload while tracing: not blocked by the trace, and named anew.
    let c2 = lab.config("v2.toml", &web_named_as(0x30, "web-v2"));
    let t0 = Instant::now();
    lab.loader_ok(&["reload", DEV, "--config", path_str(&c2), "--wait", "3"]);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "reload waited for the trace"
    );
    // Named by the new config at once: the event carries its config's stamp.
    lab.send(&[frame(CLIENT, VIP, 80)]);
    let lines = finish(t, 10);
    let got: Vec<&str> = lines.iter().map(|l| suffix(l)).collect();
    assert_eq!(
        got,
        [
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)",
            "00:0c:29:57:88:ce > 172.17.85.56:80/tcp: unmarked: source 00:0c:29:57:88:ce is peer dr2-eth0 (for VIP web-internal (172.17.85.56:80/tcp))",
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)",
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x30 by VIP web-v2 (172.17.85.56:80/tcp)",
        ],
        "{lines:#?}"
    );
    // The counts equal the counters (the VIP kept its slot across the reload).
    let s = lab.stats();
    assert_eq!(s["vips"][0]["marked_packets"], 3, "{s}");
    assert_eq!(s["vips"][0]["peer_packets"], 1, "{s}");
    assert_eq!(
        switch(&lab),
        0,
        "the trace turned tracing off when it ended"
    );

    // By source MAC, JSON Lines.
    let t = start_trace(
        &lab,
        &["--src-mac", "00:0C:29:57:88:CE", "--count", "1", "--json"],
    );
    lab.send(&[
        frame(CLIENT, VIP, 80),
        frame(CLIENT, OTHER, 22),
        frame(PEER, OTHER, 22),
    ]);
    let lines = finish(t, 10);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let j: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON line");
    assert_eq!(
        (
            &j["reason"],
            &j["verdict"],
            &j["packet"]["dst"],
            &j["packet"]["port"]
        ),
        (
            &"no_vip".into(),
            &"unmarked".into(),
            &"172.17.85.99".into(),
            &22.into()
        ),
        "{j}"
    );
    assert_eq!(j["packet"]["src_mac"], "00:0c:29:57:88:ce", "{j}");
}

/// Events are named by the config that decided them, also when reloads come before the
/// trace reads them (the trace is stopped meanwhile): an event of a config the trace saw
/// live keeps its names; one of a config that came and went unseen says its names are
/// unknown instead of borrowing the next config's.
#[test]
fn events_are_named_by_the_config_that_decided_them() {
    let lab = attached("trn");
    let t = start_trace(
        &lab,
        &["--vip", "172.17.85.56:80", "--count", "3", "--lease", "60"],
    );
    let pid = t.id() as i32;
    // SAFETY: signals to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    lab.send(&[frame(CLIENT, VIP, 80)]);
    for (file, mark, name) in [("v2.toml", 0x30, "web-v2"), ("v3.toml", 0x300, "web-v3")] {
        let c = lab.config(file, &web_named_as(mark, name));
        lab.loader_ok(&["reload", DEV, "--config", path_str(&c)]);
        lab.send(&[frame(CLIENT, VIP, 80)]);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let lines = finish(t, 10);
    let got: Vec<&str> = lines.iter().map(|l| suffix(l)).collect();
    assert_eq!(
        got,
        [
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x3 by VIP web-internal (172.17.85.56:80/tcp)",
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x30 by the VIP in counter slot 0 [names unknown: the config that decided it was replaced before the trace read its names]",
            "52:54:00:c1:1e:01 > 172.17.85.56:80/tcp: marked 0x300 by VIP web-v3 (172.17.85.56:80/tcp)",
        ],
        "{lines:#?}"
    );
}

/// `kill -9` of the trace: the program stops emitting when the lease runs out and turns
/// its switch off at the next packet; a new trace may start.
#[test]
fn lease_ends_tracing_after_sigkill() {
    let lab = attached("trk");
    let mut t = start_trace(&lab, &["--lease", "2"]);
    assert_ne!(switch(&lab), 0);
    t.kill().expect("SIGKILL");
    t.wait().expect("reap");
    lab.send(&[frame(CLIENT, VIP, 80)]);
    assert_ne!(switch(&lab), 0, "still within the lease");
    std::thread::sleep(Duration::from_millis(2500));
    lab.send(&[frame(CLIENT, VIP, 80)]);
    assert_eq!(
        switch(&lab),
        0,
        "the program turned tracing off after the lease"
    );
    // A new trace is not refused by the dead one's filter, and shows its own packets only:
    // not the event the dead one's filter left in the ring buffer within the lease.
    let t = start_trace(&lab, &["--vip", "172.17.85.56", "--json", "--count", "1"]);
    lab.send(&[frame(CLIENT, VIP, 81)]);
    let lines = finish(t, 10);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let j: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON line");
    assert_eq!(
        j["packet"]["port"], 81,
        "an event from before this trace: {j}"
    );
    // A second trace of the same interface at the same time is refused. (The first one
    // filters on the VIP: stray link-local packets, such as a guest's IPv6 router
    // solicitation on the new veth, must not end it before the second one starts.)
    let mut t = start_trace(&lab, &["--vip", "172.17.85.56:80", "--count", "1"]);
    // (Spawned with a deadline: a trace that is wrongly not refused would wait forever.)
    let mut second = Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .arg("--netns")
        .arg(&lab.director.name)
        .args(["trace", DEV, "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while second.try_wait().expect("wait").is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let out = second.wait_with_output().expect("output");
            panic!(
                "a second trace of the same interface was not refused within 20 s (first: {:?}): stderr {:?}, stdout {:?}",
                t.try_wait(),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = second.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another lvs-loader trace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.send(&[frame(CLIENT, VIP, 80)]);
    assert_eq!(finish(t, 10).len(), 1);
}

/// The kernel's token bucket bounds the events: 300 matching packets in well under a
/// second with `--rate 5 --burst 5` give at most `burst + rate * seconds` events per CPU,
/// and a later event says how many were left out before it.
#[test]
fn rate_limit_bounds_events() {
    let lab = attached("trr");
    let t = start_trace(
        &lab,
        &[
            "--vip",
            "172.17.85.56:80",
            "--rate",
            "5",
            "--burst",
            "5",
            "--count",
            "1000",
        ],
    );
    // The token buckets are per CPU, and so is the count of packets a later event says
    // were left out: send every packet from one CPU (a veth delivers on the sending CPU),
    // so that the last packet finds the suppressed ones in its own CPU's bucket.
    pin_to_one_cpu();
    let start = Instant::now();
    let burst: Vec<Vec<u8>> = (0..300).map(|_| frame(CLIENT, VIP, 80)).collect();
    lab.send(&burst);
    std::thread::sleep(Duration::from_millis(1200));
    lab.send(&[frame(CLIENT, VIP, 80)]);
    std::thread::sleep(Duration::from_millis(400));
    let secs = start.elapsed().as_secs_f64();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    let lines = finish(t, 10);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let bound = (cpus * (5.0 + 5.0 * secs)).ceil() as usize;
    assert!(
        lines.len() >= 5 && lines.len() <= bound,
        "{} events for 301 packets, bound {bound}: {lines:#?}",
        lines.len()
    );
    assert!(
        lines.iter().any(|l| l.contains("not shown: rate limit")),
        "no event reports the suppressed packets: {lines:#?}"
    );
    let s = lab.stats();
    assert_eq!(
        s["vips"][0]["marked_packets"], 301,
        "every packet still marked: {s}"
    );
    assert_eq!(switch(&lab), 0, "SIGINT turned tracing off");
}

/// Pins the calling thread to the first CPU it may run on.
fn pin_to_one_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t of the right size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
            0
        );
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("a CPU");
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(first, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0
        );
    }
}

/// Frames that are not IP are not traced (they pay nothing for tracing); an IP packet
/// the parser gave up on is.
#[test]
fn non_ip_frames_are_not_traced_malformed_ip_is() {
    let lab = attached("trn");
    let client = "52:54:00:c1:1e:01";
    let t = start_trace(&lab, &["--src-mac", client, "--json", "--count", "1"]);
    let arp = Frame::raw(CLIENT, 0x0806, vec![0; 28])
        .with_dst_mac(DIRECTOR_MAC)
        .bytes();
    let mut malformed = frame(CLIENT, VIP, 80);
    malformed[14] = 0x44; // IHL 4: a header shorter than 20 bytes
    lab.send(&[arp, malformed]);
    let lines = finish(t, 10);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let j: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON line");
    assert_eq!(j["reason"], "malformed", "{j}");
}

/// A reload that outgrows the maps swaps in a new program with its own trace maps: a
/// running trace says so and exits 1 instead of going silent.
#[test]
fn a_growing_reload_ends_the_trace_loudly() {
    let lab = attached("trg");
    let err_path = std::env::temp_dir().join(format!("lvs-trace-grow-{}.err", std::process::id()));
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let mut t = Command::new(loader_bin())
        .arg("--pin-dir")
        .arg(&lab.pins.path)
        .arg("--netns")
        .arg(&lab.director.name)
        .args(["trace", DEV, "--vip", "172.17.85.56:80"])
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .expect("spawn trace");
    let err = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let t0 = Instant::now();
    while !err().contains("tracing lvs0") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "trace did not start: {}",
            err()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // 300 VIPs need a capacity of 1,024; the 1-VIP attach has 256.
    let big = String::from(WEB_NAMED) + &lvs_tests::conf::extra_vips(0..299);
    let c = lab.config("big.toml", &big);
    lab.loader_ok(&["reload", DEV, "--config", path_str(&c)]);
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = t.try_wait().expect("wait") {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = t.kill();
            let _ = t.wait();
            panic!(
                "the trace kept running after its program was replaced: {}",
                err()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = err();
    let _ = std::fs::remove_file(&err_path);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("its program was replaced or removed while tracing"),
        "{text}"
    );
}

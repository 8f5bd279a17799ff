//! `lvs-loader daemon` as a service: reloads on SIGHUP and on file change under traffic
//! (good and bad configs, no packet of a kept VIP unmarked), `/metrics` parsed and equal
//! to `stats --json`, `/healthz` codes, the HTTP server's refusals (a 503, not an empty
//! reply, past its connection limit), sd_notify READY /
//! STATUS / WATCHDOG / RELOADING / STOPPING on a test-owned socket, SIGTERM leaving the
//! datapath marking, `--detach-on-exit` removing it, adoption of an existing attachment,
//! interfaces from `[daemon]`, and start-up errors.

use std::{
    collections::BTreeMap,
    os::unix::net::UnixDatagram,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use lvs_tests::{
    daemon::{DaemonLab, config_text, wait_for, web_frame},
    lab::{DEV, path_str},
};

const T: Duration = Duration::from_secs(30);
const PORT: u16 = 9597;

/// Samples of a Prometheus text body: `name{labels}` -> value, checking the format on
/// the way (every sample's family announced by HELP and TYPE first, once).
fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(!typed.contains(&name), "family {name} announced twice");
            typed.push(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = series.split('{').next().unwrap();
        assert_eq!(
            typed.last().map(String::as_str),
            Some(name),
            "sample of {name} outside its family"
        );
        out.insert(
            series.to_owned(),
            value.parse().unwrap_or_else(|_| panic!("{line}")),
        );
    }
    out
}

#[test]
fn reloads_under_traffic_sighup_and_file_change() {
    let lab = DaemonLab::new("dsr");
    lab.watch_marks();
    let cfg = lab.config("vips.toml", &config_text(0..400));
    let mut d = lab.daemon(&["--config", path_str(&cfg), DEV], &[]);
    d.wait_ready();
    let tx = lab.tx();
    let batch = vec![web_frame(); 64];
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(tx.send_batch(&batch) as u64, Ordering::Relaxed);
            }
        });
        let _stop = lvs_tests::StopOnDrop(&stop);
        // 1. A file change, written in place: applied.
        let from = d.mark();
        std::fs::write(&cfg, config_text(200..700)).unwrap();
        d.wait_line_after(from, "lvs0: applied config", T);
        // 2. Renamed over (an editor): applied.
        let from = d.mark();
        lab.replace_config(&cfg, &config_text(0..300));
        let l = d.wait_line_after(from, "lvs0: applied config", T);
        assert!(l.contains("301 VIP(s)"), "{l}");
        // 3. A bad config: logged with file:line:column, the running one stays.
        let from = d.mark();
        let bad = format!(
            "{}[[vip]]\naddress = \"10.0.0.1\"\nport = 80\nmark = 0\n",
            config_text(0..10)
        );
        lab.replace_config(&cfg, &bad);
        let l = d.wait_line_after(from, "vip[12].mark: must not be 0", T);
        assert!(
            l.contains(&format!("{}:51:8: vip[12].mark", path_str(&cfg))),
            "{l}"
        );
        d.wait_line_after(from, "config reload failed: still running", T);
        // 4. SIGHUP with the bad file still there: refused again; then a good one.
        let from = d.mark();
        d.signal(libc::SIGHUP);
        d.wait_line_after(from, "SIGHUP: reloading", T);
        d.wait_line_after(from, "config reload failed", T);
        let (code, body) = lab.http(PORT, "GET", "/metrics");
        assert_eq!(code, 200);
        let m = parse_metrics(&body);
        assert_eq!(m["lvs_ebpf_config_reload_success"], 0.0);
        assert_eq!(m["lvs_ebpf_config_reloads_total{result=\"failure\"}"], 2.0);
        assert_eq!(m["lvs_ebpf_config_reloads_total{result=\"success\"}"], 2.0);
        assert!(m["lvs_ebpf_config_last_reload_failure_timestamp_seconds"] > 0.0);
        // /healthz: still healthy, with the last good config.
        assert_eq!(lab.http(PORT, "GET", "/healthz").0, 200);
        let from = d.mark();
        lab.replace_config(&cfg, &config_text(100..150));
        d.wait_line_after(from, "lvs0: applied config", T);
        // 5. SIGHUP with nothing changed: reloaded, nothing applied.
        let from = d.mark();
        d.signal(libc::SIGHUP);
        d.wait_line_after(from, "config unchanged", T);
    });
    let sent = sent.load(Ordering::Relaxed);
    let (marked, unmarked) = lab.marks();
    eprintln!("reloads while sending {sent} packets: {marked} marked, {unmarked} unmarked");
    assert!(sent > 1000, "the sender must overlap the reloads: {sent}");
    assert_eq!(unmarked, 0, "packets of the kept VIP missed their mark");
    assert_eq!(marked, sent);
    let m = parse_metrics(&lab.http(PORT, "GET", "/metrics").1);
    assert_eq!(m["lvs_ebpf_config_reload_success"], 1.0);
    assert_eq!(m["lvs_ebpf_config_reloads_total{result=\"success\"}"], 4.0);
    let s: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["stats", DEV, "--json"])).unwrap();
    assert_eq!(s["vips"].as_array().map(Vec::len), Some(51));
    assert!(d.term().success());
}

#[test]
fn metrics_equal_stats_and_http_refusals() {
    let lab = DaemonLab::new("dsm");
    let cfg = lab.config("vips.toml", &config_text(0..20));
    let mut d = lab.daemon(&["--config", path_str(&cfg), DEV], &[]);
    d.wait_ready();
    let tx = lab.tx();
    for _ in 0..37 {
        tx.send(&web_frame());
    }
    let (code, body) = lab.http(PORT, "GET", "/metrics");
    assert_eq!(code, 200);
    let m = parse_metrics(&body);
    let s: serde_json::Value =
        serde_json::from_str(&lab.loader_ok(&["stats", DEV, "--json"])).unwrap();
    let vips = s["vips"].as_array().unwrap();
    assert_eq!(vips.len(), 21);
    for v in vips {
        let port = v["port"]
            .as_u64()
            .map_or("any".to_owned(), |p| p.to_string());
        let labels = format!(
            "{{interface=\"lvs0\",vip=\"{}\",port=\"{port}\",protocol=\"{}\",mark=\"{:#x}\",name=\"{}\"}}",
            v["address"].as_str().unwrap(),
            v["protocol"].as_str().unwrap(),
            v["mark"].as_u64().unwrap(),
            v["name"].as_str().unwrap()
        );
        for (metric, field) in [
            ("lvs_ebpf_vip_marked_packets_total", "marked_packets"),
            ("lvs_ebpf_vip_marked_bytes_total", "marked_bytes"),
            ("lvs_ebpf_vip_peer_packets_total", "peer_packets"),
            ("lvs_ebpf_vip_peer_bytes_total", "peer_bytes"),
            (
                "lvs_ebpf_vip_already_marked_packets_total",
                "already_marked",
            ),
        ] {
            let key = format!("{metric}{labels}");
            assert_eq!(
                m.get(&key).copied(),
                v[field].as_u64().map(|x| x as f64),
                "{key}"
            );
        }
    }
    assert_eq!(
        m["lvs_ebpf_vip_marked_packets_total{interface=\"lvs0\",vip=\"172.17.85.56\",port=\"80\",protocol=\"tcp\",mark=\"0x3\",name=\"web\"}"],
        37.0
    );
    for (k, v) in s["totals"].as_object().unwrap() {
        let key = match k.as_str() {
            "packets_seen" => "lvs_ebpf_packets_seen_total{interface=\"lvs0\"}".to_owned(),
            "already_marked" => {
                "lvs_ebpf_packets_already_marked_total{interface=\"lvs0\"}".to_owned()
            }
            k if k.ends_with("_packets") || k.ends_with("_bytes") => continue,
            k => format!("lvs_ebpf_packets_total{{interface=\"lvs0\",result=\"{k}\"}}"),
        };
        assert_eq!(m.get(&key).copied(), v.as_u64().map(|x| x as f64), "{key}");
    }
    assert_eq!(
        m["lvs_ebpf_map_entries{interface=\"lvs0\",map=\"vips\"}"],
        21.0
    );
    assert_eq!(
        m["lvs_ebpf_map_entries{interface=\"lvs0\",map=\"peers\"}"],
        1.0
    );
    assert_eq!(
        m["lvs_ebpf_map_capacity{interface=\"lvs0\",map=\"vips\"}"],
        // Sized from the config (21 VIPs): lvs_ebpf_common::capacity_for.
        f64::from(lvs_ebpf_common::capacity_for(21))
    );
    assert_eq!(m["lvs_ebpf_interface_healthy{interface=\"lvs0\"}"], 1.0);
    assert!(
        m.keys()
            .any(|k| k.starts_with("lvs_ebpf_build_info{version="))
    );
    // stats --prometheus renders the same datapath families.
    let text = lab.loader_ok(&["stats", DEV, "--prometheus"]);
    let p = parse_metrics(&text);
    for (k, v) in &p {
        if k.starts_with("lvs_ebpf_vip_") {
            assert_eq!(m.get(k), Some(v), "{k}");
        }
    }
    // --output: written whole, atomically, readable by the textfile collector.
    let out = lab.dir.join("lvs.prom");
    lab.loader_ok(&["stats", DEV, "--prometheus", "--output", path_str(&out)]);
    assert_eq!(
        parse_metrics(&std::fs::read_to_string(&out).unwrap()).len(),
        p.len()
    );
    assert!(
        std::fs::read_dir(&lab.dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains(".tmp")),
        "no temporary file left"
    );

    // HTTP: HEAD, refusals, bounds.
    let raw = lab.http_raw(PORT, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.ends_with("\r\n\r\n"),
        "{raw}"
    );
    assert_eq!(lab.http(PORT, "POST", "/metrics").0, 405);
    assert_eq!(lab.http(PORT, "GET", "/nope").0, 404);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert!(
        lab.http_raw(PORT, huge.as_bytes())
            .starts_with("HTTP/1.1 431")
    );
    assert!(
        lab.http_raw(PORT, b"GET /\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    // A client that sends nothing does not block others: with an idle connection held
    // open for the whole request, `/healthz` is answered well before the server's read
    // timeout (5 s) could have freed it (no tight timing: a loaded host or a TCG guest
    // answers in well under a second too).
    let ns = &lab.director;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
        s.spawn(move || {
            let _in = ns.enter();
            let c = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
            up_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
            drop(c);
        });
        up_rx.recv().expect("idle client connected");
        let start = Instant::now();
        assert_eq!(lab.http(PORT, "GET", "/healthz").0, 200);
        let took = start.elapsed();
        done_tx.send(()).unwrap();
        assert!(
            took < Duration::from_secs(4),
            "/healthz waited for an idle client: {took:?}"
        );
    });

    // More connections than the server takes at once (idle ones, holding every place):
    // the next client gets a 503 at once, not an empty reply; places come back when
    // the idle ones go.
    let idle: Vec<std::net::TcpStream> = std::thread::scope(|s| {
        s.spawn(|| {
            let _in = ns.enter();
            // (A place of the previous request is given back just after its answer: a
            // connection answered 503 meanwhile holds none and is replaced.)
            let mut held = Vec::new();
            for _ in 0..100 {
                if held.len() == lvs_loader::daemon::http::MAX_CONNECTIONS {
                    break;
                }
                let c = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
                c.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                if c.peek(&mut [0u8; 1]).is_err() {
                    held.push(c); // nothing said: it holds a place
                }
            }
            held
        })
        .join()
        .unwrap()
    });
    let start = Instant::now();
    let (code, body) = lab.http(PORT, "GET", "/metrics");
    assert_eq!(
        code,
        503,
        "after {:?}: {}",
        start.elapsed(),
        &body[..body.len().min(200)]
    );
    assert!(body.contains("too many connections"), "{body}");
    assert!(
        start.elapsed() < lvs_loader::daemon::http::READ_TIMEOUT,
        "the 503 waited for the idle connections: {:?}",
        start.elapsed()
    );
    drop(idle);
    wait_for("a place after the idle connections closed", T, || {
        lab.http(PORT, "GET", "/healthz").0 == 200
    });

    // /healthz: 503 with the reason while the interface is gone, 200 when it is back.
    lab.director.ip(&["link", "del", DEV]);
    let (code, body) = lab.http(PORT, "GET", "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("lvs0:") && body.contains("gone"), "{body}");
    lab.add_dev(DEV, "tx0");
    wait_for("healthz 200", T, || {
        lab.http(PORT, "GET", "/healthz").0 == 200
    });
    // ... and while another config runs than the daemon's (a oneshot reload beside it).
    let other = lab.config("other.toml", &config_text(0..3));
    // (The daemon puts its own config back as soon as it looks, which a tc notification
    // of the reload may trigger at once: a 200 is right only after that repair.)
    let from = d.mark();
    lab.loader_ok(&["reload", DEV, "--config", path_str(&other)]);
    let (code, body) = lab.http(PORT, "GET", "/healthz");
    if code == 200 {
        d.wait_line_after(from, "repaired (config)", T);
    } else {
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("not the running config"), "{body}");
    }
    assert!(d.term().success());
}

/// A datagram socket the daemon notifies, in the director's namespace (an abstract
/// name is per namespace) or at a path.
fn notify_socket(lab: &DaemonLab, abstract_name: Option<&str>) -> (UnixDatagram, String) {
    match abstract_name {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let _in = lab.director.enter();
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
            (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
        }
        None => {
            let p = lab.dir.join("notify.sock");
            (UnixDatagram::bind(&p).unwrap(), path_str(&p).to_owned())
        }
    }
}

fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration, seen: &mut Vec<String>) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < timeout {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.contains(want);
            seen.push(msg);
            if hit {
                return;
            }
        }
    }
    panic!("no {want:?} notification within {timeout:?}; got {seen:?}");
}

#[test]
fn sd_notify_and_sigterm_leaves_the_datapath_marking() {
    let lab = DaemonLab::new("dsn");
    lab.watch_marks();
    let cfg = lab.config("vips.toml", &config_text(0..5));
    let (sock, addr) = notify_socket(&lab, None);
    let mut d = lab.daemon(
        &[
            "--config",
            path_str(&cfg),
            "--metrics",
            "off",
            "--mode",
            "netlink",
            DEV,
        ],
        &[("NOTIFY_SOCKET", &addr), ("WATCHDOG_USEC", "200000")],
    );
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", T, &mut seen);
    let ready = seen.last().unwrap().clone();
    assert!(ready.contains("STATUS=lvs0 ok"), "{ready}");
    // The interface was attached before READY.
    assert!(lab.marker_first(DEV));
    // Pings every 100 ms (half of WATCHDOG_USEC).
    let start = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let before = seen.len();
        recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2), &mut seen);
        pings += seen[before..]
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count();
    }
    let took = start.elapsed();
    let bound = if lvs_tests::daemon::in_vm() {
        6000
    } else {
        1500
    };
    assert!(took < Duration::from_millis(bound), "5 pings took {took:?}");
    // A repair changes STATUS.
    lab.director
        .run("tc", &["qdisc", "del", "dev", DEV, "clsact"]);
    recv_until(&sock, "1 repair(s)", T, &mut seen);
    // SIGHUP: RELOADING=1 then READY=1 again.
    d.signal(libc::SIGHUP);
    recv_until(&sock, "RELOADING=1", T, &mut seen);
    recv_until(&sock, "READY=1", T, &mut seen);
    // SIGTERM: STOPPING=1, exit 0, the datapath stays.
    let status = d.term();
    assert!(status.success(), "{status}");
    recv_until(&sock, "STOPPING=1", T, &mut seen);
    let (code, out) = lab.check(&[DEV]);
    assert_eq!(code, Some(0), "{out}");
    lab.assert_marks("tx0", 25);
    assert!(
        d.log().contains("the datapath stays attached on lvs0"),
        "{}",
        d.log()
    );

    // An abstract NOTIFY_SOCKET (in the daemon's namespace), and adoption: the running
    // attachment is kept (same program), nothing re-applied.
    let prog = lab.hooks(DEV)[0].prog_id;
    let (sock, addr) = notify_socket(&lab, Some(&format!("lvs-test-{}", std::process::id())));
    let mut d = lab.daemon(
        &["--config", path_str(&cfg), "--metrics", "off", DEV],
        &[("NOTIFY_SOCKET", &addr)],
    );
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", T, &mut seen);
    // (stderr is read by another thread: wait for the line, logged before READY)
    d.wait_line("ready:", T);
    assert!(
        d.log().contains("lvs0: adopted the existing attachment"),
        "{}",
        d.log()
    );
    assert!(!d.log().contains("applied config"), "{}", d.log());
    assert_eq!(lab.hooks(DEV)[0].prog_id, prog);
    // A oneshot command beside the daemon takes the same lock and works.
    lab.loader_ok(&["reload", DEV, "--config", path_str(&cfg)]);
    // --detach-on-exit is off: still marking after this one stops too.
    assert!(d.term().success());
    assert!(lab.marker_first(DEV));
}

#[test]
fn detach_on_exit_and_interfaces_from_the_config() {
    let lab = DaemonLab::new("dsd");
    lab.add_dev("lvs0new", "tx1");
    let text = |ifaces: &str| format!("{}[daemon]\ninterfaces = [{ifaces}]\n", config_text(0..5));
    let cfg = lab.config("vips.toml", &text("\"lvs0\""));
    let mut d = lab.daemon(
        &[
            "--config",
            path_str(&cfg),
            "--metrics",
            "off",
            "--detach-on-exit",
        ],
        &[],
    );
    d.wait_ready();
    assert!(lab.marker_first(DEV));
    assert!(lab.hooks("lvs0new").is_empty());
    // An interface added to [daemon] interfaces is attached; one removed is detached.
    let from = d.mark();
    lab.replace_config(&cfg, &text("\"lvs0new\""));
    d.wait_line_after(from, "lvs0new: attached", T);
    d.wait_line_after(from, "lvs0: no longer in the config: detached", T);
    assert!(lab.hooks(DEV).is_empty());
    assert!(lab.marker_first("lvs0new"));
    // An empty list is refused: the running config stays.
    let from = d.mark();
    lab.replace_config(&cfg, &text(""));
    d.wait_line_after(from, "[daemon] interfaces is empty", T);
    assert!(lab.marker_first("lvs0new"));
    // SIGTERM with --detach-on-exit: nothing left.
    assert!(d.term().success());
    assert!(
        d.log().contains("lvs0new: detached (--detach-on-exit)"),
        "{}",
        d.log()
    );
    assert!(lab.hooks("lvs0new").is_empty());
    assert!(
        lab.pins.leftovers().is_empty(),
        "{:?}",
        lab.pins.leftovers()
    );
}

#[test]
fn start_up_errors() {
    let lab = DaemonLab::new("dse");
    let run = |args: &[&str]| {
        let mut d = lab.daemon(args, &[]);
        let status = d.wait_exit(T);
        (status.code(), d.log())
    };
    // No interface anywhere.
    let cfg = lab.config("vips.toml", &config_text(0..2));
    let (code, log) = run(&["--config", path_str(&cfg), "--metrics", "off"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("no interface to manage"), "{log}");
    // An invalid config: every problem with its position, nothing attached.
    let bad = lab.config("bad.toml", "[[peer]]\nmac = \"00:00:00:00:00:00\"\n");
    let (code, log) = run(&["--config", path_str(&bad), "--metrics", "off", DEV]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("{}:2:7: peer[1].mac", path_str(&bad))),
        "{log}"
    );
    assert!(lab.hooks(DEV).is_empty());
    // A bad --metrics address.
    let (code, log) = run(&["--config", path_str(&cfg), "--metrics", "nowhere", DEV]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("expected ADDRESS:PORT"), "{log}");
    // Another marker on the interface (another pin root): refused, not stacked.
    let other = lvs_tests::netns::PinRoot::new("dseo");
    lvs_tests::netns::loader_ok_at(
        &other.path,
        &lab.director.name,
        &["attach", DEV, "--config", path_str(&cfg)],
    );
    let (code, log) = run(&["--config", path_str(&cfg), "--metrics", "off", DEV]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("already carries an lvs-ebpf program"), "{log}");
    lvs_tests::netns::loader_ok_at(&other.path, &lab.director.name, &["detach", DEV]);
    // A missing interface is waited for, not an error.
    let mut d = lab.daemon(
        &["--config", path_str(&cfg), "--metrics", "off", "lvs9"],
        &[],
    );
    d.wait_line("lvs9: no such interface here", T);
    d.wait_ready();
    lab.add_dev("lvs9", "tx9");
    d.wait_line("lvs9: attached", T);
    assert!(d.term().success());
    let _ = lab.loader(&["detach", "lvs9"]);
}

//! Reload under load: a VIP present in both configs never misses its mark while the
//! loader swaps configs as fast as it can.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use lvs_tests::{
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str},
};

fn config(extra_vips: std::ops::Range<u32>, peer: &str) -> String {
    let mut s = format!(
        "[[peer]]\nmac = \"{peer}\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x3\nname = \"web\"\n"
    );
    for i in extra_vips {
        s.push_str(&format!(
            "[[vip]]\naddress = \"198.18.{}.{}\"\nport = 443\nmark = {}\n",
            i >> 8,
            i & 0xff,
            0x100 + i
        ));
    }
    s
}

#[test]
fn no_packet_misses_its_mark_during_reloads() {
    let lab = Lab::new("hitless");
    let a = lab.config("a.toml", &config(0..500, "00:0C:29:57:88:CE"));
    let b = lab.config("b.toml", &config(300..900, "00:0C:29:57:88:D8"));
    lab.loader_ok(&["attach", DEV, "--config", path_str(&a)]);
    let vip: IpAddr = Ipv4Addr::new(172, 17, 85, 56).into();
    lab.watch_marks(&[vip], &[0, 3]);
    let frame = Frame::v4(
        [0x52, 0x54, 0, 9, 9, 9],
        Ipv4Addr::new(172, 17, 85, 100),
        Ipv4Addr::new(172, 17, 85, 56),
        IPPROTO_TCP,
        1,
        80,
    )
    .with_dst_mac(DIRECTOR_MAC)
    .bytes();
    let batch = vec![frame; 64];
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let reloads = 20;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let n = lab.sender().send_batch(&batch);
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        // Stops the sender however this closure ends: a failed reload panics, and the
        // scope would otherwise wait forever for the sender thread.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        for i in 0..reloads {
            let cfg = if i % 2 == 0 { &b } else { &a };
            lab.loader_ok(&["reload", DEV, "--config", path_str(cfg)]);
        }
    });
    let sent = sent.load(Ordering::Relaxed);
    let marked = lab.mark_count(vip, 3);
    let unmarked = lab.mark_count(vip, 0);
    eprintln!(
        "{reloads} reloads while sending {sent} packets: {marked} marked, {unmarked} unmarked"
    );
    assert!(sent > 1000, "the sender must overlap the reloads: {sent}");
    assert_eq!(unmarked, 0, "packets missed their mark during reloads");
    assert_eq!(marked, sent, "every packet sent was seen marked");
    let s = lab.stats();
    assert_eq!(s["vips"][0]["marked_packets"], sent, "{}", s["vips"][0]);
    // The last reload (i = 19) installed a: web + 500 VIPs.
    assert_eq!(s["vips"].as_array().map(Vec::len), Some(501));
}

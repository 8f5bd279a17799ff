//! Reload under load: a VIP present in both configs never misses its mark while the
//! loader swaps configs as fast as it can.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use lvs_tests::{
    conf::{PEER_MAC, web_with},
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, Lab, path_str},
};

#[test]
fn no_packet_misses_its_mark_during_reloads() {
    let lab = Lab::new("hitless");
    let a = lab.config("a.toml", &web_with(PEER_MAC, 0..500));
    let b = lab.config("b.toml", &web_with("00:0C:29:57:88:D8", 300..900));
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
        let _stop = lvs_tests::StopOnDrop(&stop);
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

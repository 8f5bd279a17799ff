//! The explaining twin (`lvs_explain`) beyond the fixtures' reasons (every fixture file
//! checks those, on its own maps and on pinned ones): the VIP slot and details it reports,
//! and explaining against an attachment's pinned maps after a reload, touching nothing.

use lvs_tests::{fixture::*, frames::*};

/// The details explain reports: the VIP slot (which names the VIP), any-port matches,
/// packets without a port.
#[test]
fn explain_names_the_vip_and_the_details() {
    let mut dp = loaded();
    let fd = dp.dp.explain_fd().expect("loading lvs_explain");
    let live = dp.dp.maps.live_vips().expect("live VIPs");
    let slot_of = |mark: u32| {
        live.iter()
            .find(|v| v.value.mark == mark)
            .map(|v| v.value.index)
            .expect("VIP of the mark")
    };
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).bytes()).expect("explain");
    let vip = e.vip.expect("a VIP");
    assert_eq!(
        (vip.slot, vip.any_port, e.ipv6),
        (slot_of(0x3), false, false)
    );
    let any = Frame::v4(CLIENT, SRC4, ANY4, IPPROTO_TCP, 1, 22).bytes();
    let e = lvs_loader::testrun::explain(fd, &any).expect("explain");
    let vip = e.vip.expect("a VIP");
    assert_eq!((vip.slot, vip.any_port), (slot_of(0x40), true));
    let frag = Frame::v6(CLIENT, SRC6, ANY6, IPPROTO_UDP, 1, 4242)
        .with_fragment(100, true)
        .bytes();
    let e = lvs_loader::testrun::explain(fd, &frag).expect("explain");
    assert_eq!(
        (e.reason, e.no_port, e.ipv6, e.vip.map(|v| v.any_port)),
        (Reason::Marked, Some(Reason::Fragment), true, Some(true))
    );
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).with_l4_len(10).bytes()).expect("explain");
    assert_eq!(
        (e.reason, e.no_port),
        (Reason::L4Truncated, Some(Reason::L4Truncated))
    );
}

/// Explaining against an attachment's pinned maps (what `lvs-loader explain` needs): the
/// live configuration's answers, no counter touched, no map created or changed.
#[test]
fn explain_against_pinned_maps() {
    let mut dp = loaded();
    let pins = lvs_tests::netns::PinRoot::new("explain");
    std::fs::create_dir_all(&pins.path).expect("pin dir");
    dp.dp.maps.pin(&pins.path).expect("pinning the maps");
    let before: Vec<_> = std::fs::read_dir(&pins.path)
        .expect("pins")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let mut pinned = lvs_loader::datapath::Datapath::load_pinned(&pins.path).expect("load_pinned");
    let fd = pinned.explain_fd().expect("lvs_explain");
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).bytes()).expect("explain");
    assert_eq!((e.reason, e.mark), (Reason::Marked, Some(0x3)));
    // A reload through the original maps is what the pinned explainer sees next.
    dp.apply("[[peer]]\nmac = \"02:00:00:00:00:99\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x30\n");
    let e = lvs_loader::testrun::explain(fd, &tcp4(80).bytes()).expect("explain");
    assert_eq!((e.reason, e.mark), (Reason::Marked, Some(0x30)));
    let s = lvs_loader::stats::from_maps(&mut dp.dp.maps, "t").expect("stats");
    assert_eq!(
        s.totals["packets_seen"], 0,
        "explain counted: {:?}",
        s.totals
    );
    let after: Vec<_> = std::fs::read_dir(&pins.path)
        .expect("pins")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "no pin added or removed");
    drop(pinned);
    let _ = std::fs::remove_dir_all(&pins.path);
}

//! The test configs, one file each under `tests/fixtures/` (plain vips.toml files:
//! `lvs-loader check tests/fixtures/web.toml` accepts each), shared by every test that
//! needs one instead of a copy per test file.

use std::{net::Ipv4Addr, ops::Range};

/// The seed's DR1: peer DR2 (`PEER_MAC`), one VIP `web` on 172.17.85.56:80/tcp, mark 3.
/// No comments or blank lines in the file: tests check the file:line:column of errors in
/// configs built on it ([`web_with`]).
pub const WEB: &str = include_str!("../fixtures/web.toml");
/// The peer director's MAC in [`WEB`].
pub const PEER_MAC: &str = "00:0C:29:57:88:CE";
/// The web VIP of [`WEB`] (port 80, TCP).
pub const WEB_VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
/// The web VIP's mark.
pub const WEB_MARK: u32 = 0x3;

/// [`WEB`] with names (peer `dr2-eth0`, VIP `web-internal`): what `explain` and `trace`
/// tests read back.
pub const WEB_NAMED: &str = include_str!("../fixtures/web-named.toml");

/// [`WEB_NAMED`] with the web VIP's mark and name replaced (a reload's new config).
pub fn web_named_as(mark: u32, name: &str) -> String {
    WEB_NAMED.replace(
        "mark = 0x3\nname = \"web-internal\"",
        &format!("mark = {mark:#x}\nname = \"{name}\""),
    )
}

/// The packet fixtures' config: every protocol, both families, exact and any-port VIPs,
/// two peers.
pub const MARKERS: &str = include_str!("../fixtures/markers.toml");

/// The config the random frames of [`crate::framegen`] aim at.
pub const RANDOM_FRAMES: &str = include_str!("../fixtures/random-frames.toml");

/// [`WEB`] with `peer` instead of [`PEER_MAC`], plus the VIPs `198.18.(i>>8).(i&255):443`
/// with mark `0x100 + i` for every `i` in `extra`.
pub fn web_with(peer: &str, extra: Range<u32>) -> String {
    WEB.replace(PEER_MAC, peer) + &extra_vips(extra)
}

/// The VIPs `198.18.(i>>8).(i&255):443` with mark `0x100 + i` for every `i` in `extra`,
/// as config entries to append to a config.
pub fn extra_vips(extra: Range<u32>) -> String {
    let mut s = String::new();
    for i in extra {
        s.push_str(&format!(
            "[[vip]]\naddress = \"198.18.{}.{}\"\nport = 443\nmark = {}\n",
            i >> 8,
            i & 0xff,
            0x100 + i
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_config_is_valid() {
        for (name, text) in [
            ("web.toml", WEB.to_owned()),
            ("markers.toml", MARKERS.to_owned()),
            ("random-frames.toml", RANDOM_FRAMES.to_owned()),
            ("web_with", web_with("02:00:00:00:00:01", 0..3)),
        ] {
            lvs_loader::config::parse(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let web = lvs_loader::config::parse(WEB, "web.toml").expect("web.toml");
        assert_eq!(web.vips.len(), 1);
        assert_eq!(web.vips[0].address, std::net::IpAddr::V4(WEB_VIP));
        assert_eq!((web.vips[0].port, web.vips[0].mark), (Some(80), WEB_MARK));
        assert_eq!(web.peers[0].mac, crate::frames::parse_mac(PEER_MAC));
        let more = lvs_loader::config::parse(&web_with(PEER_MAC, 0..3), "x").expect("web_with");
        assert_eq!(more.vips.len(), 4);
        // The exact text the daemon and reload tests have always used (their error
        // positions are line numbers in it).
        assert_eq!(
            web_with("P", 0..1),
            "[[peer]]\nmac = \"P\"\n[[vip]]\naddress = \"172.17.85.56\"\nport = 80\nmark = 0x3\nname = \"web\"\n[[vip]]\naddress = \"198.18.0.0\"\nport = 443\nmark = 256\n"
        );
    }
}

//! The Prometheus text exposition format (0.0.4), shared by `stats --prometheus` and the
//! daemon's `/metrics`: one family at a time (`# HELP`, `# TYPE`, then every sample of it,
//! across interfaces), label values escaped as the format wants (`\\`, `\"`, `\n`).

use std::fmt::Write as _;

use lvs_ebpf_common::{MAX_PEERS, global};

use crate::stats::{Stats, VipStats};

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value as the exposition format wants it.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Builds the text, family by family.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: `kind` is `counter` or `gauge`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// Bytes written so far (the daemon sends the text in pieces).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Takes what was written so far.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

type Get = fn(&VipStats) -> u64;

const VIP_FAMILIES: [(&str, &str, Get); 5] = [
    (
        "lvs_ebpf_vip_marked_packets_total",
        "Packets to the VIP from non-peer MACs, marked.",
        |v| v.marked_packets,
    ),
    (
        "lvs_ebpf_vip_marked_bytes_total",
        "Bytes (Ethernet header included) of marked packets.",
        |v| v.marked_bytes,
    ),
    (
        "lvs_ebpf_vip_peer_packets_total",
        "Packets to the VIP from a peer director, left unmarked.",
        |v| v.peer_packets,
    ),
    (
        "lvs_ebpf_vip_peer_bytes_total",
        "Bytes (Ethernet header included) of peer packets.",
        |v| v.peer_bytes,
    ),
    (
        "lvs_ebpf_vip_already_marked_packets_total",
        "Packets to the VIP (marked or from a peer) that arrived with a non-zero skb->mark.",
        |v| v.already_marked,
    ),
];

/// The datapath's families for every interface in `all`; `flush` is called between
/// families with what was written so far (to stream large outputs).
pub fn render_stats(e: &mut Exposition, all: &[Stats], flush: &mut dyn FnMut(&mut Exposition)) {
    for (name, help, get) in VIP_FAMILIES {
        e.family(name, "counter", help);
        for s in all {
            for v in &s.vips {
                let port = v.port.map_or_else(|| "any".to_owned(), |p| p.to_string());
                let mark = format!("{:#x}", v.mark);
                let vip = v.address.to_string();
                e.sample(
                    name,
                    &[
                        ("interface", &s.interface),
                        ("vip", &vip),
                        ("port", &port),
                        ("protocol", &v.protocol),
                        ("mark", &mark),
                        ("name", &v.name),
                    ],
                    get(v),
                );
                if e.len() >= 256 * 1024 {
                    flush(e);
                }
            }
        }
    }
    e.family(
        "lvs_ebpf_packets_seen_total",
        "counter",
        "Packets the program ran on.",
    );
    for s in all {
        let seen = s.totals.get(global::NAMES[0]).copied().unwrap_or(0);
        e.sample(
            "lvs_ebpf_packets_seen_total",
            &[("interface", &s.interface)],
            seen,
        );
    }
    e.family(
        "lvs_ebpf_packets_already_marked_total",
        "counter",
        "Packets that arrived with a non-zero skb->mark (set before lvs-ebpf ran), VIP packets or not.",
    );
    for s in all {
        let n = s.totals.get(global::ALREADY_MARKED).copied().unwrap_or(0);
        e.sample(
            "lvs_ebpf_packets_already_marked_total",
            &[("interface", &s.interface)],
            n,
        );
    }
    e.family(
        "lvs_ebpf_packets_total",
        "counter",
        "Packets by what the program found: not_ip, malformed, nonlinear, no_vip, marked, peer (one each); fragments and l4_truncated count packets without ports (also counted in one of the others); internal_errors should stay 0.",
    );
    for s in all {
        for name in &global::NAMES[1..] {
            if let Some(v) = s.totals.get(*name) {
                e.sample(
                    "lvs_ebpf_packets_total",
                    &[("interface", &s.interface), ("result", name)],
                    v,
                );
            }
        }
    }
    let maps = |s: &Stats| {
        [
            ("vips", s.vips.len(), s.capacity as usize),
            ("peers", s.peers.len(), MAX_PEERS as usize),
        ]
    };
    e.family(
        "lvs_ebpf_map_entries",
        "gauge",
        "Entries of the live generation of the VIP and peer maps.",
    );
    for s in all {
        for (map, n, _) in maps(s) {
            e.sample(
                "lvs_ebpf_map_entries",
                &[("interface", &s.interface), ("map", map)],
                n,
            );
        }
    }
    e.family(
        "lvs_ebpf_map_capacity",
        "gauge",
        "Entries the VIP and peer maps hold at most.",
    );
    for s in all {
        for (map, _, cap) in maps(s) {
            e.sample(
                "lvs_ebpf_map_capacity",
                &[("interface", &s.interface), ("map", map)],
                cap,
            );
        }
    }
    flush(e);
}

/// `lvs_ebpf_build_info{version,kernel} 1`.
pub fn render_build_info(e: &mut Exposition) {
    e.family(
        "lvs_ebpf_build_info",
        "gauge",
        "lvs-loader's version and the running kernel; always 1.",
    );
    let kernel = crate::sys::kernel_release();
    e.sample(
        "lvs_ebpf_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("kernel", &kernel)],
        1,
    );
}

/// The whole text for `stats --prometheus`.
pub fn stats_text(all: &[Stats]) -> String {
    let mut e = Exposition::new();
    let mut chunks = String::new();
    render_stats(&mut e, all, &mut |e| chunks.push_str(&e.take()));
    render_build_info(&mut e);
    chunks.push_str(&e.finish());
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("é"), "é");
    }

    #[test]
    fn families_are_grouped_across_interfaces() {
        let s = |i: &str| Stats {
            interface: i.into(),
            vips: vec![VipStats {
                name: "we\"b".into(),
                address: "10.0.0.1".parse().unwrap(),
                port: None,
                protocol: "tcp".into(),
                mark: 3,
                mark_mask: u32::MAX,
                marked_packets: 7,
                marked_bytes: 8,
                peer_packets: 9,
                peer_bytes: 10,
                already_marked: 11,
            }],
            capacity: lvs_ebpf_common::MIN_CAPACITY,
            peers: vec!["00:0c:29:57:88:ce".into()],
            totals: [("packets_seen".to_owned(), 20), ("marked".to_owned(), 7)]
                .into_iter()
                .collect(),
        };
        let t = stats_text(&[s("eth0"), s("eth1")]);
        let help: Vec<&str> = t.lines().filter(|l| l.starts_with("# HELP")).collect();
        let mut uniq = help.clone();
        uniq.dedup();
        assert_eq!(help, uniq, "each family once");
        assert!(t.contains(
            "lvs_ebpf_vip_marked_packets_total{interface=\"eth1\",vip=\"10.0.0.1\",port=\"any\",protocol=\"tcp\",mark=\"0x3\",name=\"we\\\"b\"} 7\n"
        ), "{t}");
        assert!(t.contains("lvs_ebpf_packets_total{interface=\"eth0\",result=\"marked\"} 7\n"));
        assert!(t.contains("lvs_ebpf_packets_seen_total{interface=\"eth0\"} 20\n"));
        assert!(t.contains("lvs_ebpf_map_entries{interface=\"eth0\",map=\"vips\"} 1\n"));
        assert!(t.contains(&format!(
            "lvs_ebpf_map_capacity{{interface=\"eth0\",map=\"vips\"}} {}\n",
            lvs_ebpf_common::MIN_CAPACITY
        )));
        assert!(t.contains("lvs_ebpf_build_info{version=\""));
        // Every sample line: name, optional labels, one value.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<u64>().is_ok(), "{l}");
        }
    }
}

//! The memory tables: kernel map memory of whole attachments by VIP count and interfaces
//! (here and scaled to a 64-CPU director), memory per map, and the control plane's times.

use std::fmt::Write as _;

use super::{bytes, vips_label};
use crate::bench::memory;

/// 64 CPUs: the director of issue 11's memory target.
pub(super) const BIG_DIRECTOR_CPUS: usize = 64;

/// Kernel map memory of whole attachments by VIP count and interfaces, here and on a
/// 64-CPU director.
pub fn sized_memory_table(z: &memory::Sized) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Kernel map memory of attachments as `attach` sizes them (every map of the program and the loader's pinned ones, `memlock` from fdinfo; interfaces share no maps, so k interfaces take k times one). Measured here ({} possible CPUs); for {BIG_DIRECTOR_CPUS} CPUs the per-CPU maps are scaled:\n",
        z.possible_cpus
    );
    s.push_str("| VIPs | capacity | 1 interface | 8 interfaces | 1 interface, 64 CPUs | 8 interfaces, 64 CPUs |\n|---:|---:|---:|---:|---:|---:|\n");
    for r in &z.rows {
        let big = r.bytes_on(BIG_DIRECTOR_CPUS, z.possible_cpus);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            vips_label(r.vips),
            r.capacity,
            bytes(r.bytes as f64),
            bytes(8.0 * r.bytes as f64),
            bytes(big),
            bytes(8.0 * big)
        );
    }
    s.push_str("\nTargets (issue 11): 1 VIP on 3 interfaces under 4 MiB here; 1k VIPs on 8 interfaces of a 64-CPU director under 64 MiB.\n");
    s
}

pub fn memory_table(r: &memory::Results) -> String {
    let mut s = sized_memory_table(&r.sized);
    s.push('\n');
    let _ = writeln!(
        s,
        "Kernel map memory per map (each map's `memlock` from fdinfo, {} CPUs), with {} VIPs and {} peers installed (capacity {}):\n",
        r.nr_cpus, r.vips, r.peers, r.capacity
    );
    s.push_str("| map | type | max entries | key + value | memlock (empty) | memlock (loaded) |\n|---|---:|---:|---:|---:|---:|\n");
    for m in &r.maps_loaded {
        let empty = r
            .maps_empty
            .iter()
            .find(|e| e.name == m.name)
            .map_or(0, |e| e.memlock);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} + {} B | {} | {} |",
            m.name,
            map_type_name(m.map_type),
            m.max_entries,
            m.key_size,
            m.value_size,
            bytes(empty as f64),
            bytes(m.memlock as f64)
        );
    }
    let _ = writeln!(
        s,
        "\nTotal {}: **{:.0} B per VIP slot** (the IPv4 and IPv6 tables with both generations, per-CPU counters, names) x {} slots, **{:.0} B per peer slot** (peer hash maps and table) x {} slots, {} fixed (pinned maps only; the trace maps are in the table above). The VIP slots are the capacity `attach` gives this config: the next power of two of twice its VIPs, 256 to 131072.\n",
        bytes(r.total_bytes as f64),
        r.per_vip_bytes,
        r.capacity,
        r.per_peer_bytes,
        lvs_ebpf_common::MAX_PEERS,
        bytes(r.fixed_bytes as f64)
    );
    let _ = writeln!(
        s,
        "Control plane with {} VIPs and {} peers (median wall time of 3 runs; the CLI's peak RSS from wait4):\n",
        r.vips, r.peers
    );
    s.push_str("| step | CLI (`lvs-loader`, TOML) | CLI peak RSS | library (`ops::*`, no TOML) |\n|---|---:|---:|---:|\n");
    let mut whats: Vec<&str> = r.cli.iter().map(|t| t.what.as_str()).collect();
    for t in &r.library {
        if !whats.contains(&t.what.as_str()) {
            whats.push(&t.what);
        }
    }
    for w in whats {
        let c = r.cli.iter().find(|t| t.what == w);
        let l = r.library.iter().find(|t| t.what == w);
        let _ = writeln!(
            s,
            "| {w} | {} | {} | {} |",
            c.map_or("-".into(), |t| format!("{:.0} ms", t.wall_ms)),
            c.and_then(|t| t.max_rss_kib)
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            l.map_or("-".into(), |t| match &t.error {
                None => format!("{:.0} ms", t.wall_ms),
                Some(e) => format!("fails: {e}"),
            }),
        );
    }
    s
}

fn map_type_name(t: u32) -> String {
    match t {
        1 => "hash".into(),
        2 => "array".into(),
        6 => "percpu_array".into(),
        t => t.to_string(),
    }
}

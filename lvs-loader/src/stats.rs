//! Counters: per VIP (summed over CPUs) and global, read from a map set.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use lvs_ebpf_common::{FAMILY_V4, VipCounters};
use serde::Serialize;

use crate::{
    config::{self, Protocol, format_mac},
    error::Result,
    maps::MapSet,
};

/// Per-VIP counters, summed over CPUs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VipStats {
    /// The VIP's name as configured (printers escape it).
    pub name: String,
    pub address: IpAddr,
    pub port: Option<u16>,
    pub protocol: String,
    pub mark: u32,
    /// The bits of `skb->mark` the VIP sets (0xffffffff: all).
    pub mark_mask: u32,
    pub marked_packets: u64,
    pub marked_bytes: u64,
    pub peer_packets: u64,
    pub peer_bytes: u64,
    /// Packets of this VIP (marked or from a peer) that arrived with a non-zero mark.
    pub already_marked: u64,
}

impl VipStats {
    /// `ADDRESS:PORT/PROTO` (IPv6 in brackets).
    pub fn endpoint(&self) -> String {
        match self.protocol.parse::<Protocol>() {
            Ok(p) => config::format_endpoint(self.address, self.port, p),
            Err(_) => format!("{}/{}", self.address, self.protocol),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// The interface (escaped when it is not printable UTF-8).
    pub interface: String,
    pub vips: Vec<VipStats>,
    /// VIP slots of the maps (sized from the config; grown by a reload).
    pub capacity: u32,
    pub peers: Vec<String>,
    /// Sums over VIPs plus the global counters.
    pub totals: BTreeMap<String, u64>,
}

/// The counters of the live generation of `maps`.
pub fn from_maps(maps: &mut MapSet, interface: &str) -> Result<Stats> {
    let live = maps.live_vips()?;
    let mut sum = VipCounters::default();
    let vips = live
        .iter()
        .map(|v| {
            let address = if v.key.family == FAMILY_V4 {
                IpAddr::V4(Ipv4Addr::new(
                    v.key.addr[0],
                    v.key.addr[1],
                    v.key.addr[2],
                    v.key.addr[3],
                ))
            } else {
                IpAddr::V6(Ipv6Addr::from(v.key.addr))
            };
            let port = (v.key.port != 0).then_some(v.key.port);
            let protocol = Protocol::from_number(v.key.proto)
                .map_or_else(|| v.key.proto.to_string(), |p| p.to_string());
            let n = (v.info.name_len as usize).min(v.info.name.len());
            let name = if n > 0 {
                String::from_utf8_lossy(&v.info.name[..n]).into_owned()
            } else {
                Protocol::from_number(v.key.proto).map_or_else(
                    || address.to_string(),
                    |p| config::format_endpoint(address, port, p),
                )
            };
            sum.marked_packets += v.counters.marked_packets;
            sum.marked_bytes += v.counters.marked_bytes;
            sum.peer_packets += v.counters.peer_packets;
            sum.peer_bytes += v.counters.peer_bytes;
            VipStats {
                name,
                address,
                port,
                protocol,
                mark: v.value.mark,
                mark_mask: v.value.mask,
                marked_packets: v.counters.marked_packets,
                marked_bytes: v.counters.marked_bytes,
                peer_packets: v.counters.peer_packets,
                peer_bytes: v.counters.peer_bytes,
                already_marked: v.counters.already_marked,
            }
        })
        .collect();
    let mut totals: BTreeMap<String, u64> = maps
        .global_counters()?
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    totals.insert("marked_packets".into(), sum.marked_packets);
    totals.insert("marked_bytes".into(), sum.marked_bytes);
    totals.insert("peer_packets".into(), sum.peer_packets);
    totals.insert("peer_bytes".into(), sum.peer_bytes);
    let peers = maps.live_peers()?.iter().map(format_mac).collect();
    Ok(Stats {
        interface: interface.to_owned(),
        vips,
        capacity: maps.capacity()?,
        peers,
        totals,
    })
}

//! `lvs-loader diff IFACE --config FILE` (= `reload --dry-run`): what a reload would add,
//! remove and change, computed against the live maps (not against a file that may have
//! been edited since it was applied). Nothing is written.

use std::{collections::BTreeMap, net::IpAddr};

use lvs_ebpf_common::{FAMILY_V4, VipKey};
use serde::Serialize;

use crate::{
    config::{Config, Protocol, format_endpoint, format_mac, hex},
    error::Result,
    maps::MapSet,
    meta::Meta,
};

/// One VIP entry, as the diff shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub endpoint: String,
    pub mark: u32,
    /// `mark_mask`: the bits of `skb->mark` the VIP sets.
    pub mask: u32,
    pub name: String,
}

/// A VIP entry present on both sides whose mark or name differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub endpoint: String,
    pub live: Entry,
    pub config: Entry,
}

/// The difference between the live maps and a config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub interface: String,
    /// SHA-256 of the config the live generation was applied from (hex).
    pub live_digest: String,
    pub live_config: Option<String>,
    pub config_digest: String,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<Changed>,
    pub unchanged: usize,
    pub peers_added: Vec<String>,
    pub peers_removed: Vec<String>,
    /// VIP slots of the live maps.
    pub capacity: u32,
    /// VIP slots the config needs ([`lvs_ebpf_common::capacity_for`]); when
    /// [`Diff::resizes`], the reload swaps in a new program and map set of this size.
    pub capacity_needed: u32,
    /// The capacity the reload moves the maps to (grown or shrunk), if it does
    /// ([`lvs_ebpf_common::resized_capacity`]).
    pub resize_to: Option<u32>,
}

impl Diff {
    /// Whether a reload would change what the datapath does or shows.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.peers_added.is_empty()
            && self.peers_removed.is_empty()
    }

    /// Whether the reload grows or shrinks the live maps (a new program and map set;
    /// [`lvs_ebpf_common::resized_capacity`]).
    pub fn resizes(&self) -> bool {
        self.resize_to.is_some()
    }
}

fn endpoint(k: &VipKey) -> String {
    let address = if k.family == FAMILY_V4 {
        IpAddr::from([k.addr[0], k.addr[1], k.addr[2], k.addr[3]])
    } else {
        IpAddr::from(k.addr)
    };
    let port = (k.port != 0).then_some(k.port);
    match Protocol::from_number(k.proto) {
        Some(p) => format_endpoint(address, port, p),
        None => format!("{address}/{}", k.proto),
    }
}

/// Compares the live generation of `maps` (described by `meta`) with `config`.
pub fn compute(maps: &mut MapSet, meta: &Meta, config: &Config, interface: &str) -> Result<Diff> {
    let live_gen = maps.active_generation()?;
    let g = meta.generation(live_gen);
    // Live config order (`live_vips` sorts by the position in the applied file).
    let live: Vec<(VipKey, Entry)> = maps
        .live_vips()?
        .into_iter()
        .map(|v| {
            let n = (v.info.name_len as usize).min(v.info.name.len());
            let name = if n > 0 {
                String::from_utf8_lossy(&v.info.name[..n]).into_owned()
            } else {
                endpoint(&v.key)
            };
            (
                v.key,
                Entry {
                    endpoint: endpoint(&v.key),
                    mark: v.value.mark,
                    mask: v.value.mask,
                    name,
                },
            )
        })
        .collect();
    let wanted: BTreeMap<VipKey, Entry> = config
        .vips
        .iter()
        .map(|v| {
            (
                v.key(),
                Entry {
                    endpoint: endpoint(&v.key()),
                    mark: v.mark,
                    mask: v.mark_mask,
                    name: v.display_name(),
                },
            )
        })
        .collect();
    let capacity = maps.capacity()?;
    let mut d = Diff {
        interface: interface.to_owned(),
        live_digest: hex(&g.digest),
        live_config: g.config_path.as_deref().map(crate::text::escape_path),
        config_digest: config.digest_hex(),
        capacity,
        capacity_needed: lvs_ebpf_common::capacity_for(config.vips.len()),
        resize_to: lvs_ebpf_common::resized_capacity(capacity, config.vips.len()),
        ..Diff::default()
    };
    // Config order for what is added, live order for the rest.
    for v in &config.vips {
        if !live.iter().any(|(k, _)| *k == v.key())
            && let Some(e) = wanted.get(&v.key())
        {
            d.added.push(e.clone());
        }
    }
    for (k, l) in &live {
        match wanted.get(k) {
            None => d.removed.push(l.clone()),
            Some(w) if w != l => d.changed.push(Changed {
                endpoint: l.endpoint.clone(),
                live: l.clone(),
                config: w.clone(),
            }),
            Some(_) => d.unchanged += 1,
        }
    }
    let live_peers = maps.live_peers()?;
    for p in &config.peers {
        if !live_peers.contains(&p.mac) {
            d.peers_added.push(format_mac(&p.mac));
        }
    }
    for m in &live_peers {
        if !config.peers.iter().any(|p| p.mac == *m) {
            d.peers_removed.push(format_mac(m));
        }
    }
    Ok(d)
}

//! attach / reload / detach / status / stats.
//!
//! Pin layout (one directory per network namespace and interface):
//!
//! ```text
//! PIN_DIR/ns<netns inode>/<ifname>/prog          the classifier
//! PIN_DIR/ns<netns inode>/<ifname>/link          the TCX link (tcx mode only)
//! PIN_DIR/ns<netns inode>/<ifname>/LVS_*         the maps (see maps::ALL_MAPS)
//! ```
//! In netlink mode the cls_bpf filter lives on the interface's clsact qdisc; its priority
//! and handle are kept in the `LVS_META` map, so a later `detach` removes exactly it.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use aya::programs::{
    Link as _, LinkOrder, ProgramError, ProgramInfo, SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
};
use lvs_ebpf_common::{
    AttachMeta, FAMILY_V4, META_MAGIC, META_PATH_LEN, META_VERSION, MODE_NETLINK, MODE_TCX,
    VipCounters,
};
use serde::Serialize;

use crate::{
    config::{self, Config, Protocol, format_mac},
    datapath::Datapath,
    error::{Error, Result},
    maps::{ALL_MAPS, ApplyReport, MapSet},
    sys,
};

/// Default root of the pins.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lvs-ebpf";
const PROG_PIN: &str = "prog";
const LINK_PIN: &str = "link";

/// How to hook into TC ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// TCX on Linux >= 6.6, netlink (clsact + cls_bpf) otherwise.
    Auto,
    /// A TCX BPF link (Linux >= 6.6), pinned.
    Tcx,
    /// A cls_bpf direct-action filter on a clsact qdisc.
    Netlink,
}

fn mode_name(mode: u32) -> &'static str {
    match mode {
        MODE_TCX => "tcx",
        MODE_NETLINK => "netlink",
        _ => "unknown",
    }
}

/// The pins of one interface in the current network namespace.
pub fn attachment_dir(pin_root: &Path, iface: &str) -> Result<PathBuf> {
    Ok(pin_root
        .join(format!("ns{}", sys::netns_inode()?))
        .join(iface))
}

fn fixed<const N: usize>(s: &str) -> ([u8; N], u32) {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    let n = b.len().min(N);
    out[..n].copy_from_slice(&b[..n]);
    (out, n as u32)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn remove_pins(dir: &Path) {
    for name in ALL_MAPS.iter().chain([PROG_PIN, LINK_PIN].iter()) {
        let _ = fs::remove_file(dir.join(name));
    }
    let _ = fs::remove_dir(dir);
    // The namespace directory and the pin root go too once nothing else is in them
    // (remove_dir refuses non-empty directories).
    if let Some(ns_dir) = dir.parent() {
        let _ = fs::remove_dir(ns_dir);
        if let Some(root) = ns_dir.parent() {
            let _ = fs::remove_dir(root);
        }
    }
}

/// What `attach` or `reload` did.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub interface: String,
    /// `attached` or `reloaded`.
    pub action: &'static str,
    pub mode: &'static str,
    pub program_id: Option<u32>,
    pub pin_dir: PathBuf,
    pub vips: usize,
    pub peers: usize,
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
    pub generation: u32,
    pub config_digest: String,
}

fn report(
    iface: &str,
    action: &'static str,
    meta: &AttachMeta,
    program_id: Option<u32>,
    dir: &Path,
    r: &ApplyReport,
    config: &Config,
) -> AttachReport {
    AttachReport {
        interface: iface.to_owned(),
        action,
        mode: mode_name(meta.mode),
        program_id,
        pin_dir: dir.to_path_buf(),
        vips: r.vips,
        peers: r.peers,
        added: r.added,
        removed: r.removed,
        kept: r.kept,
        generation: r.generation,
        config_digest: config.digest_hex(),
    }
}

fn update_meta_for(meta: &mut AttachMeta, config: &Config, r: &ApplyReport) {
    meta.reloaded_at = sys::now_unix();
    meta.generation += 1;
    meta.vip_count = r.vips as u32;
    meta.peer_count = r.peers as u32;
    meta.digest = config.digest;
    let path = config
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (p, n) = fixed::<META_PATH_LEN>(&path);
    meta.config_path = p;
    meta.path_len = n;
}

fn pinned_program_id(dir: &Path) -> Option<u32> {
    ProgramInfo::from_pin(dir.join(PROG_PIN))
        .ok()
        .map(|i| i.id())
}

/// Loads, fills, attaches and pins; if `iface` is already attached, applies `config` like
/// `reload` instead.
pub fn attach(pin_root: &Path, iface: &str, config: &Config, mode: Mode) -> Result<AttachReport> {
    sys::check_privileges()?;
    let ifindex = sys::ifindex(iface).ok_or_else(|| Error::NoInterface {
        iface: iface.to_owned(),
        where_: String::new(),
    })?;
    sys::ensure_bpffs(pin_root)?;
    let dir = attachment_dir(pin_root, iface)?;
    if dir.join(lvs_ebpf_common::map_names::META).exists() {
        match MapSet::from_pins(&dir).and_then(|m| m.read_meta().map(|meta| (m, meta))) {
            Ok((_, meta))
                if meta.magic == META_MAGIC
                    && meta.ifindex == ifindex
                    && is_hooked(&dir, iface, &meta) =>
            {
                return reload(pin_root, iface, config);
            }
            // Pinned but no longer on the hook (someone removed the filter, qdisc or
            // link): start over, so that attach always ends with a running datapath.
            Ok((_, meta)) if meta.magic == META_MAGIC && meta.ifindex == ifindex => {
                cleanup_attachment(&dir, iface, &meta, true)
            }
            // Pins from a deleted and recreated interface (or a half-written attach):
            // clean them up and attach from scratch.
            Ok((_, meta)) => cleanup_attachment(&dir, iface, &meta, false),
            Err(_) => remove_pins(&dir),
        }
    } else if dir.exists() {
        remove_pins(&dir);
    }

    let mode = match mode {
        Mode::Auto if sys::supports_tcx() => Mode::Tcx,
        Mode::Auto => Mode::Netlink,
        Mode::Tcx if !sys::supports_tcx() => {
            return Err(Error::Kernel(format!(
                "--mode tcx needs Linux >= 6.6 (TCX links); this kernel is {}: use --mode netlink (or auto)",
                sys::kernel_release()
            )));
        }
        m => m,
    };

    let mut dp = Datapath::load()?;
    let applied = dp.maps.apply(config)?;
    let program_id = dp.program_id().ok();

    let mut meta = AttachMeta {
        magic: META_MAGIC,
        version: META_VERSION,
        ifindex,
        netns_ino: sys::netns_inode()?,
        attached_at: sys::now_unix(),
        ..AttachMeta::default()
    };
    meta.ifname = fixed::<16>(iface).0;
    update_meta_for(&mut meta, config, &applied);
    meta.generation = 1;

    // Attach. From here on, undo everything on failure.
    let mut tcx_link: Option<FdLink> = None;
    let mut nl: Option<(u16, TcHandle)> = None;
    {
        let prog = dp.program()?;
        match mode {
            Mode::Tcx => {
                meta.mode = MODE_TCX;
                let id = prog
                    .attach_with_options(
                        iface,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(LinkOrder::default()),
                    )
                    .map_err(|e| attach_error(iface, "tcx", e))?;
                let link = prog
                    .take_link(id)
                    .map_err(|e| attach_error(iface, "tcx", e))?;
                let link: FdLink =
                    link.try_into()
                        .map_err(|e: aya::programs::links::LinkError| Error::Attach {
                            iface: iface.to_owned(),
                            mode: "tcx",
                            hint: String::new(),
                            source: Box::new(e),
                        })?;
                tcx_link = Some(link);
            }
            Mode::Netlink | Mode::Auto => {
                meta.mode = MODE_NETLINK;
                meta.created_clsact = match tc::qdisc_add_clsact(iface) {
                    Ok(()) => 1,
                    Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => 0,
                    Err(e) => return Err(attach_error(iface, "netlink", ProgramError::from(e))),
                };
                let attached = prog.attach_with_options(
                    iface,
                    TcAttachType::Ingress,
                    TcAttachOptions::Netlink(NlOptions::default()),
                );
                let id = match attached {
                    Ok(id) => id,
                    Err(e) => {
                        if meta.created_clsact == 1 {
                            remove_clsact_if_empty(iface);
                        }
                        return Err(attach_error(iface, "netlink", e));
                    }
                };
                let link = prog
                    .take_link(id)
                    .map_err(|e| attach_error(iface, "netlink", e))?;
                let (prio, handle) = (
                    link.priority()
                        .map_err(|e| attach_error(iface, "netlink", e))?,
                    link.handle()
                        .map_err(|e| attach_error(iface, "netlink", e))?,
                );
                // The filter must outlive this process: don't let Drop detach it.
                std::mem::forget(link);
                meta.nl_priority = u32::from(prio);
                meta.nl_handle = u32::from(handle);
                nl = Some((prio, handle));
            }
        }
    }

    let pinned = (|| -> Result<()> {
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        dp.maps.pin(&dir)?;
        dp.program()?
            .pin(dir.join(PROG_PIN))
            .map_err(|e| Error::Pin {
                path: dir.join(PROG_PIN),
                source: Box::new(e),
            })?;
        if let Some(link) = tcx_link.take() {
            link.pin(dir.join(LINK_PIN)).map_err(|e| Error::Pin {
                path: dir.join(LINK_PIN),
                source: Box::new(e),
            })?;
        }
        dp.maps.write_meta(&meta)
    })();
    if let Err(e) = pinned {
        // tcx_link (if not yet pinned) detaches when dropped; the netlink filter does not.
        if let Some((prio, handle)) = nl {
            detach_netlink(iface, prio, handle);
            if meta.created_clsact == 1 {
                remove_clsact_if_empty(iface);
            }
        }
        if let Ok(p) = PinnedLink::from_pin(dir.join(LINK_PIN)) {
            let _ = p.unpin();
        }
        remove_pins(&dir);
        return Err(e);
    }
    Ok(report(
        iface, "attached", &meta, program_id, &dir, &applied, config,
    ))
}

fn attach_error(iface: &str, mode: &'static str, e: ProgramError) -> Error {
    let text = format!("{e:?}");
    let hint = if text.contains("EOPNOTSUPP")
        || text.contains("Operation not supported")
        || text.contains("os error 95")
    {
        ": the kernel lacks TC BPF support (CONFIG_NET_CLS_BPF / CONFIG_NET_SCH_INGRESS, or TCX for --mode tcx)".to_owned()
    } else if text.contains("ENOENT") || text.contains("os error 2") {
        ": the kernel has no clsact/cls_bpf (modprobe sch_ingress cls_bpf?)".to_owned()
    } else {
        String::new()
    };
    Error::Attach {
        iface: iface.to_owned(),
        mode,
        hint,
        source: Box::new(e),
    }
}

/// Replaces VIPs and peers of an attached interface atomically.
pub fn reload(pin_root: &Path, iface: &str, config: &Config) -> Result<AttachReport> {
    sys::check_privileges()?;
    let (dir, mut maps, mut meta) = open_attachment(pin_root, iface)?;
    let applied = maps.apply(config)?;
    update_meta_for(&mut meta, config, &applied);
    maps.write_meta(&meta)?;
    Ok(report(
        iface,
        "reloaded",
        &meta,
        pinned_program_id(&dir),
        &dir,
        &applied,
        config,
    ))
}

fn open_attachment(pin_root: &Path, iface: &str) -> Result<(PathBuf, MapSet, AttachMeta)> {
    let dir = attachment_dir(pin_root, iface)?;
    let not_attached = || Error::NotAttached {
        iface: iface.to_owned(),
        dir: dir.clone(),
        where_: String::new(),
    };
    if !dir.join(lvs_ebpf_common::map_names::META).exists() {
        return Err(match sys::ifindex(iface) {
            None => Error::NoInterface {
                iface: iface.to_owned(),
                where_: String::new(),
            },
            Some(_) => not_attached(),
        });
    }
    let maps = MapSet::from_pins(&dir)?;
    let meta = maps.read_meta()?;
    if meta.magic != META_MAGIC {
        return Err(not_attached());
    }
    if let Some(now) = sys::ifindex(iface)
        && now != meta.ifindex
    {
        return Err(Error::StaleAttachment {
            iface: iface.to_owned(),
            old: meta.ifindex,
            new: now,
        });
    }
    Ok((dir, maps, meta))
}

fn detach_netlink(iface: &str, prio: u16, handle: TcHandle) {
    if let Ok(link) =
        SchedClassifierLink::attached(iface, TcAttachType::Ingress, prio, handle, None)
    {
        let _ = link.detach();
    }
}

/// Deletes the clsact qdisc we created, unless someone else's filters are on it now.
fn remove_clsact_if_empty(iface: &str) {
    let has_filters = ["ingress", "egress"].iter().any(|dir| {
        std::process::Command::new("tc")
            .args(["filter", "show", "dev", iface, dir])
            .output()
            .map(|o| !o.status.success() || !o.stdout.is_empty())
            .unwrap_or(true)
    });
    if !has_filters {
        let _ = std::process::Command::new("tc")
            .args(["qdisc", "del", "dev", iface, "clsact"])
            .status();
    }
}

fn cleanup_attachment(dir: &Path, iface: &str, meta: &AttachMeta, iface_alive: bool) {
    if meta.mode == MODE_TCX {
        // Dropping the last reference to the link detaches it.
        if let Ok(p) = PinnedLink::from_pin(dir.join(LINK_PIN)) {
            let _ = p.unpin();
        }
    } else if meta.mode == MODE_NETLINK && iface_alive {
        detach_netlink(
            iface,
            meta.nl_priority as u16,
            TcHandle::from(meta.nl_handle),
        );
        if meta.created_clsact == 1 {
            remove_clsact_if_empty(iface);
        }
    }
    remove_pins(dir);
}

/// What `detach` removed.
#[derive(Debug, Clone, Serialize)]
pub struct DetachReport {
    pub interface: String,
    pub mode: &'static str,
    pub pin_dir: PathBuf,
}

/// Removes the program from `iface` and every pin the loader made for it. Other users'
/// qdiscs, filters and programs are left alone.
pub fn detach(pin_root: &Path, iface: &str) -> Result<DetachReport> {
    sys::check_privileges()?;
    let dir = attachment_dir(pin_root, iface)?;
    if !dir.exists() {
        return Err(Error::NotAttached {
            iface: iface.to_owned(),
            dir,
            where_: String::new(),
        });
    }
    let meta = MapSet::from_pins(&dir)
        .and_then(|m| m.read_meta())
        .unwrap_or_default();
    let alive = sys::ifindex(iface) == Some(meta.ifindex);
    cleanup_attachment(&dir, iface, &meta, alive);
    Ok(DetachReport {
        interface: iface.to_owned(),
        mode: mode_name(meta.mode),
        pin_dir: dir,
    })
}

/// One attached interface.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    pub interface: String,
    pub netns_inode: u64,
    /// Whether the namespace is the caller's.
    pub current_netns: bool,
    pub ifindex: u32,
    /// `ok`, `interface gone`, `other netns`, `broken pins`.
    pub state: String,
    pub mode: &'static str,
    pub program_id: Option<u32>,
    pub vips: u32,
    pub peers: u32,
    pub config_path: String,
    pub config_digest: String,
    pub attached_at: u64,
    pub reloaded_at: u64,
    pub generation: u64,
    pub pin_dir: PathBuf,
}

/// Every attachment under `pin_root`, in every namespace.
pub fn status(pin_root: &Path) -> Result<Vec<StatusEntry>> {
    let mut out = Vec::new();
    let Ok(ns_dirs) = fs::read_dir(pin_root) else {
        return Ok(out);
    };
    let here = sys::netns_inode().ok();
    let mut ns_dirs: Vec<_> = ns_dirs.flatten().map(|e| e.path()).collect();
    ns_dirs.sort();
    for ns_dir in ns_dirs {
        let Some(ino) = ns_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("ns"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(ifaces) = fs::read_dir(&ns_dir) else {
            continue;
        };
        let mut ifaces: Vec<_> = ifaces.flatten().map(|e| e.path()).collect();
        ifaces.sort();
        for dir in ifaces {
            let iface = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let current = here == Some(ino);
            let entry = match MapSet::from_pins(&dir).and_then(|m| m.read_meta()) {
                Ok(meta) => {
                    let prog_id = pinned_program_id(&dir);
                    let state = if !current {
                        "other netns".to_owned()
                    } else if sys::ifindex(&iface) != Some(meta.ifindex) {
                        "interface gone".to_owned()
                    } else if !is_hooked(&dir, &iface, &meta) {
                        "not hooked".to_owned()
                    } else {
                        "ok".to_owned()
                    };
                    StatusEntry {
                        interface: iface,
                        netns_inode: ino,
                        current_netns: current,
                        ifindex: meta.ifindex,
                        state,
                        mode: mode_name(meta.mode),
                        program_id: prog_id,
                        vips: meta.vip_count,
                        peers: meta.peer_count,
                        config_path: cstr(&meta.config_path),
                        config_digest: config::hex(&meta.digest),
                        attached_at: meta.attached_at,
                        reloaded_at: meta.reloaded_at,
                        generation: meta.generation,
                        pin_dir: dir.clone(),
                    }
                }
                Err(_) => StatusEntry {
                    interface: iface,
                    netns_inode: ino,
                    current_netns: current,
                    ifindex: 0,
                    state: "broken pins".to_owned(),
                    mode: "unknown",
                    program_id: None,
                    vips: 0,
                    peers: 0,
                    config_path: String::new(),
                    config_digest: String::new(),
                    attached_at: 0,
                    reloaded_at: 0,
                    generation: 0,
                    pin_dir: dir.clone(),
                },
            };
            out.push(entry);
        }
    }
    Ok(out)
}

/// Per-VIP counters, summed over CPUs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VipStats {
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub protocol: String,
    pub mark: u32,
    pub marked_packets: u64,
    pub marked_bytes: u64,
    pub peer_packets: u64,
    pub peer_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub interface: String,
    pub vips: Vec<VipStats>,
    pub peers: Vec<String>,
    /// Sums over VIPs plus the global counters.
    pub totals: std::collections::BTreeMap<String, u64>,
}

/// Counters of the VIPs and global counters of an attached interface.
pub fn stats(pin_root: &Path, iface: &str) -> Result<Stats> {
    let (_, mut maps, _) = open_attachment(pin_root, iface)?;
    stats_from_maps(&mut maps, iface)
}

/// The same, from maps in hand (tests use it on a loaded, unattached datapath).
pub fn stats_from_maps(maps: &mut MapSet, iface: &str) -> Result<Stats> {
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
            let name = if v.info.name_len > 0 {
                String::from_utf8_lossy(&v.info.name[..v.info.name_len as usize]).into_owned()
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
                address: address.to_string(),
                port,
                protocol,
                mark: v.value.mark,
                marked_packets: v.counters.marked_packets,
                marked_bytes: v.counters.marked_bytes,
                peer_packets: v.counters.peer_packets,
                peer_bytes: v.counters.peer_bytes,
            }
        })
        .collect();
    let mut totals: std::collections::BTreeMap<String, u64> = maps
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
        interface: iface.to_owned(),
        vips,
        peers,
        totals,
    })
}

/// Whether the pinned program of `dir` still runs on `iface`'s ingress: in the TCX
/// program list, or (netlink mode) as a cls_bpf filter `tc` shows. When `tc` is not
/// installed the answer is "yes" (we can't tell).
fn is_hooked(dir: &Path, iface: &str, meta: &AttachMeta) -> bool {
    let Some(prog_id) = pinned_program_id(dir) else {
        return false;
    };
    match meta.mode {
        MODE_TCX => tcx_ingress_programs(iface)
            .map(|p| p.iter().any(|(id, _)| *id == prog_id))
            .unwrap_or(false),
        // `tc` fails when the clsact qdisc is gone; only a missing `tc` leaves us unsure.
        _ => match std::process::Command::new("tc")
            .args(["filter", "show", "dev", iface, "ingress"])
            .output()
        {
            Ok(o) => {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).contains(&format!(" id {prog_id} "))
            }
            Err(_) => true,
        },
    }
}

/// Programs on `iface`'s TCX ingress hook, in run order, as (id, name). Empty when the
/// kernel has no TCX.
pub fn tcx_ingress_programs(iface: &str) -> Result<Vec<(u32, String)>> {
    if !sys::supports_tcx() {
        return Ok(Vec::new());
    }
    let (_, progs) =
        SchedClassifier::query_tcx(iface, TcAttachType::Ingress).map_err(|e| Error::Attach {
            iface: iface.to_owned(),
            mode: "tcx",
            hint: ": querying the TCX ingress hook failed".into(),
            source: Box::new(e),
        })?;
    Ok(progs
        .iter()
        .map(|p| (p.id(), p.name_as_str().unwrap_or("?").to_owned()))
        .collect())
}

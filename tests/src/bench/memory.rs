//! Memory and control-plane cost: kernel map memory (the maps' own `memlock`
//! accounting), the loader's peak RSS and wall time for attach and reload of a large VIP
//! set, through the CLI (TOML parsing included) and through the library.

use std::{
    fs::File,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use lvs_ebpf_common::{MAX_PEERS, capacity_for, map_names};
use lvs_loader::{
    AttachOptions, Attachment, IfName, ModeChoice, config::Config, datapath::Datapath,
};
use serde::Serialize;

use super::{
    mapfd::MapById,
    wholepath::Director,
    workload::{self, Target},
};
use crate::netns::PinRoot;

/// Times the attach/reload/detach sequences run (medians reported).
const REPEATS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct MapMem {
    pub name: String,
    pub map_type: u32,
    pub max_entries: u64,
    pub key_size: u64,
    pub value_size: u64,
    pub memlock: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    pub what: String,
    pub vips: usize,
    pub wall_ms: f64,
    /// Peak RSS of the CLI process (KiB); None for in-process library calls.
    pub max_rss_kib: Option<u64>,
    /// The step failed (expected for a reload that needs more counter slots than free).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub vips: usize,
    pub peers: usize,
    pub nr_cpus: usize,
    /// Right after loading (maps empty).
    pub maps_empty: Vec<MapMem>,
    /// With `vips` VIPs and `peers` peers installed.
    pub maps_loaded: Vec<MapMem>,
    pub total_bytes: u64,
    /// VIP slots of the maps (`capacity_for(vips)`, as `attach` sizes them).
    pub capacity: u32,
    /// Maps sized by the capacity (both VIP generations, per-VIP counters, names), per slot.
    pub per_vip_bytes: f64,
    /// Kernel memory of a whole attachment at several VIP counts.
    pub sized: Sized,
    /// Both peer generations, per slot.
    pub per_peer_bytes: f64,
    /// Everything else (control, global counters, attach metadata).
    pub fixed_bytes: u64,
    pub cli: Vec<Timed>,
    pub library: Vec<Timed>,
}

/// `memlock` and shape of map `id`, from /proc/self/fdinfo.
fn map_mem(name: &str, id: u32) -> Result<MapMem> {
    let m = MapById::open(name, id)?;
    Ok(MapMem {
        name: name.to_owned(),
        map_type: m.field("map_type")? as u32,
        max_entries: m.field("max_entries")?,
        key_size: m.field("key_size")?,
        value_size: m.field("value_size")?,
        memlock: m.field("memlock")?,
    })
}

fn all_map_mem(dp: &Datapath) -> Result<Vec<MapMem>> {
    dp.maps
        .ids()
        .into_iter()
        .map(|(n, id)| map_mem(n, id))
        .collect()
}

/// The CLI binary: `$LVS_LOADER`, else next to this executable.
pub fn loader_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LVS_LOADER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let p = exe
        .parent()
        .context("executable has no directory")?
        .join("lvs-loader");
    if !p.exists() {
        bail!(
            "{} not found: `cargo build --release -p lvs-loader` (cargo xtask bench does) or set LVS_LOADER",
            p.display()
        );
    }
    Ok(p)
}

/// Runs `cmd` to completion; wall time and the child's peak RSS (wait4's ru_maxrss).
fn run_measured(cmd: &mut Command, log: &Path) -> Result<(f64, u64)> {
    let what = format!("{cmd:?}");
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("dup log fd")?;
    let t0 = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unreaped child.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = t0.elapsed().as_secs_f64() * 1e3;
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("wait4 {what}"));
    }
    let st = std::process::ExitStatus::from_raw(status);
    if !st.success() {
        bail!(
            "{what} failed ({st}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    Ok((wall, ru.ru_maxrss as u64))
}

/// Share of the VIPs a "replaced" reload swaps for new ones.
pub const REPLACED_SHARE: f64 = 0.25;

/// The VIP set with the first `REPLACED_SHARE` of its fillers replaced by new ones.
///
/// (Replacing *every* VIP of a 100,000-VIP set fails: new VIPs need counter slots that
/// no live VIP uses, and only MAX_VIPS - 100,000 are free until the switch.)
fn replaced(n: usize, peers: usize) -> Config {
    let k = (n as f64 * REPLACED_SHARE) as usize;
    let mut vips = workload::vips(n, Target::V4);
    for (i, v) in vips.iter_mut().take(k.min(n.saturating_sub(1))).enumerate() {
        *v = workload::filler(n + i);
    }
    Config {
        peers: workload::peers(peers),
        vips,
        digest: [1; 32],
        path: None,
    }
}

/// One attachment's kernel map memory with `vips` VIPs installed.
#[derive(Debug, Clone, Serialize)]
pub struct SizedRow {
    pub vips: usize,
    pub capacity: u32,
    /// Every map of one attachment (the program's and the loader's pinned ones), measured.
    pub bytes: u64,
    /// Of which per-CPU maps (they scale with the number of possible CPUs).
    pub per_cpu_bytes: u64,
}

impl SizedRow {
    /// The same attachment on a machine with `cpus` possible CPUs (`cpus_here` here).
    pub fn bytes_on(&self, cpus: usize, cpus_here: usize) -> f64 {
        (self.bytes - self.per_cpu_bytes) as f64
            + self.per_cpu_bytes as f64 * cpus as f64 / cpus_here.max(1) as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sized {
    /// Possible CPUs here (what per-CPU maps are sized by).
    pub possible_cpus: usize,
    pub rows: Vec<SizedRow>,
}

/// VIP counts of the sized-memory table.
pub const SIZED_VIPS: [usize; 3] = [1, 1000, 100_000];

/// Kernel memory of one attachment's maps, sized as `attach` sizes them, for each of
/// [`SIZED_VIPS`]. Interfaces do not share maps, so `k` interfaces take `k` times this.
pub fn sized() -> Result<Sized> {
    let possible_cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let mut rows = Vec::new();
    for n in SIZED_VIPS {
        let capacity = capacity_for(n);
        let mut dp = Datapath::load_sized(capacity).context("loading lvs-ebpf")?;
        dp.maps
            .apply(&workload::config(n, Target::V4, 1))
            .context("installing the VIP set")?;
        let mut ids: Vec<u32> = dp.maps.ids().into_iter().map(|(_, id)| id).collect();
        let prog = dp.program_fd().context("program fd")?;
        // SAFETY: the fd stays open while `dp` lives.
        let prog = unsafe { std::os::fd::BorrowedFd::borrow_raw(prog) };
        ids.extend(lvs_loader::bpf::prog_map_ids(prog).context("program's maps")?);
        ids.sort_unstable();
        ids.dedup();
        let (mut bytes, mut per_cpu_bytes) = (0, 0);
        for id in ids {
            let fd = lvs_loader::bpf::map_by_id(id).with_context(|| format!("map {id}"))?;
            let m = lvs_loader::bpf::map_memory(std::os::fd::AsFd::as_fd(&fd))
                .with_context(|| format!("map {id}"))?;
            bytes += m.bytes;
            if m.per_cpu() {
                per_cpu_bytes += m.bytes;
            }
        }
        rows.push(SizedRow {
            vips: n,
            capacity,
            bytes,
            per_cpu_bytes,
        });
    }
    Ok(Sized {
        possible_cpus,
        rows,
    })
}

pub fn run(n: usize, peers: usize, tmp: &Path) -> Result<Results> {
    let sized = sized().context("sized map memory")?;
    // 1. The maps' own accounting, empty and with the VIP set installed, sized as
    // `attach` sizes them for this VIP set.
    let capacity = capacity_for(n);
    let mut dp = Datapath::load_sized(capacity).context("loading lvs-ebpf")?;
    let maps_empty = all_map_mem(&dp)?;
    dp.maps
        .apply(&workload::config(n, Target::V4, peers))
        .context("installing the VIP set")?;
    let maps_loaded = all_map_mem(&dp)?;
    drop(dp);
    let sum = |names: &[&str]| -> u64 {
        maps_loaded
            .iter()
            .filter(|m| names.contains(&m.name.as_str()))
            .map(|m| m.memlock)
            .sum()
    };
    let vip_maps = [
        map_names::V4_TABLE,
        map_names::V6_TABLE,
        map_names::VIP_STATS,
        map_names::VIP_INFO,
    ];
    let peer_maps = [
        map_names::PEERS[0],
        map_names::PEERS[1],
        map_names::PEER_TABLE,
    ];
    let total_bytes: u64 = maps_loaded.iter().map(|m| m.memlock).sum();
    let vip_bytes = sum(&vip_maps);
    let peer_bytes = sum(&peer_maps);

    // 2. CLI: attach, reload (same set), reload (25% replaced), detach.
    std::fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let director = Director::new("bm");
    let pins = PinRoot::new("benchmem");
    let loader = loader_path()?;
    let cfg_a = tmp.join("vips-a.toml");
    let cfg_b = tmp.join("vips-b.toml");
    std::fs::write(
        &cfg_a,
        workload::toml(&workload::config(n, Target::V4, peers)),
    )
    .context("writing config")?;
    std::fs::write(&cfg_b, workload::toml(&replaced(n, peers))).context("writing config")?;
    let mut cli = Vec::new();
    let steps: [(&str, Vec<String>); 5] = [
        (
            "check (parse + validate only)",
            vec![
                "check".into(),
                "--config".into(),
                cfg_a.display().to_string(),
            ],
        ),
        (
            "attach",
            vec![
                "attach".into(),
                director.iface.into(),
                "--mode".into(),
                "tcx".into(),
                "--config".into(),
                cfg_a.display().to_string(),
            ],
        ),
        (
            "reload, same VIPs",
            vec![
                "reload".into(),
                director.iface.into(),
                "--config".into(),
                cfg_a.display().to_string(),
            ],
        ),
        (
            "reload, 25% of VIPs replaced",
            vec![
                "reload".into(),
                director.iface.into(),
                "--config".into(),
                cfg_b.display().to_string(),
            ],
        ),
        ("detach", vec!["detach".into(), director.iface.into()]),
    ];
    // The sequence runs REPEATS times; each step reports its median wall time (other
    // load on the machine makes single runs jumpy) and its largest peak RSS.
    let mut runs: Vec<Vec<(f64, u64)>> = vec![Vec::new(); steps.len()];
    for _ in 0..REPEATS {
        for (i, (_, args)) in steps.iter().enumerate() {
            let mut cmd = Command::new(&loader);
            cmd.arg("--pin-dir")
                .arg(&pins.path)
                .arg("--netns")
                .arg(&director.ns.name)
                .args(args);
            runs[i].push(run_measured(&mut cmd, &tmp.join("loader.log"))?);
        }
    }
    for ((what, _), r) in steps.iter().zip(&runs) {
        cli.push(Timed {
            what: (*what).into(),
            vips: n,
            wall_ms: super::median(&r.iter().map(|x| x.0).collect::<Vec<_>>()),
            max_rss_kib: r.iter().map(|x| x.1).max(),
            error: None,
        });
    }

    // 3. Library (no TOML): the same sequence in-process.
    let mut library_runs: Vec<Vec<Timed>> = Vec::new();
    for _ in 0..REPEATS {
        let mut library = Vec::new();
        let _g = director.ns.enter();
        let a = workload::config(n, Target::V4, peers);
        let b = replaced(n, peers);
        let mut time = |what: &str, f: &mut dyn FnMut() -> lvs_loader::Result<()>| -> Result<()> {
            let t0 = Instant::now();
            let r = f();
            let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
            let error = match r {
                Ok(()) => None,
                // Recorded, not fatal: the report shows the limit.
                Err(e) if what.contains("every VIP") => Some(e.to_string()),
                Err(e) => return Err(e).with_context(|| what.to_owned()),
            };
            library.push(Timed {
                what: what.into(),
                vips: n,
                wall_ms,
                max_rss_kib: None,
                error,
            });
            Ok(())
        };
        let all_new = Config {
            peers: workload::peers(peers),
            vips: workload::vips_from(n, n, Target::V4),
            digest: [2; 32],
            path: None,
        };
        let p = pins.path.clone();
        let iface = IfName::new(director.iface).expect("interface name");
        let opts = AttachOptions {
            mode: ModeChoice::Tcx,
            ..AttachOptions::default()
        };
        let here = || Attachment::here(&p, &iface);
        time("attach", &mut || {
            Attachment::create(&p, &iface, &a, opts).map(drop)
        })?;
        time("reload, same VIPs", &mut || here()?.reload(&a).map(drop))?;
        time("reload, 25% of VIPs replaced", &mut || {
            here()?.reload(&b).map(drop)
        })?;
        time("reload, back (standby full)", &mut || {
            here()?.reload(&a).map(drop)
        })?;
        time("reload, every VIP replaced", &mut || {
            here()?.reload(&all_new).map(drop)
        })?;
        time("detach", &mut || here()?.detach().map(drop))?;
        library_runs.push(library);
    }
    let library: Vec<Timed> = library_runs[0]
        .iter()
        .enumerate()
        .map(|(i, t)| Timed {
            wall_ms: super::median(
                &library_runs
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|x| x.wall_ms)
                    .collect::<Vec<_>>(),
            ),
            ..t.clone()
        })
        .collect();
    let _ = std::fs::remove_file(&cfg_a);
    let _ = std::fs::remove_file(&cfg_b);
    let _ = std::fs::remove_file(tmp.join("loader.log"));
    let _ = std::fs::remove_dir(tmp);

    Ok(Results {
        vips: n,
        peers,
        nr_cpus: super::online_cpus(),
        total_bytes,
        capacity,
        sized,
        per_vip_bytes: vip_bytes as f64 / f64::from(capacity),
        per_peer_bytes: peer_bytes as f64 / f64::from(MAX_PEERS),
        fixed_bytes: total_bytes - vip_bytes - peer_bytes,
        maps_empty,
        maps_loaded,
        cli,
        library,
    })
}

//! `lvs-loader trace`: live per-packet decisions of an attached program.
//!
//! The program (lvs-ebpf/src/trace.rs) checks the control line's trace switch after its
//! decision; when on, it applies the filter in `LVS_TRACE` (source MAC, destination
//! address and port), a per-CPU token bucket, and sends a record (the reason code, mark,
//! VIP slot, detail bits and the first bytes of the frame) through the ring buffer
//! `LVS_TRACE_EV`. The records are named here with the words `explain` uses.
//!
//! * The trace maps belong to the pinned program (found through its map ids), so they
//!   live exactly as long as the attachment and survive reloads.
//! * The switch is written under the attachment's lock, for that write only (reloads run
//!   meanwhile); a trace re-arms it if a reload raced with arming.
//! * The filter holds a lease (a CLOCK_MONOTONIC deadline) that the trace renews every
//!   second; once it runs out (the trace was killed) the program emits nothing and turns
//!   the switch off itself.
//!
//! Here: arming a trace (the filter, the buckets, the switch), renewing its lease and
//! disarming it. `events`: reading the ring buffer and naming the records; `program`:
//! finding a program's trace maps (and the benchmark's switch on an unattached one).

mod events;
mod program;

pub use events::TraceRecord;
pub use program::bench_set;

use std::{
    collections::VecDeque,
    net::IpAddr,
    os::fd::{AsRawFd as _, RawFd},
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray, PerCpuValues, RingBuf};
use lvs_ebpf_common::{
    TRACE_MAC, TRACE_PORT, TRACE_V4, TRACE_V6, TraceBucket, TraceEvent, TraceFilter, mac_word,
    map_names,
};

use crate::{
    attachment::Attachment,
    error::{Error, Result},
    explain::Namer,
    maps::MapSet,
    pins::PROG_PIN,
};
use program::trace_maps;

/// What to trace and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceOptions {
    /// Only packets to this address (and port, if given).
    pub vip: Option<(IpAddr, Option<u16>)>,
    /// Only packets from this MAC.
    pub src_mac: Option<[u8; 6]>,
    /// Events per second, per CPU (the kernel's token bucket).
    pub rate: u32,
    /// Bucket size (events).
    pub burst: u32,
    /// How long the program keeps tracing without a renewal.
    pub lease: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            vip: None,
            src_mac: None,
            rate: 100,
            burst: 100,
            lease: Duration::from_secs(5),
        }
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn kernel(what: impl std::fmt::Display) -> Error {
    Error::Kernel(what.to_string())
}

/// A running trace (armed until [`Tracer::stop`] or drop).
pub struct Tracer {
    att: Attachment,
    maps: MapSet,
    filter_map: Array<MapData, TraceFilter>,
    events: RingBuf<MapData>,
    filter: TraceFilter,
    opts: TraceOptions,
    /// The names of the configs this trace saw live, by stamp ([`lvs_ebpf_common::Control::stamp`]),
    /// oldest first: an event is named by the config that decided it, also when a reload
    /// came before the trace read the event.
    namers: VecDeque<(u32, Namer)>,
    /// Events read but not yet named: their config is live, and its names are not read
    /// yet because a reload holds the lock.
    backlog: VecDeque<(TraceEvent, Instant)>,
    /// Why peer names of the newest config are missing, if they are.
    pub names_note: Option<String>,
    /// The pinned program this trace reads (a growing reload pins a new one).
    prog_id: u32,
    renewed: Instant,
    /// When this trace was armed (`CLOCK_MONOTONIC`, the clock of `bpf_ktime_get_ns`):
    /// older events in the ring buffer are an earlier trace's.
    started_ns: u64,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC.
    wall_offset: u64,
    armed: bool,
}

impl Tracer {
    pub(crate) fn open(
        att: Attachment,
        dir: &Path,
        maps: MapSet,
        opts: TraceOptions,
    ) -> Result<Self> {
        let prog = aya::programs::ProgramInfo::from_pin(dir.join(PROG_PIN))
            .map_err(|e| kernel(format!("reading the pinned program: {e}")))?;
        let Some((filter_map, bucket, events)) = trace_maps(&prog)? else {
            return Err(kernel(format!(
                "{}: the attached program predates tracing (no {} map): `lvs-loader detach {0}` and `attach` it again with this lvs-loader",
                att.ifname(),
                map_names::TRACE
            )));
        };
        let map_err = |what: &'static str| move |e: MapError| Error::map(map_names::TRACE, what, e);
        let mut filter_map: Array<MapData, TraceFilter> =
            Array::try_from(Map::Array(filter_map)).map_err(map_err("open"))?;
        let me = std::process::id();
        let now = monotonic_ns();
        let old = filter_map.get(&0, 0).map_err(map_err("read"))?;
        if old.owner != 0
            && old.owner != me
            && old.expires_ns > now
            // SAFETY: signal 0 only checks that the process exists.
            && unsafe { libc::kill(old.owner as i32, 0) } == 0
        {
            return Err(kernel(format!(
                "{}: another lvs-loader trace (pid {}) is tracing it; one trace per interface",
                att.ifname(),
                old.owner
            )));
        }
        // Fresh buckets: full credit, nothing suppressed.
        let mut bucket: PerCpuArray<MapData, TraceBucket> =
            PerCpuArray::try_from(Map::PerCpuArray(bucket)).map_err(map_err("open the buckets"))?;
        let cpus = aya::util::nr_cpus().map_err(|(w, e)| Error::io(format!("reading {w}"), e))?;
        let zero = PerCpuValues::try_from(vec![TraceBucket::default(); cpus])
            .map_err(|e| Error::io("per-CPU values", e))?;
        bucket
            .set(0, zero, 0)
            .map_err(map_err("reset the buckets"))?;
        let events =
            RingBuf::try_from(Map::RingBuf(events)).map_err(map_err("open the ring buffer"))?;
        let rate = u64::from(opts.rate.max(1));
        let cost_ns = 1_000_000_000 / rate;
        let mut filter = TraceFilter {
            expires_ns: now + opts.lease.as_nanos() as u64,
            cost_ns,
            burst_ns: cost_ns.saturating_mul(u64::from(opts.burst.max(1))),
            owner: me,
            ..TraceFilter::default()
        };
        if let Some(mac) = opts.src_mac {
            filter.flags |= TRACE_MAC;
            filter.mac = mac_word(mac);
        }
        if let Some((addr, port)) = opts.vip {
            match addr {
                IpAddr::V4(a) => {
                    filter.flags |= TRACE_V4;
                    filter.addr[..4].copy_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    filter.flags |= TRACE_V6;
                    filter.addr = a.octets();
                }
            }
            if let Some(p) = port {
                filter.flags |= TRACE_PORT;
                filter.port = u32::from(p);
            }
        }
        filter_map.set(0, filter, 0).map_err(map_err("write"))?;
        let mut t = Self {
            att,
            maps,
            filter_map,
            events,
            filter,
            opts,
            namers: VecDeque::new(),
            backlog: VecDeque::new(),
            names_note: None,
            prog_id: prog.id(),
            renewed: Instant::now(),
            started_ns: now,
            wall_offset: realtime_ns().saturating_sub(now),
            armed: false,
        };
        let wait = t.att.lock_wait;
        t.learn_live(wait).inspect_err(|_| t.clear_filter())?;
        t.att
            .set_trace_switch(true, wait)
            .inspect_err(|_| t.clear_filter())?;
        t.armed = true;
        Ok(t)
    }

    /// The ring buffer's fd (poll it for readability).
    pub fn fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    fn clear_filter(&mut self) {
        self.filter.expires_ns = 0;
        self.filter.owner = 0;
        let _ = self.filter_map.set(0, self.filter, 0);
    }

    /// Renews the lease (about every second) and re-arms the switch if something turned
    /// it off (a reload racing with arming; the program after a lapse of the lease).
    /// Re-reads the names when the live generation changed (a reload).
    pub fn tend(&mut self) -> Result<()> {
        if self.renewed.elapsed() >= Duration::from_millis(1000) {
            // A growing reload swaps in a new program with its own trace maps: this
            // trace's ring buffer would stay silent. Say so instead.
            let pinned = aya::programs::ProgramInfo::from_pin(self.att.dir().join(PROG_PIN))
                .map(|p| p.id())
                .ok();
            if pinned != Some(self.prog_id) {
                return Err(Error::ProgramReplaced {
                    iface: self.att.ifname().clone(),
                });
            }
            self.filter.expires_ns = monotonic_ns() + self.opts.lease.as_nanos() as u64;
            self.filter_map
                .set(0, self.filter, 0)
                .map_err(|e| Error::map(map_names::TRACE, "renew the lease", e))?;
            self.renewed = Instant::now();
            if self.maps.trace_switch()? == 0 {
                // Busy (a reload): try again at the next renewal.
                match self.att.set_trace_switch(true, Duration::ZERO) {
                    Ok(()) | Err(Error::Busy { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.learn_live(Duration::ZERO)
    }

    /// Turns tracing off (under the attachment's lock) and ends the lease.
    pub fn stop(mut self) -> Result<()> {
        self.disarm()
    }

    fn disarm(&mut self) -> Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        self.clear_filter();
        self.att.set_trace_switch(false, self.att.lock_wait)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.disarm();
    }
}

//! Reading a trace: the records in the ring buffer, filtered again on their decoded
//! headers and named by the config that decided them (kept for the last few configs,
//! read under the attachment's lock).

use std::time::{Duration, Instant};

use lvs_ebpf_common::{Reason, TraceEvent, detail};

use super::{Tracer, kernel};
use crate::{
    attachment::read_meta_from,
    error::{Error, Result},
    explain::{Namer, Verdict, live_namer, summarize},
    lock,
    testrun::{Explanation, MatchedVip},
};

/// One traced packet.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceRecord {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Matching packets the kernel's rate limit left out (on this CPU) just before it.
    pub suppressed: u64,
    /// `skb->len`.
    pub len: u32,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Configs whose names a trace keeps (a reload every poll would need two).
const NAMERS_KEPT: usize = 4;
/// How long an event of the live config waits for its names while a reload holds the
/// lock.
const NAME_WAIT: Duration = Duration::from_secs(1);
/// The note of an event whose config was replaced before this trace read its names.
const NAMES_GONE: &str =
    "names unknown: the config that decided it was replaced before the trace read its names";

impl Tracer {
    fn namer_of(&self, stamp: u32) -> Option<&Namer> {
        self.namers
            .iter()
            .rev()
            .find(|(s, _)| *s == stamp)
            .map(|(_, n)| n)
    }

    /// Reads the names of the live config if this trace has not yet: under the
    /// attachment's lock, waiting at most `wait` (none: try again later), since a reload
    /// renames counter slots before its flip.
    pub(super) fn learn_live(&mut self, wait: Duration) -> Result<()> {
        let (_, stamp) = self.maps.live_stamp()?;
        if self.namer_of(stamp).is_some() {
            return Ok(());
        }
        let _guard = match lock::acquire(&self.att.lock_key(), wait) {
            Ok(g) => g,
            Err(Error::Busy { .. }) if wait.is_zero() => return Ok(()),
            Err(e) => return Err(e),
        };
        let (_, stamp) = self.maps.live_stamp()?;
        let meta = read_meta_from(&self.maps, &self.att.dir(), self.att.ifname())?;
        let (namer, note) = live_namer(&mut self.maps, &meta)?;
        self.names_note = note;
        self.namers.retain(|(s, _)| *s != stamp);
        if self.namers.len() >= NAMERS_KEPT {
            self.namers.pop_front();
        }
        self.namers.push_back((stamp, namer));
        Ok(())
    }

    /// The records waiting in the ring buffer that pass the filter (applied again to the
    /// decoded headers: the program lets through what it cannot read), each named by the
    /// config that decided it. An event of the live config waits (at most
    /// [`NAME_WAIT`]) while a reload keeps its names from being read; an event of a
    /// config that was live too briefly for this trace to read its names says so.
    pub fn drain(&mut self) -> Result<Vec<TraceRecord>> {
        let now = Instant::now();
        while let Some(item) = self.events.next() {
            if item.len() != std::mem::size_of::<TraceEvent>() {
                return Err(kernel(format!(
                    "{}: the attached program sends trace records of {} bytes, this lvs-loader reads {}: `lvs-loader detach {0}` and `attach` it again with this lvs-loader",
                    self.att.ifname(),
                    item.len(),
                    std::mem::size_of::<TraceEvent>()
                )));
            }
            // SAFETY: a record of the event's size; read unaligned.
            let ev = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const TraceEvent) };
            if ev.time_ns < self.started_ns {
                // Left in the ring buffer by an earlier trace (one killed within its lease
                // keeps the program emitting until the lease runs out): not this trace's.
                continue;
            }
            self.backlog.push_back((ev, now));
        }
        if self.backlog.is_empty() {
            return Ok(Vec::new());
        }
        self.learn_live(Duration::ZERO)?;
        let (_, live) = self.maps.live_stamp()?;
        let unnamed = Namer::default();
        let mut out = Vec::new();
        while let Some((ev, since)) = self.backlog.front() {
            let namer = match ev.stamp {
                // No config consulted (a packet the parser gave up on).
                0 => self.namers.back().map(|(_, n)| n),
                s => self.namer_of(s),
            };
            let record = match namer {
                Some(n) => self.record(ev, n, None),
                None if ev.stamp == live && since.elapsed() < NAME_WAIT => break,
                None => self.record(ev, &unnamed, Some(NAMES_GONE)),
            };
            out.extend(record);
            self.backlog.pop_front();
        }
        Ok(out)
    }

    fn record(&self, ev: &TraceEvent, namer: &Namer, note: Option<&str>) -> Option<TraceRecord> {
        let n = (ev.captured as usize).min(ev.headers.len());
        let summary = summarize(&ev.headers[..n]);
        if let Some(mac) = self.opts.src_mac
            && summary.src_mac != Some(mac)
        {
            return None;
        }
        if let Some((addr, port)) = self.opts.vip {
            if summary.dst != Some(addr) {
                return None;
            }
            if let (Some(want), Some(got)) = (port, summary.port)
                && want != got
            {
                return None;
            }
        }
        let reason = Reason::from_u32(ev.reason)?;
        let vip = matches!(reason, Reason::Marked | Reason::Peer).then_some(MatchedVip {
            mark: ev.mark,
            slot: ev.slot,
            any_port: ev.detail & detail::ANY_PORT != 0,
        });
        let e = Explanation {
            reason,
            mark: (reason == Reason::Marked).then_some(ev.mark),
            vip,
            no_port: if ev.detail & detail::FRAGMENT != 0 {
                Some(Reason::Fragment)
            } else if ev.detail & detail::L4_TRUNCATED != 0 {
                Some(Reason::L4Truncated)
            } else {
                None
            },
            ipv6: ev.detail & detail::IPV6 != 0,
            pulled: ev.detail & detail::PULLED != 0,
        };
        let mut summary = summary;
        summary.len = ev.len as usize;
        let mut verdict = namer.words(&e, summary);
        if let Some(note) = note {
            verdict.note = Some(note.into());
        }
        Some(TraceRecord {
            time_ns: ev.time_ns.saturating_add(self.wall_offset),
            suppressed: ev.suppressed,
            len: ev.len,
            verdict,
        })
    }
}

//! A finished job, above all a finished look at one interface: what it did, logged
//! (attached, repaired, applied, adopted), its health, retries after failures, repairs
//! counted and fights with something that keeps undoing them noticed.

use std::time::Instant;

use super::{Daemon, Done, FIGHT_REPAIRS, FIGHT_WINDOW, RETRY_MAX, RETRY_MIN};
use crate::daemon::{
    DaemonError, log,
    tend::{self, Action, Outcome, Reason},
};

impl Daemon {
    pub(super) fn finished(&mut self, done: Done) -> Result<(), DaemonError> {
        let big = match &done {
            Done::Look(o) => !o.actions.is_empty(),
            Done::Config(..) | Done::Detached(..) => true,
        };
        match done {
            Done::Look(o) => self.looked(o)?,
            Done::Config(r, forced) => self.config_loaded(r, forced),
            Done::Detached(name, r) => match r {
                Ok(_) => log::info(format!("{name}: no longer in the config: detached")),
                Err(e) => log::error(format!(
                    "{name}: no longer in the config; detaching it failed: {e}"
                )),
            },
        }
        self.update_status();
        if big {
            super::release_memory();
        }
        Ok(())
    }

    fn looked(&mut self, mut o: Outcome) -> Result<(), DaemonError> {
        let ready = self.ready;
        let error = o.error.take();
        let Some(idx) = self.ifaces.iter().position(|i| i.name == o.ifname) else {
            return Ok(()); // removed from the config meanwhile
        };
        let now = Instant::now();
        let mut repairs: Vec<Reason> = Vec::new();
        {
            let i = &mut self.ifaces[idx];
            i.busy = None;
            i.watched = o.watched.clone();
            let ms = o.took.as_millis();
            for a in &o.actions {
                match a {
                    Action::Attached(r) => {
                        if i.was_attached {
                            repairs.push(Reason::Detached);
                            log::notice(format!(
                                "{}: repaired (detached) in {ms} ms: attached again ({}, prog id {}, {})",
                                r.interface,
                                r.mode,
                                r.program_id.map_or("?".into(), |p| p.to_string()),
                                r.order
                            ));
                        } else {
                            log::info(format!(
                                "{}: attached ({}, prog id {}, {}): {} VIP(s), {} peer(s), config sha256:{}",
                                r.interface,
                                r.mode,
                                r.program_id.map_or("?".into(), |p| p.to_string()),
                                r.order,
                                r.vips,
                                r.peers,
                                &r.config_digest[..12]
                            ));
                        }
                        i.apply_pending = false;
                    }
                    Action::Repaired(r) => {
                        let reasons = Reason::of_repair(r);
                        let words: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                        let mut what = Vec::new();
                        what.extend(r.recovered.iter().cloned());
                        if let Some(w) = &r.rehooked {
                            what.push(format!("re-hooked: {w}"));
                        }
                        if let crate::Placement::Moved(w) = &r.placement {
                            what.push(format!("put back {}: it was {w}", r.order));
                        }
                        log::notice(format!(
                            "{}: repaired ({}) in {ms} ms: {}",
                            r.interface,
                            words.join(", "),
                            what.join("; ")
                        ));
                        repairs.extend(reasons);
                    }
                    Action::Reloaded(r) => {
                        if i.apply_pending || !i.looked_once {
                            log::info(format!(
                                "{}: applied config sha256:{}: {} VIP(s), {} peer(s) [+{} -{} ={}]",
                                r.interface,
                                &r.config_digest[..12],
                                r.vips,
                                r.peers,
                                r.added,
                                r.removed,
                                r.kept
                            ));
                        } else {
                            repairs.push(Reason::Config);
                            log::notice(format!(
                                "{}: repaired (config) in {ms} ms: it marked with another config; applied the running one, sha256:{} [+{} -{} ={}]",
                                r.interface,
                                &r.config_digest[..12],
                                r.added,
                                r.removed,
                                r.kept
                            ));
                        }
                        i.apply_pending = false;
                    }
                }
            }
            if !i.looked_once && o.actions.is_empty() && o.attached && error.is_none() {
                log::info(format!("{}: adopted the existing attachment", i.name));
                i.apply_pending = false;
            }
            let mut said = String::new();
            if let Some(e) = &error {
                said = format!("{}: {e}", i.name);
            } else if !o.present {
                said = format!(
                    "{}: no such interface here (deleted, renamed or moved away): waiting for it",
                    i.name
                );
            } else if let Some(h) = &o.health
                && !h.ok
            {
                let p: Vec<&str> = h.problems.iter().map(|p| p.message.as_str()).collect();
                said = format!("{}: not healthy: {}", i.name, p.join("; "));
            }
            let healthy = o.health.as_ref().is_some_and(|h| h.ok);
            if said != i.last_said {
                if said.is_empty() {
                    if i.looked_once && !i.healthy {
                        log::info(format!("{}: healthy again", i.name));
                    }
                } else if error.as_ref().is_some_and(|e| !tend::is_transient(e)) {
                    log::error(&said);
                } else {
                    log::warn(&said);
                }
                i.last_said = said;
            }
            i.healthy = healthy;
            if let Some(e) = error {
                if !ready && !tend::is_transient(&e) {
                    return Err(DaemonError::Attach {
                        iface: i.name.clone(),
                        source: Box::new(e),
                    });
                }
                i.failures = i.failures.saturating_add(1);
                let wait = RETRY_MIN
                    .saturating_mul(1 << i.failures.min(8).saturating_sub(1))
                    .min(RETRY_MAX);
                i.retry_at = Some(now + wait);
                i.mark();
            } else {
                i.failures = 0;
                i.retry_at = None;
            }
            if !repairs.is_empty() {
                i.recent_repairs.push_back(now);
                while i
                    .recent_repairs
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > FIGHT_WINDOW)
                {
                    i.recent_repairs.pop_front();
                }
                if i.recent_repairs.len() >= FIGHT_REPAIRS {
                    log::warn(format!(
                        "{}: repaired {} times in {} s: something keeps undoing it; waiting {} s between repairs",
                        i.name,
                        i.recent_repairs.len(),
                        FIGHT_WINDOW.as_secs(),
                        RETRY_MAX.as_secs()
                    ));
                    i.retry_at = Some(now + RETRY_MAX);
                    i.recent_repairs.clear();
                }
                // Our own change makes notifications: look once more to confirm.
                i.mark();
            }
            i.looked_once = true;
            i.was_attached |= o.attached;
        }
        {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let name = self.ifaces[idx].name.clone();
            s.healthy.insert(name.clone(), self.ifaces[idx].healthy);
            let counts = s.repairs.entry(name).or_default();
            for r in repairs {
                *counts.entry(r).or_default() += 1;
            }
        }
        if !self.ready && self.ifaces.iter().all(|i| i.looked_once) {
            self.ready = true;
            let status = self.status_text();
            log::info(format!("ready: {status}"));
            self.notifier.ready(&status);
            self.last_status = status;
        }
        Ok(())
    }
}

//! The event loop: what happens when.
//!
//! * rtnetlink link/tc notifications mark the interfaces they concern; after a 10 ms
//!   debounce each marked interface gets a look ([`tend`]) on a blocking thread;
//! * every 250 ms the TCX hook of each interface is queried (one syscall: a TCX link that
//!   is detached, or a program put in front, sends no notification) and every 30 s every
//!   interface gets a look anyway;
//! * SIGHUP, or a change of the config file (inotify, 200 ms debounce), loads the config:
//!   an invalid one is logged with file:line:column and the running one stays;
//! * `WATCHDOG=1` goes out at half `$WATCHDOG_USEC` while the loop turns and no look is
//!   stuck; SIGTERM/SIGINT end it, leaving the datapath attached unless
//!   `--detach-on-exit`.

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinSet,
    time::{Instant as TokioInstant, MissedTickBehavior},
};

use super::{
    DaemonError, Options,
    inotify::ConfigWatch,
    log,
    notify::Notifier,
    serve::{Reloads, Server, Shared},
    tend::{self, Action, Job, Outcome, Reason, Watched},
    watch::{Event, Watch},
};
use crate::{
    Attachment,
    config::{self, Config, ConfigError},
    ifname::IfName,
    sys, text,
};

/// Coalesces a burst of notifications (a qdisc and its filters go together).
const EVENT_DEBOUNCE: Duration = Duration::from_millis(10);
/// Editors write in several steps.
const CONFIG_DEBOUNCE: Duration = Duration::from_millis(200);
/// The TCX hook query.
const POLL: Duration = Duration::from_millis(250);
/// A look at everything, whatever was heard.
const SAFETY_NET: Duration = Duration::from_secs(30);
/// More repairs than this within [`FIGHT_WINDOW`] means something keeps undoing them.
const FIGHT_REPAIRS: usize = 30;
const FIGHT_WINDOW: Duration = Duration::from_secs(10);
/// Retries after a failed look: 100 ms doubling up to 10 s.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// One managed interface.
struct Iface {
    name: IfName,
    /// A look is running (since).
    busy: Option<Instant>,
    /// Needs a look (since when).
    dirty: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    /// The running config has not been applied to it yet.
    apply_pending: bool,
    watched: Option<Watched>,
    /// What was last logged about its health or errors (to log changes only).
    last_said: String,
    healthy: bool,
    looked_once: bool,
    /// Something was attached to it (by the daemon, or adopted) at some point.
    was_attached: bool,
    recent_repairs: VecDeque<Instant>,
}

impl Iface {
    fn new(name: IfName) -> Self {
        Self {
            name,
            busy: None,
            dirty: Some(Instant::now()),
            retry_at: None,
            failures: 0,
            apply_pending: true,
            watched: None,
            last_said: String::new(),
            healthy: false,
            looked_once: false,
            was_attached: false,
            recent_repairs: VecDeque::new(),
        }
    }

    fn mark(&mut self) {
        self.dirty.get_or_insert_with(Instant::now);
    }
}

/// What a blocking task finished with.
enum Done {
    Look(Outcome),
    Config(Result<(Config, config::Daemon), ConfigError>, bool),
    Detached(IfName, crate::Result<crate::DetachReport>),
}

/// The config file's identity, to notice a change the watch missed.
fn file_stamp(path: &std::path::Path) -> Option<(u64, u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

pub(super) struct Daemon {
    opts: Options,
    config: Arc<Config>,
    ifaces: Vec<Iface>,
    shared: Arc<Mutex<Shared>>,
    notifier: Notifier,
    jobs: JoinSet<Done>,
    ready: bool,
    /// When to load the config (debounced); `true`: even if the file did not change.
    config_due: Option<(Instant, bool)>,
    config_loading: bool,
    config_stamp: Option<(u64, u64, i64, i64, u64)>,
    watch_failed: bool,
    last_status: String,
}

fn escaped(p: &std::path::Path) -> String {
    text::escape_path(p)
}

impl Daemon {
    /// Loads the config, starts watching, runs until a stop signal.
    pub(super) async fn start(opts: Options) -> Result<(), DaemonError> {
        let (config, section) = {
            let path = opts.config.clone();
            tokio::task::spawn_blocking(move || config::load_full(&path))
                .await
                .map_err(|e| DaemonError::Io {
                    what: "loading the config".into(),
                    source: std::io::Error::other(e.to_string()),
                })??
        };
        let names = if opts.interfaces.is_empty() {
            section.interfaces.clone()
        } else {
            if !section.interfaces.is_empty() && section.interfaces != opts.interfaces {
                log::notice(format!(
                    "interfaces from the command line ({}); the config's [daemon] interfaces are ignored",
                    join(&opts.interfaces)
                ));
            }
            opts.interfaces.clone()
        };
        if names.is_empty() {
            return Err(DaemonError::NoInterfaces);
        }
        super::release_memory();
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| DaemonError::Io { what, source }
        };
        // Signals first: a SIGTERM during the start must not kill us half-way.
        let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
        let mut watch =
            Watch::open().map_err(io_err("subscribing to rtnetlink link and tc notifications"))?;
        let mut cfg_watch = match ConfigWatch::open(&opts.config) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn(format!(
                    "not watching {} for changes ({e}); SIGHUP still reloads it",
                    escaped(&opts.config)
                ));
                None
            }
        };
        let shared = Arc::new(Mutex::new(Shared {
            pin_dir: opts.pin_dir.clone(),
            digest: config.digest,
            interfaces: names.clone(),
            repairs: BTreeMap::new(),
            reloads: Reloads {
                last_success: sys::now_unix(),
                last_ok: true,
                ..Reloads::default()
            },
            healthy: BTreeMap::new(),
        }));
        if let Some(addr) = opts.metrics {
            match super::http::bind(addr).await {
                Ok(l) => {
                    let bound = l.local_addr().unwrap_or(addr);
                    super::http::spawn_server(l, Arc::new(Server::new(shared.clone())))
                        .map_err(io_err("starting the /metrics server"))?;
                    log::info(format!(
                        "metrics: http://{bound}/metrics, health: http://{bound}/healthz"
                    ));
                }
                Err(source) if opts.metrics_explicit => {
                    return Err(DaemonError::Io {
                        what: format!("listening on {addr} for /metrics"),
                        source,
                    });
                }
                Err(e) => log::warn(format!(
                    "no /metrics or /healthz: listening on {addr} failed ({e}); pass --metrics ADDR"
                )),
            }
        }
        log::info(format!(
            "config {}: sha256:{}, {} VIP(s), {} peer(s); managing {}",
            escaped(&opts.config),
            &config.digest_hex()[..12],
            config.vips.len(),
            config.peers.len(),
            join(&names)
        ));
        let mut d = Daemon {
            config_stamp: file_stamp(&opts.config),
            opts,
            config: Arc::new(config),
            ifaces: names.into_iter().map(Iface::new).collect(),
            shared,
            notifier: Notifier::from_env(),
            jobs: JoinSet::new(),
            ready: false,
            config_due: None,
            config_loading: false,
            watch_failed: false,
            last_status: String::new(),
        };
        d.run(&mut term, &mut int, &mut hup, &mut watch, &mut cfg_watch)
            .await?;
        d.stop().await;
        Ok(())
    }

    async fn run(
        &mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
        hup: &mut tokio::signal::unix::Signal,
        watch: &mut Watch,
        cfg_watch: &mut Option<ConfigWatch>,
    ) -> Result<(), DaemonError> {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut net = tokio::time::interval_at(TokioInstant::now() + SAFETY_NET, SAFETY_NET);
        net.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let wd_every = self.notifier.watchdog_interval();
        let mut wd = tokio::time::interval(wd_every.unwrap_or(Duration::from_secs(3600)));
        wd.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            let due = self.next_due();
            tokio::select! {
                biased;
                _ = term.recv() => {
                    log::info("SIGTERM: stopping");
                    return Ok(());
                }
                _ = int.recv() => {
                    log::info("SIGINT: stopping");
                    return Ok(());
                }
                _ = hup.recv() => {
                    log::info(format!("SIGHUP: reloading {}", escaped(&self.opts.config)));
                    self.config_due = Some((Instant::now(), true));
                }
                Some(done) = self.jobs.join_next() => {
                    match done {
                        Ok(d) => self.finished(d)?,
                        Err(e) => log::error(format!("a worker failed: {e}")),
                    }
                }
                events = watch.next(), if !self.watch_failed => match events {
                    Ok(events) => self.heard(&events),
                    Err(e) => {
                        // Repairs still come from the poll and the safety net; the
                        // watchdog stops, so systemd restarts a daemon that went deaf.
                        log::error(format!("rtnetlink notifications failed: {e}"));
                        self.watch_failed = true;
                    }
                },
                changed = async { cfg_watch.as_mut().expect("guarded").changed().await }, if cfg_watch.is_some() => {
                    match changed {
                        Ok(()) => {
                            let at = Instant::now() + CONFIG_DEBOUNCE;
                            let forced = self.config_due.is_some_and(|(_, f)| f);
                            self.config_due = Some((at, forced));
                        }
                        Err(e) => {
                            log::warn(format!("watching the config failed ({e}); SIGHUP still reloads it"));
                            *cfg_watch = None;
                        }
                    }
                }
                _ = poll.tick() => self.poll(),
                _ = net.tick() => {
                    for i in &mut self.ifaces {
                        i.mark();
                    }
                    if cfg_watch.is_none() {
                        *cfg_watch = ConfigWatch::open(&self.opts.config).ok();
                    }
                    if file_stamp(&self.opts.config) != self.config_stamp && self.config_due.is_none() {
                        self.config_due = Some((Instant::now(), false));
                    }
                }
                _ = wd.tick(), if wd_every.is_some() => {
                    if self.loop_healthy() {
                        self.notifier.watchdog();
                    }
                }
                _ = tokio::time::sleep_until(due) => {}
            }
        }
    }

    /// The earliest time something is due.
    fn next_due(&self) -> TokioInstant {
        let now = Instant::now();
        let mut due = now + Duration::from_secs(3600);
        for i in &self.ifaces {
            if let Some(d) = i.dirty
                && i.busy.is_none()
            {
                let at = (d + EVENT_DEBOUNCE).max(i.retry_at.unwrap_or(now));
                due = due.min(at);
            }
        }
        if let Some((at, _)) = self.config_due
            && !self.config_loading
        {
            due = due.min(at);
        }
        TokioInstant::from_std(due)
    }

    /// Starts what is due: looks at marked interfaces, a config load.
    fn dispatch(&mut self) {
        let now = Instant::now();
        if let Some((at, forced)) = self.config_due
            && at <= now
            && !self.config_loading
        {
            self.config_due = None;
            self.config_loading = true;
            self.config_stamp = file_stamp(&self.opts.config);
            if forced {
                self.notifier.reloading();
            }
            let path = self.opts.config.clone();
            self.jobs
                .spawn_blocking(move || Done::Config(config::load_full(&path), forced));
        }
        for i in &mut self.ifaces {
            let Some(since) = i.dirty else { continue };
            if i.busy.is_some()
                || since + EVENT_DEBOUNCE > now
                || i.retry_at.is_some_and(|t| t > now)
            {
                continue;
            }
            i.busy = Some(now);
            i.dirty = None;
            let job = Job {
                pin_dir: self.opts.pin_dir.clone(),
                ifname: i.name.clone(),
                config: self.config.clone(),
                mode: self.opts.mode,
                order: self.opts.order,
                lock_wait: self.opts.lock_wait,
            };
            let dirty_since = since;
            self.jobs.spawn_blocking(move || {
                let mut o = job.run();
                // The time to repair counts from the first notification.
                o.took = dirty_since.elapsed();
                Done::Look(o)
            });
        }
    }

    /// rtnetlink notifications: mark the interfaces they concern.
    fn heard(&mut self, events: &[Event]) {
        for ev in events {
            for i in &mut self.ifaces {
                let ours = i.watched.as_ref().map(|w| w.ifindex);
                let concerns = match ev {
                    Event::Overrun => true,
                    Event::Tc { ifindex } => Some(*ifindex) == ours,
                    Event::Link { ifindex, name, .. } => {
                        Some(*ifindex) == ours || name.as_ref() == Some(&i.name)
                    }
                };
                if concerns {
                    i.mark();
                }
            }
        }
    }

    /// The TCX hook and the interface index, compared with the last look.
    fn poll(&mut self) {
        for i in &mut self.ifaces {
            if i.busy.is_some() || i.dirty.is_some() {
                continue;
            }
            if Watched::now(&i.name) != i.watched {
                i.mark();
            }
        }
    }

    /// No look stuck for longer than the watchdog allows, notifications still heard.
    fn loop_healthy(&self) -> bool {
        let limit = self
            .notifier
            .watchdog_timeout()
            .unwrap_or(Duration::from_secs(60));
        !self.watch_failed
            && self
                .ifaces
                .iter()
                .all(|i| i.busy.is_none_or(|t| t.elapsed() < limit))
    }

    fn finished(&mut self, done: Done) -> Result<(), DaemonError> {
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

    fn config_loaded(&mut self, r: Result<(Config, config::Daemon), ConfigError>, forced: bool) {
        self.config_loading = false;
        let now = sys::now_unix();
        let (config, section) = match r {
            Ok(x) => x,
            Err(e) => {
                self.reload_failed(&e.to_string(), forced);
                return;
            }
        };
        let names = if self.opts.interfaces.is_empty() {
            section.interfaces
        } else {
            self.opts.interfaces.clone()
        };
        if names.is_empty() {
            let why = format!(
                "{}: [daemon] interfaces is empty and the command line names none",
                escaped(&self.opts.config)
            );
            self.reload_failed(&why, forced);
            return;
        }
        let changed = config.digest != self.config.digest;
        if changed {
            log::info(format!(
                "config reloaded: sha256:{} -> sha256:{}, {} VIP(s), {} peer(s)",
                &self.config.digest_hex()[..12],
                &config.digest_hex()[..12],
                config.vips.len(),
                config.peers.len()
            ));
            self.config = Arc::new(config);
            for i in &mut self.ifaces {
                i.apply_pending = true;
                i.mark();
            }
        } else if forced {
            log::info("config unchanged");
        }
        // Interfaces added to or removed from [daemon] interfaces.
        let old: Vec<IfName> = self.ifaces.iter().map(|i| i.name.clone()).collect();
        for n in names.iter().filter(|n| !old.contains(n)) {
            log::info(format!("{n}: added to the config: attaching"));
            self.ifaces.push(Iface::new(n.clone()));
        }
        let removed: Vec<IfName> = old.into_iter().filter(|n| !names.contains(n)).collect();
        self.ifaces.retain(|i| names.contains(&i.name));
        for n in removed {
            let pin_dir = self.opts.pin_dir.clone();
            let wait = self.opts.lock_wait;
            self.jobs.spawn_blocking(move || {
                let r =
                    Attachment::here(&pin_dir, &n).and_then(|a| a.with_lock_wait(wait).detach());
                Done::Detached(n, r)
            });
        }
        {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            s.digest = self.config.digest;
            let counts = changed || forced || s.interfaces != names;
            s.interfaces = names;
            let Shared {
                healthy,
                interfaces,
                ..
            } = &mut *s;
            healthy.retain(|k, _| interfaces.contains(k));
            // A touch that changed nothing is not a reload.
            if counts {
                s.reloads.succeeded += 1;
                s.reloads.last_success = now;
                s.reloads.last_ok = true;
            }
        }
        if forced {
            self.notifier.ready(&self.status_text());
        }
    }

    /// A config that can't be used: every line logged, the running one stays.
    fn reload_failed(&self, why: &str, forced: bool) {
        for line in why.lines() {
            log::error(line);
        }
        log::error(format!(
            "config reload failed: still running sha256:{}",
            &self.config.digest_hex()[..12]
        ));
        {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            s.reloads.failed += 1;
            s.reloads.last_failure = sys::now_unix();
            s.reloads.last_ok = false;
        }
        if forced {
            self.notifier.ready(&self.status_text());
        }
    }

    fn status_text(&self) -> String {
        let parts: Vec<String> = self
            .ifaces
            .iter()
            .map(|i| {
                if i.healthy {
                    format!("{} ok", i.name)
                } else if i.watched.is_none() {
                    format!("{} waiting for the interface", i.name)
                } else {
                    format!("{} NOT healthy", i.name)
                }
            })
            .collect();
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let repairs: u64 = s.repairs.values().flat_map(|m| m.values()).sum();
        format!(
            "{}; config sha256:{}; {repairs} repair(s)",
            parts.join(", "),
            &self.config.digest_hex()[..12]
        )
    }

    fn update_status(&mut self) {
        if !self.ready {
            return;
        }
        let s = self.status_text();
        if s != self.last_status {
            self.notifier.status(&s);
            self.last_status = s;
        }
    }

    /// After SIGTERM/SIGINT: let running looks finish, then leave the datapath running
    /// (or detach it).
    async fn stop(&mut self) {
        self.notifier.stopping();
        let drain = async { while self.jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            log::warn("stopping with looks still running");
        }
        if !self.opts.detach_on_exit {
            log::info(format!(
                "stopped; the datapath stays attached on {} (pins keep marking)",
                join(
                    &self
                        .ifaces
                        .iter()
                        .map(|i| i.name.clone())
                        .collect::<Vec<_>>()
                )
            ));
            return;
        }
        for i in &self.ifaces {
            let pin_dir: PathBuf = self.opts.pin_dir.clone();
            let name = i.name.clone();
            let wait = self.opts.lock_wait;
            let r = tokio::task::spawn_blocking(move || {
                let att = Attachment::here(&pin_dir, &name)?.with_lock_wait(wait);
                if att.exists()? {
                    att.detach().map(Some)
                } else {
                    Ok(None)
                }
            })
            .await;
            match r {
                Ok(Ok(Some(_))) => log::info(format!("{}: detached (--detach-on-exit)", i.name)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => log::error(format!("{}: detach failed: {e}", i.name)),
                Err(e) => log::error(format!("{}: detach failed: {e}", i.name)),
            }
        }
        log::info("stopped");
    }
}

fn join(names: &[IfName]) -> String {
    names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

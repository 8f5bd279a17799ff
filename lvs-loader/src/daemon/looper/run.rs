//! Starting the daemon, the loop itself (signals, notifications, timers, finished
//! jobs: one `select!`), and stopping.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinSet,
    time::{Instant as TokioInstant, MissedTickBehavior},
};

use super::{CONFIG_DEBOUNCE, Daemon, Iface, POLL, SAFETY_NET, escaped, file_stamp, join};
use crate::{
    Attachment, config,
    daemon::{
        DaemonError, Options,
        inotify::ConfigWatch,
        log,
        notify::Notifier,
        serve::{Reloads, Server, Shared},
        ticker::Ticker,
        watch::Watch,
    },
    sys,
};

impl Daemon {
    /// Loads the config, starts watching, runs until a stop signal.
    pub(crate) async fn start(opts: Options) -> Result<(), DaemonError> {
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
        let mut poll = Ticker::new(POLL).map_err(|source| DaemonError::Io {
            what: "creating the poll timer (timerfd)".into(),
            source,
        })?;
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
                ticked = poll.tick() => {
                    // A read error on a timerfd we own: stop loudly (systemd restarts us)
                    // rather than spin or go deaf.
                    ticked.map_err(|source| DaemonError::Io {
                        what: "reading the poll timer (timerfd)".into(),
                        source,
                    })?;
                    self.poll();
                }
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
                // Nothing due (the usual idle state): no timer at all, so the loop sleeps
                // until the next tick or event.
                _ = tokio::time::sleep_until(due.unwrap_or_else(TokioInstant::now)), if due.is_some() => {}
            }
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

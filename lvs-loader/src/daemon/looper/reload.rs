//! A loaded config: applied to every interface if it changed, interfaces added to or
//! removed from `[daemon] interfaces`, or, if it can't be used, logged while the running
//! one stays.

use std::sync::Arc;

use super::{Daemon, Done, Iface, escaped};
use crate::{
    Attachment,
    config::{self, Config, ConfigError},
    daemon::{log, serve::Shared},
    ifname::IfName,
    sys,
};

impl Daemon {
    pub(super) fn config_loaded(
        &mut self,
        r: Result<(Config, config::Daemon), ConfigError>,
        forced: bool,
    ) {
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
}

//! What is due and when: marked interfaces (debounced, retries held back), a config
//! load; rtnetlink notifications and the hook poll mark interfaces.

use std::time::Instant;

use tokio::time::Instant as TokioInstant;

use super::{Daemon, Done, EVENT_DEBOUNCE, file_stamp};
use crate::{
    config,
    daemon::{
        tend::{Job, Watched},
        watch::Event,
    },
};

impl Daemon {
    /// The earliest time something is due.
    pub(super) fn next_due(&self) -> Option<TokioInstant> {
        let now = Instant::now();
        let mut due: Option<Instant> = None;
        let mut sooner = |at: Instant| due = Some(due.map_or(at, |d| d.min(at)));
        for i in &self.ifaces {
            if let Some(d) = i.dirty
                && i.busy.is_none()
            {
                sooner((d + EVENT_DEBOUNCE).max(i.retry_at.unwrap_or(now)));
            }
        }
        if let Some((at, _)) = self.config_due
            && !self.config_loading
        {
            sooner(at);
        }
        due.map(TokioInstant::from_std)
    }

    /// Starts what is due: looks at marked interfaces, a config load.
    pub(super) fn dispatch(&mut self) {
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
    pub(super) fn heard(&mut self, events: &[Event]) {
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

    /// The TCX hook and the interface index, compared with the last look. While the
    /// rtnetlink watch works, it reports every change of the index (as link
    /// notifications, see [`Self::heard`]) and the poll only queries the TCX hook of the
    /// known index; without it, the name is looked up again too.
    pub(super) fn poll(&mut self) {
        let netlink = !self.watch_failed;
        for i in &mut self.ifaces {
            if i.busy.is_some() || i.dirty.is_some() {
                continue;
            }
            let now = match &i.watched {
                Some(w) if netlink => w.requery(&i.name),
                _ => Watched::now(&i.name),
            };
            if now != i.watched {
                i.mark();
            }
        }
    }
}

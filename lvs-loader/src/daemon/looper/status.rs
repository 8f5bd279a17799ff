//! The status line (sd_notify `STATUS=`, `ready:`) and the loop's own health, which
//! the watchdog ping depends on.

use std::time::Duration;

use super::Daemon;

impl Daemon {
    /// No look stuck for longer than the watchdog allows, notifications still heard.
    pub(super) fn loop_healthy(&self) -> bool {
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

    pub(super) fn status_text(&self) -> String {
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

    pub(super) fn update_status(&mut self) {
        if !self.ready {
            return;
        }
        let s = self.status_text();
        if s != self.last_status {
            self.notifier.status(&s);
            self.last_status = s;
        }
    }
}

//! What the daemon's HTTP server answers: `/metrics` (the datapath's counters of every
//! managed interface, with the same renderer as `stats --prometheus`, then the daemon's
//! own: repairs, reloads, health) and `/healthz` (200 only when every interface is hooked,
//! in its place, with the running config; else 503 and one line per problem).

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use super::{
    http,
    metrics::{self, Exposition},
    tend::Reason,
};
use crate::{
    Attachment,
    health::{self, Expect},
    ifname::IfName,
};

/// Reload counters.
#[derive(Clone, Debug, Default)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
    /// Unix time of the last good and the last failed reload (0: never).
    pub last_success: u64,
    pub last_failure: u64,
    /// Whether the last reload (or the start) was good.
    pub last_ok: bool,
}

/// What the event loop shares with the server.
#[derive(Clone, Debug)]
pub struct Shared {
    pub pin_dir: PathBuf,
    /// The running config's digest.
    pub digest: [u8; 32],
    pub interfaces: Vec<IfName>,
    pub repairs: BTreeMap<IfName, BTreeMap<Reason, u64>>,
    pub reloads: Reloads,
    /// The last look's verdict per interface.
    pub healthy: BTreeMap<IfName, bool>,
}

/// The `/metrics` and `/healthz` handler.
pub struct Server {
    pub shared: Arc<Mutex<Shared>>,
    /// One `/metrics` rendering at a time (each reads every VIP's counters).
    rendering: Mutex<()>,
}

impl Server {
    pub fn new(shared: Arc<Mutex<Shared>>) -> Self {
        Self {
            shared,
            rendering: Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Shared {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn metrics(&self, head: bool, out: &mut dyn Write) -> std::io::Result<()> {
        http::stream_head(out, metrics::CONTENT_TYPE)?;
        if head {
            return Ok(());
        }
        let _one = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
        let s = self.snapshot();
        let stats: Vec<_> = s
            .interfaces
            .iter()
            .filter_map(|i| Attachment::open(&s.pin_dir, i).and_then(|a| a.stats()).ok())
            .collect();
        let mut e = Exposition::new();
        let mut err = None;
        metrics::render_stats(&mut e, &stats, &mut |e| {
            if err.is_none()
                && let Err(x) = out.write_all(e.take().as_bytes())
            {
                err = Some(x);
            }
            e.take();
        });
        drop(stats);
        if let Some(x) = err {
            return Err(x);
        }
        metrics::render_build_info(&mut e);
        daemon_metrics(&mut e, &s);
        out.write_all(e.finish().as_bytes())?;
        out.flush()?;
        super::release_memory();
        Ok(())
    }

    fn healthz(&self, head: bool, out: &mut dyn Write) -> std::io::Result<()> {
        let s = self.snapshot();
        let mut body = String::new();
        let mut ok = !s.interfaces.is_empty();
        for i in &s.interfaces {
            match health::of_interface(&s.pin_dir, i, &Expect::Digest(s.digest)) {
                Ok(h) if h.ok => body.push_str(&format!("{}: ok: {}\n", h.interface, h.summary)),
                Ok(h) => {
                    ok = false;
                    for p in &h.problems {
                        body.push_str(&format!("{}: {}\n", h.interface, p.message));
                    }
                }
                Err(e) => {
                    ok = false;
                    body.push_str(&format!("{i}: {e}\n"));
                }
            }
        }
        let (status, reason) = if ok {
            (200, "OK")
        } else {
            (503, "Service Unavailable")
        };
        http::text_response(out, status, reason, &body, head)
    }
}

impl http::Handler for Server {
    fn respond(&self, path: &str, head: bool, out: &mut dyn Write) -> std::io::Result<()> {
        match path {
            "/metrics" => self.metrics(head, out),
            "/healthz" => self.healthz(head, out),
            "/" => http::text_response(
                out,
                200,
                "OK",
                "lvs-loader daemon: /metrics (Prometheus), /healthz\n",
                head,
            ),
            _ => http::text_response(out, 404, "Not Found", "404 Not Found\n", head),
        }
    }
}

/// The daemon's own families.
pub fn daemon_metrics(e: &mut Exposition, s: &Shared) {
    e.family(
        "lvs_ebpf_interface_healthy",
        "gauge",
        "1 when the interface's program is hooked, in its place, with the running config (as of the daemon's last look).",
    );
    for i in &s.interfaces {
        let ok = s.healthy.get(i).copied().unwrap_or(false);
        e.sample(
            "lvs_ebpf_interface_healthy",
            &[("interface", &i.to_string())],
            u8::from(ok),
        );
    }
    e.family(
        "lvs_ebpf_repairs_total",
        "counter",
        "Repairs made by the daemon, by what had happened (detached, recreated, unhooked, order, config, interrupted).",
    );
    for i in &s.interfaces {
        let counts = s.repairs.get(i);
        for r in Reason::ALL {
            let n = counts.and_then(|c| c.get(&r)).copied().unwrap_or(0);
            e.sample(
                "lvs_ebpf_repairs_total",
                &[("interface", &i.to_string()), ("reason", r.as_str())],
                n,
            );
        }
    }
    let r = &s.reloads;
    e.family(
        "lvs_ebpf_config_reloads_total",
        "counter",
        "Config reloads (SIGHUP, file change) by result; a failed one leaves the running config in place.",
    );
    e.sample(
        "lvs_ebpf_config_reloads_total",
        &[("result", "success")],
        r.succeeded,
    );
    e.sample(
        "lvs_ebpf_config_reloads_total",
        &[("result", "failure")],
        r.failed,
    );
    e.family(
        "lvs_ebpf_config_reload_success",
        "gauge",
        "1 when the last config (re)load was good.",
    );
    e.sample("lvs_ebpf_config_reload_success", &[], u8::from(r.last_ok));
    e.family(
        "lvs_ebpf_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Unix time of the last good config load.",
    );
    e.sample(
        "lvs_ebpf_config_last_reload_success_timestamp_seconds",
        &[],
        r.last_success,
    );
    e.family(
        "lvs_ebpf_config_last_reload_failure_timestamp_seconds",
        "gauge",
        "Unix time of the last failed config reload (0: none).",
    );
    e.sample(
        "lvs_ebpf_config_last_reload_failure_timestamp_seconds",
        &[],
        r.last_failure,
    );
}

//! `lvs-loader daemon`: attaches (or adopts) the marker on a set of interfaces and keeps
//! it there.
//!
//! * [`looper`]: the event loop (tokio, current thread): rtnetlink notifications
//!   ([`watch`]), the config file ([`inotify`]), signals, timers; looks ([`tend`]) run on
//!   blocking threads, one at a time per interface.
//! * [`tend`]: one look after one interface: attach, adopt, repair, apply the config.
//! * [`serve`], [`http`], [`metrics`]: `/metrics` and `/healthz` (on a thread and runtime
//!   of their own); the exposition format is shared with `stats --prometheus`.
//! * [`notify`]: sd_notify (`Type=notify`, watchdog); [`log`]: stderr lines.

pub mod http;
pub mod inotify;
pub mod log;
mod looper;
pub mod metrics;
pub mod notify;
pub mod serve;
pub mod tend;
mod ticker;
pub mod watch;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{ModeChoice, config::ConfigError, hook::Order, ifname::IfName};

/// The loopback address `/metrics` and `/healthz` listen on unless told otherwise.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9597";

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub pin_dir: PathBuf,
    pub config: PathBuf,
    /// From the command line; empty: the config's `[daemon] interfaces`.
    pub interfaces: Vec<IfName>,
    /// Where `/metrics` and `/healthz` listen; `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// Whether `metrics` was asked for (a bind failure is then fatal, not a warning).
    pub metrics_explicit: bool,
    pub mode: ModeChoice,
    /// `--position`/`--priority`; `None`: first for new attachments, as recorded for
    /// adopted ones.
    pub order: Option<Order>,
    /// Detach every interface on SIGTERM/SIGINT (default: leave the datapath running).
    pub detach_on_exit: bool,
    /// How long one look waits for another command on the same interface.
    pub lock_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "no interface to manage: name them on the command line (`lvs-loader daemon --config FILE eth0 eth1`) or in the config's [daemon] table (interfaces = [\"eth0\"])"
    )]
    NoInterfaces,
    #[error("{iface}: {source}")]
    Attach {
        iface: IfName,
        #[source]
        source: Box<crate::Error>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(16)
        .thread_name("lvs-loader-worker")
        .build()
        .map_err(|source| DaemonError::Io {
            what: "starting the event loop".into(),
            source,
        })?;
    rt.block_on(looper::Daemon::start(opts))
}

/// Gives freed memory back to the system: glibc keeps the small blocks of a large config
/// parse, attach or `/metrics` rendering in its arenas otherwise, and the daemon's
/// resident size would stay at its peak.
pub(crate) fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

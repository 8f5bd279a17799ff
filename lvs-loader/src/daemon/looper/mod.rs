//! The event loop: what happens when.
//!
//! * rtnetlink link/tc notifications mark the interfaces they concern; after a 10 ms
//!   debounce each marked interface gets a look ([`tend`]) on a blocking thread;
//! * every 250 ms (a timerfd: one wake-up per tick, see [`super::ticker`]) the TCX hook of
//!   each interface is queried (one syscall: a TCX link that is detached, or a program put
//!   in front, sends no notification) and every 30 s every interface gets a look anyway;
//! * SIGHUP, or a change of the config file (inotify, 200 ms debounce), loads the config:
//!   an invalid one is logged with file:line:column and the running one stays;
//! * `WATCHDOG=1` goes out at half `$WATCHDOG_USEC` while the loop turns and no look is
//!   stuck; SIGTERM/SIGINT end it, leaving the datapath attached unless
//!   `--detach-on-exit`.
//!
//! The loop itself and its start and stop are in [`run`]; what is due and when in
//! [`schedule`]; a finished look (repairs, retries, health) in [`look`]; a loaded config
//! in [`reload`]; the status line and the watchdog's health check in [`status`].

mod look;
mod reload;
mod run;
mod schedule;
mod status;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

// `http` and `release_memory`: for the submodules' `super::` paths.
use super::{
    Options, http,
    notify::Notifier,
    release_memory,
    serve::Shared,
    tend::{Outcome, Watched},
};
use crate::{
    config::{self, Config, ConfigError},
    ifname::IfName,
    text,
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

fn join(names: &[IfName]) -> String {
    names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

//! Fault injection for the crash-safety tests.
//!
//! Every step of attach, reload and detach that changes state calls [`hit`] with a
//! name. With `LVS_FAILPOINT=NAME` (or `NAME#N`: the Nth time) in the environment the
//! process kills itself with SIGKILL right there, as `kill -9` or the OOM killer would;
//! with `LVS_FAILPOINT_TRACE=1` it prints `failpoint: NAME` to stderr at each one, so a
//! test can enumerate them all. `LVS_FAILPOINT_ACTION=stop` makes the process stop
//! itself (SIGSTOP) there instead, holding whatever it holds (the lock tests use it).
//! Without those variables `hit` does nothing.

use std::sync::{
    OnceLock,
    atomic::{AtomicU32, Ordering},
};

struct Config {
    target: Option<(String, u32)>,
    trace: bool,
    stop: bool,
}

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let target = std::env::var("LVS_FAILPOINT")
            .ok()
            .map(|v| match v.split_once('#') {
                Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
                None => (v, 1),
            });
        Config {
            target,
            trace: std::env::var_os("LVS_FAILPOINT_TRACE").is_some_and(|v| v == "1"),
            stop: std::env::var_os("LVS_FAILPOINT_ACTION").is_some_and(|v| v == "stop"),
        }
    })
}

static HITS: AtomicU32 = AtomicU32::new(0);

/// A step boundary named `name`.
pub fn hit(name: &'static str) {
    let c = config();
    if c.trace {
        eprintln!("failpoint: {name}");
    }
    if let Some((target, nth)) = &c.target
        && target == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
    {
        let sig = if c.stop { libc::SIGSTOP } else { libc::SIGKILL };
        // SAFETY: signalling ourselves.
        unsafe { libc::kill(libc::getpid(), sig) };
    }
}

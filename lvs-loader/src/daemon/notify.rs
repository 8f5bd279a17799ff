//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or `@name`
//! for an abstract socket), `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...` and
//! `WATCHDOG=1` every half `$WATCHDOG_USEC` (when `$WATCHDOG_PID` is unset or ours).

use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// Where to send notifications, if anywhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

fn parse_addr(v: &std::ffi::OsStr) -> Option<SocketAddr> {
    let b = v.as_encoded_bytes();
    match b.first()? {
        b'@' => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(&b[1..]).ok()
        }
        b'/' => SocketAddr::from_pathname(v).ok(),
        _ => None,
    }
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET")
            .and_then(|v| parse_addr(&v))
            .and_then(|addr| {
                let s = UnixDatagram::unbound().ok()?;
                s.set_nonblocking(true).ok()?;
                Some((s, addr))
            });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && for_us)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// `$WATCHDOG_USEC`, when systemd wants pings.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to ping: half the timeout.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| t / 2)
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); best effort.
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// A `STATUS=` value: one line.
    fn status_line(status: &str) -> String {
        status.replace('\n', " ")
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", Self::status_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", Self::status_line(status)));
    }

    pub fn reloading(&self) {
        let mono = monotonic_usec();
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={mono}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        use std::os::linux::net::SocketAddrExt as _;
        let a = parse_addr("@lvs/notify".as_ref()).unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"lvs/notify"[..]));
        let p = parse_addr("/run/systemd/notify".as_ref()).unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(parse_addr("relative".as_ref()).is_none());
        assert!(parse_addr("".as_ref()).is_none());
    }

    #[test]
    fn datagrams_arrive() {
        let dir = std::env::temp_dir().join(format!("lvs-notify-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let rx = UnixDatagram::bind(&dir).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&dir).unwrap(),
            )),
            watchdog: None,
        };
        n.ready("watching eth0\nand more");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=watching eth0 and more");
        let _ = std::fs::remove_file(&dir);
    }
}

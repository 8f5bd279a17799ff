//! A periodic tick from a kernel timer (timerfd), for the 250 ms hook poll.
//!
//! A tokio `interval` of 250 ms wakes the loop twice per tick: tokio's timer wheel keeps a
//! deadline more than 64 ms away in a coarser level and wakes at that level's slot
//! boundary to move it down, then again at the deadline (`strace`: epoll timeouts of
//! ~194 ms then ~55 ms per poll). Idle, those extra wake-ups were a third of the daemon's
//! CPU. A timerfd with an interval wakes the loop once per tick.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

pub struct Ticker {
    fd: AsyncFd<OwnedFd>,
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

impl Ticker {
    /// Ticks every `every` (> 0), the first one `every` from now.
    pub fn new(every: Duration) -> io::Result<Self> {
        if every.is_zero() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: plain timerfd_create(2).
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let spec = libc::itimerspec {
            it_interval: timespec(every),
            it_value: timespec(every),
        };
        // SAFETY: valid timerfd and itimerspec; no old value wanted.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as
            // the AsyncFd that owns it.
            fd: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?,
        })
    }

    /// Waits for the next tick; ticks missed meanwhile are folded into it (the count of
    /// expirations is read and dropped), like `MissedTickBehavior::Delay`.
    pub async fn tick(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut count = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a local buffer.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    count.as_mut_ptr().cast(),
                    count.len(),
                )
            };
            if n == 8 {
                // Consumed: wait for the next expiration's readiness instead of finding
                // out with a read that fails with EAGAIN. (tokio clears only the readiness
                // this guard saw: an expiration's event that came meanwhile stays.)
                guard.clear_ready();
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(if n < 0 {
                e
            } else {
                io::Error::from(io::ErrorKind::UnexpectedEof)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    // Lower bounds only, measured from before the timer is armed: an expiration never
    // comes early, while a slow guest (qemu TCG) may deliver any tick late.

    #[tokio::test(flavor = "current_thread")]
    async fn ticks_at_its_interval() {
        let start = Instant::now();
        let mut t = Ticker::new(Duration::from_millis(20)).expect("timerfd");
        for _ in 0..5 {
            t.tick().await.expect("tick");
        }
        let took = start.elapsed();
        // The fifth expiration is 100 ms after arming: a timer that fired at once, or
        // ticks that did not wait, would be faster.
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn missed_ticks_fold_into_one() {
        let start = Instant::now();
        let mut t = Ticker::new(Duration::from_millis(10)).expect("timerfd");
        std::thread::sleep(Duration::from_millis(55));
        // Five expirations happened meanwhile: they make one tick, and the next tick
        // waits for the sixth expiration (60 ms after arming). One tick per expiration
        // would return the second at once, at ~55 ms.
        t.tick().await.expect("tick");
        t.tick().await.expect("tick");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(60), "{took:?}");
    }

    #[test]
    fn a_zero_interval_is_refused() {
        assert!(Ticker::new(Duration::ZERO).is_err());
    }
}

//! Test support for lvs-ebpf: frame builders, the userspace reference model of the
//! iptables recipe, network-namespace fixtures and a raw AF_PACKET sender.
//!
//! Used by the integration tests in `tests/` and by the benchmark binary.

pub mod bench;
pub mod cmd;
pub mod conf;
pub mod daemon;
pub mod debroot;
pub mod fixture;
pub mod framegen;
pub mod frames;
pub mod harness;
pub mod lab;
pub mod model;
pub mod netns;
pub mod reap;
pub mod sender;

/// Sets its flag when dropped: a sender thread inside `std::thread::scope` that loops
/// until the flag is set stops however the scope's closure ends (a failed assertion would
/// otherwise leave the scope waiting for the sender forever).
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

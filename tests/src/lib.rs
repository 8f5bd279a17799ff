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
pub mod sender;

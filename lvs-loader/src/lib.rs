//! lvs-loader: the userspace side of lvs-ebpf.
//!
//! * [`config`]: `vips.toml` parsing and validation (file:line:column: field: message).
//! * [`datapath`]: loading the embedded eBPF object.
//! * [`maps`]: the program's maps and the atomic generation switch.
//! * [`ops`]: attach / reload / detach / status / stats, with pins in bpffs.
//! * [`testrun`]: BPF_PROG_TEST_RUN on hand-built frames.
//! * [`sys`]: privileges, bpffs, network namespaces, kernel version.
//! * [`bench_support`]: the empty TC program (benchmark floor).
//! * [`ifname`]: validated interface names.
//! * [`text`]: escaping outside strings before printing them.

pub mod batch;
pub mod bench_support;
pub mod config;
pub mod datapath;
pub mod error;
pub mod ifname;
pub mod maps;
pub mod ops;
pub mod sys;
pub mod table;
pub mod testrun;
pub mod text;

pub use error::{Error, Result};

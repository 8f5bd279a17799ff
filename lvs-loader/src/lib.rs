//! lvs-loader: the userspace side of lvs-ebpf.
//!
//! * [`attachment`]: [`Attachment`], one interface's pins, metadata and hook: create
//!   (attach), reload, detach, stats, status; serialized by [`lock`], crash-safe.
//! * [`status`]: every attachment's state; [`elsewhere`]: moved interfaces, other
//!   markers' owners, orphaned namespaces (`detach --orphans`).
//! * [`hook`]: TCX links and cls_bpf filters (rtnetlink), what is on a hook.
//! * [`config`]: `vips.toml` parsing and validation (file:line:column: field: message).
//! * [`datapath`]: loading the embedded eBPF object.
//! * [`maps`]: the program's maps and the atomic generation switch; [`slots`] plans the
//!   per-VIP counter slots.
//! * [`stats`]: counters, summed over CPUs.
//! * [`pins`]: the pin tree and its permissions; [`meta`]: the pinned attach record;
//!   [`journal`]: post-flip work saved for recovery; [`failpoint`]: fault injection.
//! * [`netns`]: namespace identity (inode + cookie) and discovery.
//! * [`testrun`]: BPF_PROG_TEST_RUN on hand-built frames.
//! * [`sys`]: privileges, bpffs, entering a namespace, interface indexes; [`bpf`]: the raw
//!   bpf(2) commands aya 0.14 does not offer by ifindex.
//! * [`bench_support`]: the empty TC program (benchmark floor).
//! * [`ifname`]: validated interface names; [`text`]: escaping outside strings.
//! * [`frames`]: hand-built Ethernet frames (verification and tests).
//! * [`import`], [`export`]: the iptables recipe to vips.toml and back.
//! * [`keepalived`]: keepalived.conf parsing and the cross-check against a vips.toml.
//! * [`diff`]: what a reload would change (`diff`, `reload --dry-run`).
//! * [`explain`]: why a frame is (not) marked, from the kernel's own decision code;
//!   [`pcap`]: reading captures for it; [`trace`]: live decisions through a ring buffer.

pub mod attachment;
pub mod batch;
pub mod bench_support;
pub mod bounded;
pub mod bpf;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod diff;
pub mod elsewhere;
pub mod error;
pub mod explain;
pub mod export;
pub mod failpoint;
pub mod frames;
pub mod health;
pub mod hook;
pub mod ifname;
pub mod import;
pub mod journal;
pub mod keepalived;
pub mod lock;
pub mod maps;
pub mod meta;
pub mod netns;
pub mod nlmsg;
pub mod pcap;
pub mod pins;
pub mod slots;
pub mod stats;
pub mod status;
pub mod sys;
pub mod table;
pub mod testrun;
pub mod text;
pub mod trace;

pub use attachment::{
    Action, AttachOptions, AttachReport, Attachment, DetachReport, Placement, RepairReport,
};
pub use error::{Error, Result};
pub use hook::{Mode, ModeChoice};
pub use ifname::IfName;
pub use pins::DEFAULT_PIN_DIR;

//! TC ingress hooks: a pinned TCX link (Linux >= 6.6) or a cls_bpf filter on a clsact
//! qdisc, whether a program is on the hook, and everything else that is.

pub mod netlink;
pub mod tcx;

use std::fmt;

use serde::Serialize;

use crate::{
    bpf,
    error::{Error, Result},
    text,
};

/// How a program is hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A TCX BPF link, pinned.
    Tcx,
    /// A cls_bpf direct-action filter on a clsact qdisc.
    Netlink,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Netlink => "netlink",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for (`--mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeChoice {
    /// TCX on Linux >= 6.6, netlink (clsact + cls_bpf) otherwise.
    #[default]
    Auto,
    /// A TCX BPF link (Linux >= 6.6), pinned.
    Tcx,
    /// A cls_bpf direct-action filter on a clsact qdisc.
    Netlink,
}

/// TCX (BPF links on the tc hooks) arrived in Linux 6.6.
pub fn supports_tcx() -> bool {
    aya::util::KernelVersion::current()
        .map(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
        .unwrap_or(false)
}

impl ModeChoice {
    pub fn resolve(self) -> Result<Mode> {
        match self {
            Self::Auto if supports_tcx() => Ok(Mode::Tcx),
            Self::Auto | Self::Netlink => Ok(Mode::Netlink),
            Self::Tcx if supports_tcx() => Ok(Mode::Tcx),
            Self::Tcx => Err(Error::Kernel(format!(
                "--mode tcx needs Linux >= 6.6 (TCX links); this kernel is {}: use --mode netlink (or auto)",
                text::escape(&crate::sys::kernel_release())
            ))),
        }
    }
}

/// Where on the ingress hook an entry sits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HookPosition {
    /// A TCX program (these run first, in this order).
    Tcx,
    /// A tc filter on the clsact qdisc (after the TCX programs, by priority).
    Filter {
        priority: u16,
        handle: u32,
        kind: String,
    },
}

/// One program or filter on a device's ingress hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookEntry {
    #[serde(flatten)]
    pub position: HookPosition,
    pub prog_id: Option<u32>,
    /// The program's (or filter's) name, escaped for printing.
    pub name: String,
}

impl HookEntry {
    /// Whether this is an lvs-ebpf marker (ours or another attachment's).
    pub fn is_marker(&self) -> bool {
        self.name == lvs_ebpf_common::PROGRAM_NAME
    }
}

fn prog_name(id: u32) -> String {
    use std::os::fd::AsFd as _;
    bpf::prog_by_id(id)
        .and_then(|fd| bpf::prog_info(fd.as_fd()))
        .map(|i| text::escape_bytes(&i.name))
        .unwrap_or_else(|_| "?".into())
}

/// Everything on `ifindex`'s ingress hook, in run order: TCX programs, then tc filters.
pub fn ingress(ifindex: u32) -> Result<Vec<HookEntry>> {
    let mut out = Vec::new();
    if supports_tcx() {
        for id in tcx::ingress_prog_ids(ifindex)? {
            out.push(HookEntry {
                position: HookPosition::Tcx,
                prog_id: Some(id),
                name: prog_name(id),
            });
        }
    }
    let filters = netlink::filters(ifindex, netlink::Direction::Ingress)
        .map_err(|e| Error::netlink(format!("listing the tc filters of ifindex {ifindex}"), e))?;
    for f in filters {
        out.push(HookEntry {
            name: match (&f.prog_name, f.prog_id) {
                (Some(n), _) => text::escape(n).into_owned(),
                (None, Some(id)) => prog_name(id),
                (None, None) => text::escape(&f.kind).into_owned(),
            },
            position: HookPosition::Filter {
                priority: f.priority,
                handle: f.handle,
                kind: text::escape(&f.kind).into_owned(),
            },
            prog_id: f.prog_id,
        });
    }
    Ok(out)
}

/// Whether program `prog_id` runs on `ifindex`'s ingress (in either mode: a program is
/// "hooked" wherever it is).
pub fn is_hooked(ifindex: u32, prog_id: u32) -> Result<bool> {
    Ok(ingress(ifindex)?.iter().any(|e| e.prog_id == Some(prog_id)))
}

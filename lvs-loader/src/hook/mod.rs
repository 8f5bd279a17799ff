//! TC ingress hooks: a pinned TCX link (Linux >= 6.6) or a cls_bpf filter on a clsact
//! qdisc, whether a program is on the hook, everything else that is, and where ours sits
//! among them ([`Order`]).

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

/// TCX (BPF links on the tc hooks) arrived in Linux 6.6. (Asked once per process: the
/// daemon asks four times a second.)
pub fn supports_tcx() -> bool {
    static TCX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TCX.get_or_init(|| {
        aya::util::KernelVersion::current()
            .map(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
            .unwrap_or(false)
    })
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

/// Where the program goes on the ingress hook (`--position`, `--priority`), recorded in
/// the attachment's metadata so that re-hooks and repairs keep it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Before everything else (TCX: `BPF_F_BEFORE`; netlink: priority 1 when it is free),
    /// so that no program that returns `TC_ACT_OK`/`TCX_PASS` can hide packets from it.
    #[default]
    First,
    /// After whatever is there (TCX: appended; netlink: above the highest priority).
    Last,
    /// Netlink: exactly this tc filter priority (1-65535).
    Priority(u16),
}

impl Order {
    /// `first`, `last`, `priority 7`.
    pub fn describe(self) -> String {
        match self {
            Self::First => "first".into(),
            Self::Last => "last".into(),
            Self::Priority(p) => format!("priority {p}"),
        }
    }

    /// The entries that run before program `prog_id` on a hook listed in run order (all
    /// of them when it is not there).
    pub fn in_front(entries: &[HookEntry], prog_id: u32) -> &[HookEntry] {
        let at = entries
            .iter()
            .position(|e| e.prog_id == Some(prog_id))
            .unwrap_or(entries.len());
        &entries[..at]
    }

    /// Whether program `prog_id` sits where this order wants it on `entries` (run order):
    /// `None` when it does, else what is wrong, in words.
    pub fn problem(self, entries: &[HookEntry], prog_id: u32) -> Option<String> {
        let ours = entries.iter().find(|e| e.prog_id == Some(prog_id))?;
        match self {
            Self::Last => None,
            Self::First => {
                let front = Self::in_front(entries, prog_id);
                if front.is_empty() {
                    return None;
                }
                let mut p = format!(
                    "not first on the hook: {} run(s) before it",
                    front
                        .iter()
                        .map(HookEntry::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if ours.position != HookPosition::Tcx
                    && front.iter().any(|e| e.position == HookPosition::Tcx)
                {
                    p.push_str(
                        " (TCX programs run before every tc filter: attach with --mode tcx to be first)",
                    );
                }
                Some(p)
            }
            Self::Priority(p) => match &ours.position {
                HookPosition::Filter { priority, .. } if *priority == p => None,
                HookPosition::Filter { priority, .. } => Some(format!(
                    "its tc filter has priority {priority}, not the {p} asked for"
                )),
                HookPosition::Tcx => Some(format!(
                    "it is a TCX program; tc priority {p} applies to --mode netlink"
                )),
            },
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Serialize for Order {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

/// `--position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Position {
    /// Before every other program and filter on the hook.
    First,
    /// After everything already on the hook.
    Last,
}

impl Order {
    /// From `--position` and `--priority` (which wins; it means netlink). `None` when
    /// neither is given.
    pub fn from_args(position: Option<Position>, priority: Option<u16>) -> Option<Self> {
        match (priority, position) {
            (Some(p), _) => Some(Self::Priority(p)),
            (None, Some(Position::First)) => Some(Self::First),
            (None, Some(Position::Last)) => Some(Self::Last),
            (None, None) => None,
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

    /// `tcx prog 57 cilium_ingress`, `filter pref 1 u32`, `filter pref 3 bpf prog 9 foo`.
    pub fn describe(&self) -> String {
        let prog = self
            .prog_id
            .map_or_else(String::new, |id| format!(" prog {id}"));
        match &self.position {
            HookPosition::Tcx => format!("tcx{prog} {}", self.name),
            HookPosition::Filter { priority, kind, .. } if self.prog_id.is_none() => {
                format!("filter pref {priority} {kind}")
            }
            HookPosition::Filter { priority, kind, .. } => {
                format!("filter pref {priority} {kind}{prog} {}", self.name)
            }
        }
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

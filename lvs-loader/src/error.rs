//! The library's error type: one enum, each variant says what happened and what to do.
//!
//! Conventions: every string that came from outside (interface names, paths, kernel
//! names) is escaped in the message ([`IfName`] and [`ShownPath`] print escaped). An OS
//! error is either part of the message (`{source}`) or the `#[source]`, never both, so
//! the CLI's "caused by" chain never repeats a line.

use std::{fmt, path::PathBuf};

use crate::{config::ConfigError, hook::Mode, ifname::IfName, text};

/// A path that prints escaped.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownPath(pub PathBuf);

impl fmt::Display for ShownPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::escape_path(&self.0))
    }
}

impl fmt::Debug for ShownPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl From<&std::path::Path> for ShownPath {
    fn from(p: &std::path::Path) -> Self {
        Self(p.to_path_buf())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(
        "lvs-loader needs {missing} to load BPF programs and attach them to interfaces: run it as root (e.g. `sudo lvs-loader ...`)"
    )]
    Privileges { missing: String },

    #[error("{what}: permission denied: run lvs-loader as root (e.g. `sudo lvs-loader ...`)")]
    PermissionDenied { what: String },

    #[error("interface \"{iface}\" does not exist in this network namespace: check `ip link show`")]
    NoInterface { iface: IfName },

    #[error(
        "{iface} is not attached by lvs-loader (nothing pinned at {dir}); attach it with `lvs-loader attach {iface} --config FILE`"
    )]
    NotAttached { iface: IfName, dir: ShownPath },

    #[error("{iface} is attached but the interface is gone{detail}; {advice}")]
    InterfaceGone {
        iface: IfName,
        /// e.g. ": it moved to network namespace dr2 (now ifindex 7)".
        detail: String,
        advice: &'static str,
    },

    #[error(
        "{iface} already carries an lvs-ebpf program (id {prog_id}, {owner}); attaching a second marker would stack two programs that overwrite each other's marks: detach the other one first (`lvs-loader status` shows it), or pass --allow-stacking if that is really what you want"
    )]
    Stacked {
        iface: IfName,
        prog_id: u32,
        owner: String,
    },

    #[error(
        "{what} is busy: {holder}; gave up after {waited_ms} ms (raise --wait, or check that process)"
    )]
    Busy {
        what: String,
        holder: String,
        waited_ms: u64,
    },

    #[error("{path} {problem}: {fix}")]
    UnsafeDir {
        path: ShownPath,
        problem: String,
        fix: String,
    },

    #[error(
        "the pins at {dir} cannot be proven to belong to this network namespace ({why}); `lvs-loader attach {iface} ...` replaces them, `lvs-loader detach {iface}` removes them"
    )]
    Unverified {
        iface: IfName,
        dir: ShownPath,
        why: &'static str,
    },

    #[error("{0}")]
    Bpffs(String),

    #[error("{0}")]
    Kernel(String),

    #[error(
        "{iface}: its program was replaced or removed while tracing (a reload that grew the maps, a detach, a new attach): this trace would see nothing more; run `lvs-loader trace {iface}` again"
    )]
    ProgramReplaced { iface: IfName },

    #[error("network namespace \"{name}\": {source}")]
    Netns {
        name: String,
        source: std::io::Error,
    },

    #[error("loading the eBPF program into the kernel failed{}", hint_text(.hint))]
    Load {
        hint: Option<&'static str>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("attaching to {iface} ({mode}) failed{}: {source}", hint_text(.hint))]
    Attach {
        iface: IfName,
        mode: Mode,
        hint: Option<&'static str>,
        source: std::io::Error,
    },

    #[error(
        "{iface}: priority {priority} is a tc filter priority, for --mode netlink; this attachment is {mode} (use --position first|last)"
    )]
    PriorityNeedsNetlink {
        iface: IfName,
        priority: u16,
        mode: Mode,
    },

    #[error(
        "{iface}: tc priority {priority} on its ingress is taken by another filter: pick another --priority"
    )]
    PriorityTaken { iface: IfName, priority: u16 },

    #[error("{what}: {source}")]
    Netlink {
        what: String,
        source: std::io::Error,
    },

    #[error("map {map}: {what}")]
    Map {
        map: &'static str,
        what: String,
        #[source]
        source: Option<aya::maps::MapError>,
    },

    #[error("pinning {}", text::escape_path(.path))]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("pins at {dir} are damaged ({what}): `lvs-loader detach {iface}` removes them")]
    BrokenPins {
        iface: IfName,
        dir: ShownPath,
        what: String,
    },

    #[error(
        "config path {path} is {len} bytes long; at most {max} fit (PATH_MAX): use a shorter path"
    )]
    PathTooLong {
        path: ShownPath,
        len: usize,
        max: usize,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },

    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(std::io::Error),
}

fn hint_text(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!(": {h}")).unwrap_or_default()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an OS error means "not allowed" (classified by errno, not by message text).
pub fn is_permission(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

impl Error {
    /// An OS error while doing `what`; EACCES/EPERM become [`Error::PermissionDenied`].
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        if is_permission(&source) {
            return Self::PermissionDenied { what: what.into() };
        }
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn map(
        map: &'static str,
        what: impl Into<String>,
        source: aya::maps::MapError,
    ) -> Self {
        Self::Map {
            map,
            what: what.into(),
            source: Some(source),
        }
    }

    pub(crate) fn netlink(what: impl Into<String>, source: std::io::Error) -> Self {
        if is_permission(&source) {
            return Self::PermissionDenied { what: what.into() };
        }
        Self::Netlink {
            what: what.into(),
            source,
        }
    }
}

//! The library's error type: one enum, each variant says what to do about it.

use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(
        "lvs-loader needs {missing} to load BPF programs and attach them to interfaces: run it as root (e.g. `sudo lvs-loader ...`)"
    )]
    Privileges { missing: String },

    #[error("interface {iface:?} does not exist{where_}: check `ip link show`")]
    NoInterface { iface: String, where_: String },

    #[error(
        "{iface} is not attached by lvs-loader{where_} (nothing pinned at {dir}); attach it with `lvs-loader attach {iface} --config FILE`"
    )]
    NotAttached {
        iface: String,
        dir: PathBuf,
        where_: String,
    },

    #[error(
        "{iface} was attached when it had ifindex {old}, it now has {new} (the interface was recreated): run `lvs-loader detach {iface}` then attach again"
    )]
    StaleAttachment { iface: String, old: u32, new: u32 },

    #[error("{0}")]
    Bpffs(String),

    #[error("{0}")]
    Kernel(String),

    #[error("network namespace {name:?}: {source}")]
    Netns {
        name: String,
        #[source]
        source: std::io::Error,
    },

    #[error("loading the eBPF program into the kernel failed{hint}")]
    Load {
        hint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("attaching to {iface} ({mode}) failed{hint}")]
    Attach {
        iface: String,
        mode: &'static str,
        hint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("map {map}: {what}")]
    Map {
        map: &'static str,
        what: String,
        #[source]
        source: Option<aya::maps::MapError>,
    },

    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
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
}

//! Health: what `status --check` and the daemon's `/healthz` require of an attachment.
//! It is healthy when its program is on the ingress hook of the interface of its name, in
//! its namespace, where its order wants it (first, unless attached otherwise), and marks
//! with the expected config: the file it was applied from, unchanged on disk since
//! ([`Expect::OnDisk`]), or the daemon's running config ([`Expect::Digest`]). Anything
//! else is a [`Problem`], one line each.

use std::{
    io::Read as _,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{
    Attachment,
    config::{self, MAX_CONFIG_BYTES},
    error::Result,
    ifname::IfName,
    status::{self, State, StatusEntry},
    text,
};

/// Which config an attachment must be marking with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The file it was applied from, as it is on disk now.
    OnDisk,
    /// This SHA-256 (the daemon's running config).
    Digest([u8; 32]),
}

/// What kind of problem, for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// Nothing attached to this interface (here).
    NotAttached,
    /// The interface does not exist (deleted, renamed or moved away).
    NoInterface,
    /// Pinned, but not on the hook of the interface of its name.
    NotHooked,
    /// Not where its order wants it on the hook (something runs in front).
    Order,
    /// The live config is not the expected one.
    ConfigChanged,
    /// The config file can't be read to compare.
    ConfigUnreadable,
    /// Any other `status` state (interrupted, busy, broken pins, namespace gone, ...).
    State,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// One line, escaped.
    pub message: String,
}

impl Problem {
    fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The health of one attachment (or of an interface that should have one).
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Escaped; `IFACE@NAMESPACE` outside the caller's namespace.
    pub interface: String,
    pub ok: bool,
    pub problems: Vec<Problem>,
    /// Where it is on the hook and with which config, when it is ok (for the ok line).
    #[serde(skip)]
    pub summary: String,
}

impl Health {
    fn new(interface: String, problems: Vec<Problem>, summary: String) -> Self {
        Self {
            interface,
            ok: problems.is_empty(),
            problems,
            summary,
        }
    }
}

/// SHA-256 of the config file at `path` as [`config::load`] would read it (a regular
/// file of at most [`MAX_CONFIG_BYTES`]).
pub fn file_digest(path: &Path) -> std::result::Result<[u8; 32], String> {
    let shown = text::escape_path(path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let md = f
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let ft = md.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else {
            "not a regular file"
        };
        return Err(format!("cannot read {shown}: it is {kind}"));
    }
    if md.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "cannot read {shown}: {} bytes, more than a config may have",
            md.len()
        ));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut r = f.take(MAX_CONFIG_BYTES + 1);
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        }
    }
    Ok(h.finalize().into())
}

fn short(d: &[u8; 32]) -> String {
    config::hex(&d[..6])
}

/// The problems of one `status` entry.
pub fn problems(e: &StatusEntry, expect: &Expect) -> Vec<Problem> {
    let mut out = Vec::new();
    let detail = e
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    match e.state {
        State::Ok if e.is_hooked_here() => {}
        State::Ok | State::NotHooked | State::Recreated => out.push(Problem::new(
            ProblemKind::NotHooked,
            format!("not on the interface's hook{detail}"),
        )),
        State::InterfaceGone | State::Moved => out.push(Problem::new(
            ProblemKind::NoInterface,
            format!("{}{detail}", e.state.as_str()),
        )),
        _ => out.push(Problem::new(
            ProblemKind::State,
            format!("{}{detail}", e.state.as_str()),
        )),
    }
    if !out.is_empty() {
        return out;
    }
    if let Some(p) = &e.order_problem {
        out.push(Problem::new(ProblemKind::Order, p.clone()));
    }
    let Some(live) = e.digest else {
        out.push(Problem::new(
            ProblemKind::ConfigUnreadable,
            "no config recorded for the live maps",
        ));
        return out;
    };
    match expect {
        Expect::Digest(want) if *want != live => out.push(Problem::new(
            ProblemKind::ConfigChanged,
            format!(
                "marks with config sha256:{}, not the running config sha256:{}",
                short(&live),
                short(want)
            ),
        )),
        Expect::Digest(_) => {}
        Expect::OnDisk => match &e.config_file {
            None => out.push(Problem::new(
                ProblemKind::ConfigUnreadable,
                "the live config was not applied from a file",
            )),
            Some(path) => match file_digest(path) {
                Ok(d) if d == live => {}
                Ok(d) => out.push(Problem::new(
                    ProblemKind::ConfigChanged,
                    format!(
                        "{} changed since it was applied (live sha256:{}, on disk sha256:{}): `lvs-loader reload {} --config {}` applies it",
                        text::escape_path(path),
                        short(&live),
                        short(&d),
                        e.interface,
                        text::escape_path(path),
                    ),
                )),
                Err(why) => out.push(Problem::new(ProblemKind::ConfigUnreadable, why)),
            },
        },
    }
    out
}

fn label(e: &StatusEntry) -> String {
    if e.current_netns {
        e.interface.to_string()
    } else {
        format!(
            "{}@{}",
            e.interface,
            e.netns
                .name
                .clone()
                .unwrap_or_else(|| format!("ns{}", e.netns.inode))
        )
    }
}

fn summary(e: &StatusEntry) -> String {
    format!(
        "{} on its hook, config sha256:{} ({} VIP(s))",
        e.order.map_or_else(
            || "hooked".into(),
            |o| match o {
                crate::hook::Order::First => "first".to_owned(),
                other => format!("hooked ({other})"),
            }
        ),
        e.config_digest.get(..12).unwrap_or("-"),
        e.vips
    )
}

/// The health of one status entry.
pub fn of_entry(e: &StatusEntry, expect: &Expect) -> Health {
    Health::new(label(e), problems(e, expect), summary(e))
}

/// The health of `ifname`'s attachment in the caller's namespace.
pub fn of_interface(pin_dir: &Path, ifname: &IfName, expect: &Expect) -> Result<Health> {
    let att = Attachment::here(pin_dir, ifname)?;
    if !att.exists()? {
        let why = match crate::sys::ifindex(ifname) {
            Some(_) => format!(
                "not attached by lvs-loader (nothing pinned at {})",
                text::escape_path(&att.dir())
            ),
            None => "not attached, and no such interface in this network namespace".into(),
        };
        return Ok(Health::new(
            ifname.to_string(),
            vec![Problem::new(ProblemKind::NotAttached, why)],
            String::new(),
        ));
    }
    Ok(of_entry(&att.status()?, expect))
}

/// The health of every attachment under `pin_dir`, in every namespace (the config each
/// was applied from, on disk).
pub fn of_all(pin_dir: &Path) -> Result<Vec<Health>> {
    Ok(status::list(pin_dir)?
        .iter()
        .map(|e| of_entry(e, &Expect::OnDisk))
        .collect())
}

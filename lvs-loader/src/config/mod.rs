//! `vips.toml`: reading, parsing and validation.
//!
//! Every problem is reported as `FILE:LINE:COLUMN: FIELD: message`, all of them at once
//! (up to [`MAX_PROBLEMS`]), sorted by position, and a config with any problem is never
//! applied.
//!
//! * `read`: regular files only, at most [`MAX_CONFIG_BYTES`], nothing that blocks.
//! * `sections`: the text cut at its table headers, comments and blank lines dropped, so
//!   memory is bounded by the largest table ([`MAX_TABLE_TOKENS`]), not by the file.
//! * `validate`: each section's spanned TOML walked by hand: unknown keys, type errors and
//!   semantic errors in one run; port lists and ranges expanded to one [`Vip`] per port.
//! * `values`: addresses, MACs, ports, names.
//! * `problems`: byte offsets turned into lines and columns, bounded.

#[cfg(test)]
mod fuzz_text;
mod problems;
mod read;
mod sections;
mod validate;
mod values;

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use lvs_ebpf_common::{ANY_PORT, MacKey, PROTO_SCTP, PROTO_TCP, PROTO_UDP, VipKey};
use sha2::{Digest as _, Sha256};

pub use problems::MAX_PROBLEMS;
pub use read::MAX_CONFIG_BYTES;
pub use sections::MAX_TABLE_TOKENS;
pub use validate::MAX_DAEMON_INTERFACES;
pub use values::{format_mac, parse_mac};

use crate::{ifname::IfName, text};

/// Transport protocol of a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => PROTO_TCP,
            Self::Udp => PROTO_UDP,
            Self::Sctp => PROTO_SCTP,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            PROTO_TCP => Some(Self::Tcp),
            PROTO_UDP => Some(Self::Udp),
            PROTO_SCTP => Some(Self::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Tcp, Self::Udp, Self::Sctp]
            .into_iter()
            .find(|p| s.eq_ignore_ascii_case(p.as_str()))
            .ok_or(())
    }
}

/// A peer director's MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub mac: [u8; 6],
    pub name: Option<String>,
}

/// A virtual service to mark: one entry of the VIP map. A `[[vip]]` table with a port
/// list or range becomes one `Vip` per port, each with the table's `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub address: IpAddr,
    /// `None`: every port of `address` + `protocol`.
    pub port: Option<u16>,
    pub protocol: Protocol,
    /// The mark bits (inside `mark_mask`, never 0).
    pub mark: u32,
    /// The bits of `skb->mark` this VIP sets: `skb->mark = (skb->mark & !mark_mask) ^
    /// mark`, xt_MARK's `--set-xmark mark/mark_mask`. `u32::MAX` (the default): all 32.
    pub mark_mask: u32,
    pub name: Option<String>,
}

impl Vip {
    /// The map key of this VIP.
    pub fn key(&self) -> VipKey {
        let port = self.port.unwrap_or(ANY_PORT);
        match self.address {
            IpAddr::V4(a) => VipKey::v4(a.octets(), port, self.protocol.number()),
            IpAddr::V6(a) => VipKey::v6(a.octets(), port, self.protocol.number()),
        }
    }

    /// `name`, or `ADDRESS:PORT/PROTO` when the config gives none.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format_endpoint(self.address, self.port, self.protocol),
        }
    }
}

/// `172.17.85.56:80/tcp`, `[2001:db8::1]:*/udp`.
pub fn format_endpoint(address: IpAddr, port: Option<u16>, protocol: Protocol) -> String {
    let port = port.map_or_else(|| "*".to_owned(), |p| p.to_string());
    match address {
        IpAddr::V4(a) => format!("{a}:{port}/{protocol}"),
        IpAddr::V6(a) => format!("[{a}]:{port}/{protocol}"),
    }
}

impl Peer {
    pub fn key(&self) -> MacKey {
        MacKey::new(self.mac)
    }
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub peers: Vec<Peer>,
    pub vips: Vec<Vip>,
    /// SHA-256 of the file's bytes.
    pub digest: [u8; 32],
    /// Where it was read from (absolute when read from a file).
    pub path: Option<PathBuf>,
}

impl Config {
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The optional `[daemon]` table: settings of `lvs-loader daemon` only (the datapath
/// never sees them; they are part of the file, so of its digest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Daemon {
    /// The interfaces to manage when the command line names none.
    pub interfaces: Vec<IfName>,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// e.g. `vip[2].address` (tables counted from 1, in file order).
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read config: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot read config: it is {kind}, not a regular file")]
    NotRegularFile { file: String, kind: &'static str },
    #[error(
        "{file}: cannot read config: {size} bytes, more than the {} MiB ({MAX_CONFIG_BYTES} bytes) a config may have",
        MAX_CONFIG_BYTES >> 20
    )]
    TooLarge { file: String, size: u64 },
    #[error("{}", render(.file, .diagnostics))]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{file}:{}:{}: {}: {}",
            d.line, d.column, d.field, d.message
        ));
    }
    out
}

impl ConfigError {
    /// The problems of an invalid config; empty when the file could not be read.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }

    /// The file, as named in messages (escaped).
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. }
            | Self::NotRegularFile { file, .. }
            | Self::TooLarge { file, .. }
            | Self::Invalid { file, .. } => file,
        }
    }
}

/// Reads and validates `path`: a regular file of at most [`MAX_CONFIG_BYTES`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_full(path).map(|(c, _)| c)
}

/// [`load`], with the `[daemon]` table.
pub fn load_full(path: &Path) -> Result<(Config, Daemon), ConfigError> {
    let file = text::escape_path(path);
    let bytes = read::read_bounded(path, &file)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let mut p = problems::Problems::default();
        p.push(at, "file", "not valid UTF-8 (a config is UTF-8 text)");
        ConfigError::Invalid {
            diagnostics: p.into_diagnostics(e.as_bytes()),
            file: file.clone(),
        }
    })?;
    let (mut config, daemon) = parse_full(&text, &file)?;
    config.path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    Ok((config, daemon))
}

/// Parses and validates config text; `file` names it in messages (as given: escape it).
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_full(text, file).map(|(c, _)| c)
}

/// [`parse`], with the `[daemon]` table.
pub fn parse_full(text: &str, file: &str) -> Result<(Config, Daemon), ConfigError> {
    let mut v = validate::Validator::for_text(text.len());
    for section in sections::Sections::new(text) {
        if v.problems.is_full() {
            v.problems.stop_at(section.start);
            break;
        }
        v.section(&section);
    }
    let (peers, vips, daemon, problems) = v.finish();
    if problems.is_empty() {
        Ok((
            Config {
                peers,
                vips,
                digest: Sha256::digest(text.as_bytes()).into(),
                path: None,
            },
            daemon,
        ))
    } else {
        Err(ConfigError::Invalid {
            file: file.to_owned(),
            diagnostics: problems.into_diagnostics(text.as_bytes()),
        })
    }
}

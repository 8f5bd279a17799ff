//! `vips.toml`: parsing and validation.
//!
//! Every problem is reported as `FILE:LINE:COLUMN: FIELD: message`, all of them at once,
//! and a config with any problem is never applied.

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use lvs_ebpf_common::{
    ANY_PORT, MAX_NAME_LEN, MAX_PEERS, MAX_VIPS, MacKey, PROTO_SCTP, PROTO_TCP, PROTO_UDP, VipKey,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

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
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            "sctp" => Ok(Self::Sctp),
            _ => Err(()),
        }
    }
}

/// A peer director's MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub mac: [u8; 6],
    pub name: Option<String>,
}

/// A virtual service to mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub address: IpAddr,
    /// `None`: every port of `address` + `protocol`.
    pub port: Option<u16>,
    pub protocol: Protocol,
    pub mark: u32,
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
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid { diagnostics, .. } => diagnostics,
            Self::Read { .. } => &[],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    peer: Vec<Spanned<RawPeer>>,
    #[serde(default)]
    vip: Vec<Spanned<RawVip>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    mac: Spanned<String>,
    name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVip {
    address: Spanned<String>,
    port: Option<Spanned<i64>>,
    protocol: Option<Spanned<String>>,
    mark: Spanned<i64>,
    name: Option<Spanned<String>>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
        file: file.clone(),
        diagnostics: vec![{
            let (line, column) = line_col_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
            Diagnostic {
                line,
                column,
                field: "file".into(),
                message: "not valid UTF-8".into(),
            }
        }],
    })?;
    let mut config = parse(&text, &file)?;
    config.path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    Ok(config)
}

/// Parses and validates config text; `file` names it in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let invalid = |diagnostics| ConfigError::Invalid {
        file: file.to_owned(),
        diagnostics,
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| invalid(vec![toml_diagnostic(text, &e)]))?;
    let mut v = Validator {
        lines: LineIndex::new(text),
        diags: Vec::new(),
    };
    let peers = v.peers(&raw.peer);
    let vips = v.vips(&raw.vip);
    if v.diags.is_empty() {
        Ok(Config {
            peers,
            vips,
            digest: Sha256::digest(text.as_bytes()).into(),
            path: None,
        })
    } else {
        v.diags.sort_by_key(|d| (d.line, d.column));
        Err(invalid(v.diags))
    }
}

struct Validator {
    lines: LineIndex,
    diags: Vec<Diagnostic>,
}

/// Byte offset -> (line, column) in O(log n): configs may hold 100,000 VIPs.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    fn line_col(&self, at: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= at).max(1);
        (line, at - self.starts[line - 1] + 1)
    }
}

impl Validator {
    fn line(&self, at: usize) -> usize {
        self.lines.line_col(at).0
    }

    fn error(&mut self, at: usize, field: String, message: String) {
        let (line, column) = self.lines.line_col(at);
        self.diags.push(Diagnostic {
            line,
            column,
            field,
            message,
        });
    }

    fn name(&mut self, name: &Option<Spanned<String>>, field: String) -> Option<String> {
        let n = name.as_ref()?;
        let s = n.get_ref();
        if s.is_empty() {
            self.error(
                n.span().start,
                field,
                "must not be empty (omit it instead)".into(),
            );
        } else if s.len() > MAX_NAME_LEN {
            self.error(
                n.span().start,
                field,
                format!("longer than {MAX_NAME_LEN} bytes"),
            );
        } else if s.chars().any(char::is_control) {
            self.error(n.span().start, field, "contains control characters".into());
        }
        Some(s.clone())
    }

    fn peers(&mut self, raw: &[Spanned<RawPeer>]) -> Vec<Peer> {
        let mut out = Vec::new();
        let mut seen: std::collections::HashMap<[u8; 6], (usize, usize)> =
            std::collections::HashMap::new();
        if raw.is_empty() {
            self.error(
                0,
                "peer".into(),
                "no [[peer]] table: at least one peer director MAC is required (packets from it stay unmarked)".into(),
            );
        }
        if raw.len() > MAX_PEERS as usize {
            self.error(
                raw[MAX_PEERS as usize].span().start,
                "peer".into(),
                format!(
                    "{} peers, more than the {MAX_PEERS} the peer map holds",
                    raw.len()
                ),
            );
        }
        for (i, p) in raw.iter().enumerate() {
            let n = i + 1;
            let p = p.get_ref();
            let name = self.name(&p.name, format!("peer[{n}].name"));
            match parse_mac(p.mac.get_ref()) {
                Ok(mac) => {
                    let line = self.line(p.mac.span().start);
                    if let Some((pn, pline)) = seen.get(&mac) {
                        self.error(
                            p.mac.span().start,
                            format!("peer[{n}].mac"),
                            format!(
                                "duplicate peer MAC, already given by peer[{pn}] on line {pline}"
                            ),
                        );
                    } else {
                        seen.insert(mac, (n, line));
                    }
                    out.push(Peer { mac, name });
                }
                Err(msg) => self.error(p.mac.span().start, format!("peer[{n}].mac"), msg),
            }
        }
        out
    }

    fn vips(&mut self, raw: &[Spanned<RawVip>]) -> Vec<Vip> {
        let mut out = Vec::new();
        let mut seen: std::collections::HashMap<VipKey, (usize, usize)> =
            std::collections::HashMap::new();
        if raw.len() > MAX_VIPS as usize {
            self.error(
                raw[MAX_VIPS as usize].span().start,
                "vip".into(),
                format!(
                    "{} VIPs, more than the {MAX_VIPS} the VIP map holds",
                    raw.len()
                ),
            );
        }
        for (i, sv) in raw.iter().enumerate() {
            let n = i + 1;
            let v = sv.get_ref();
            let before = self.diags.len();
            let name = self.name(&v.name, format!("vip[{n}].name"));
            let address = match parse_address(v.address.get_ref()) {
                Ok(a) => Some(a),
                Err(msg) => {
                    self.error(v.address.span().start, format!("vip[{n}].address"), msg);
                    None
                }
            };
            let port = match &v.port {
                None => None,
                Some(p) => match u16::try_from(*p.get_ref()) {
                    Ok(port) if port != 0 => Some(port),
                    _ => {
                        self.error(
                            p.span().start,
                            format!("vip[{n}].port"),
                            format!(
                                "{} is not a port in 1-65535 (omit `port` to cover every port)",
                                p.get_ref()
                            ),
                        );
                        None
                    }
                },
            };
            let protocol = match &v.protocol {
                None => Protocol::Tcp,
                Some(p) => match p.get_ref().parse() {
                    Ok(proto) => proto,
                    Err(()) => {
                        self.error(
                            p.span().start,
                            format!("vip[{n}].protocol"),
                            format!(
                                "unknown protocol {:?}: expected \"tcp\", \"udp\" or \"sctp\"",
                                p.get_ref()
                            ),
                        );
                        Protocol::Tcp
                    }
                },
            };
            let mark = match u32::try_from(*v.mark.get_ref()) {
                Ok(m) if m != 0 => m,
                Ok(_) => {
                    self.error(
                        v.mark.span().start,
                        format!("vip[{n}].mark"),
                        "must not be 0 (0 means \"unmarked\" to keepalived and IPVS)".into(),
                    );
                    0
                }
                Err(_) => {
                    self.error(
                        v.mark.span().start,
                        format!("vip[{n}].mark"),
                        format!("{} is outside 1-0xffffffff", v.mark.get_ref()),
                    );
                    0
                }
            };
            if self.diags.len() != before {
                continue;
            }
            let Some(address) = address else { continue };
            let vip = Vip {
                address,
                port,
                protocol,
                mark,
                name,
            };
            let key = vip.key();
            let line = self.line(sv.span().start);
            if let Some((pn, pline)) = seen.get(&key) {
                self.error(
                    v.address.span().start,
                    format!("vip[{n}]"),
                    format!(
                        "duplicate VIP {}: already given by vip[{pn}] on line {pline}",
                        format_endpoint(address, port, protocol)
                    ),
                );
                continue;
            }
            seen.insert(key, (n, line));
            out.push(vip);
        }
        out
    }
}

/// `00:0C:29:57:88:CE` or `00-0c-29-57-88-ce`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || {
        format!(
            "{s:?} is not a MAC address: expected six two-digit hex bytes separated by ':' or '-', e.g. \"00:0C:29:57:88:CE\""
        )
    };
    let sep = if s.contains(':') { ':' } else { '-' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] {
        return Err(format!(
            "{s:?} is the all-zero MAC, not a director's address"
        ));
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "{s:?} is a multicast/broadcast MAC and can never be a source address"
        ));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_address(s: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = s.trim().parse().map_err(|_| {
        if s.contains(':') {
            format!("{s:?} is not a valid IPv6 address")
        } else {
            format!("{s:?} is not a valid IPv4 address (four numbers 0-255 separated by dots)")
        }
    })?;
    if s.trim() != s {
        return Err(format!("{s:?} has surrounding whitespace"));
    }
    if addr.is_unspecified() {
        return Err(format!("{s} is the unspecified address, not a VIP"));
    }
    if addr.is_multicast() {
        return Err(format!("{s} is a multicast address, not a VIP"));
    }
    if let IpAddr::V4(a) = addr
        && a.is_broadcast()
    {
        return Err(format!("{s} is the broadcast address, not a VIP"));
    }
    Ok(addr)
}

fn toml_diagnostic(text: &str, e: &toml::de::Error) -> Diagnostic {
    let at = e.span().map_or(0, |s| s.start);
    let (line, column) = line_col(text, at);
    Diagnostic {
        line,
        column,
        field: field_at(text, at),
        message: e.message().trim().to_owned(),
    }
}

/// Best-effort name of what sits at byte `at`: the key of a `key = value` line, or the
/// table header.
fn field_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim();
        // which table are we in?
        let table = text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        return match table {
            Some(t) => format!("{t}.{key}"),
            None => key.to_owned(),
        };
    }
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_owned();
    }
    "config".to_owned()
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    line_col_bytes(text.as_bytes(), at)
}

fn line_col_bytes(bytes: &[u8], at: usize) -> (usize, usize) {
    let at = at.min(bytes.len());
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = at
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, col)
}

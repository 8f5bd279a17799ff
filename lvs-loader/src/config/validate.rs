//! Walking each section's spanned TOML by hand, so that unknown keys, type errors and
//! semantic errors all come out of one run, each with its position and indexed field
//! (`vip[2].mark`).
//!
//! What the file says is echoed only as escaped, bounded excerpts of the values of known
//! fields and of key names. TOML syntax errors show the parser's description and the
//! position, never the text: a config read through sudo may be someone else's secret
//! (`--config /etc/shadow`).

use std::collections::HashMap;

use lvs_ebpf_common::{MAX_PEERS, MAX_VIPS, VipKey};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    Peer, Protocol, Vip, format_endpoint,
    problems::Problems,
    sections::{MAX_TABLE_TOKENS, Section},
    values::{self, quote},
};
use crate::text;

type Value<'i> = Spanned<DeValue<'i>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Peer,
    Vip,
}

impl Kind {
    fn from_key(k: &str) -> Option<Self> {
        match k {
            "peer" => Some(Self::Peer),
            "vip" => Some(Self::Vip),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Vip => "vip",
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Self::Peer => "mac or name",
            Self::Vip => "address, port, protocol, mark or name",
        }
    }
}

/// A key for messages: as is when it is a bare TOML key, else quoted; escaped, bounded.
fn key_name(k: &str) -> String {
    if !k.is_empty()
        && k.len() <= text::EXCERPT_CHARS
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// "a string", "an integer", ...
fn a(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The value of a TOML integer, `None` when it does not fit in an i128.
fn integer(v: &DeValue<'_>) -> Option<(Option<i128>, String)> {
    match v {
        DeValue::Integer(i) => Some((
            i128::from_str_radix(i.as_str(), i.radix()).ok(),
            i.to_string(),
        )),
        _ => None,
    }
}

/// The header of a section: its key path and whether it is `[[...]]`.
enum Header {
    Table(Vec<String>),
    ArrayTable(Vec<String>),
    Broken,
}

fn parse_header(sec: &Section) -> Header {
    // The usual headers without a parse.
    let h = sec.header_text();
    if h.len() <= 16 {
        match h.split_whitespace().collect::<String>().as_str() {
            "[[vip]]" => return Header::ArrayTable(vec!["vip".into()]),
            "[[peer]]" => return Header::ArrayTable(vec!["peer".into()]),
            _ => {}
        }
    }
    let Ok(t) = DeTable::parse(sec.header_text()) else {
        return Header::Broken;
    };
    let mut path = Vec::new();
    let mut table = t.into_inner();
    loop {
        let mut entries = std::mem::take(&mut table).into_iter();
        let (Some((k, v)), None) = (entries.next(), entries.next()) else {
            return Header::Broken;
        };
        path.push(k.into_inner().into_owned());
        match v.into_inner() {
            DeValue::Table(t) if t.is_empty() => return Header::Table(path),
            DeValue::Table(t) => table = t,
            DeValue::Array(a) if a.len() == 1 => return Header::ArrayTable(path),
            _ => return Header::Broken,
        }
    }
}

struct Seen {
    n: usize,
    at: usize,
}

/// One port item of a VIP: a port or a range, where the file gives it.
const ELEMENT: &str = "a port (80) or a range (\"8000-8100\")";

struct PortItem {
    first: u16,
    last: u16,
    at: usize,
}

#[derive(Default)]
pub(super) struct Validator {
    pub problems: Problems,
    pub peers: Vec<Peer>,
    pub vips: Vec<Vip>,
    /// `[[peer]]` / `[[vip]]` tables (and inline-array entries) seen.
    n_peers: usize,
    n_vips: usize,
    /// Where the VIP entries or peers first overflowed the maps.
    vips_over: Option<(usize, usize)>,
    peers_over: Option<usize>,
    /// Tables after the overflow, counted but not checked.
    unchecked_vips: usize,
    seen_vips: HashMap<VipKey, Seen>,
    seen_peers: HashMap<[u8; 6], Seen>,
    /// Where the root section gave `peer = [...]` / `vip = [...]` (TOML forbids adding
    /// `[[peer]]` / `[[vip]]` tables to them).
    inline_peer: Option<usize>,
    inline_vip: Option<usize>,
}

impl Validator {
    fn inline(&mut self, kind: Kind) -> &mut Option<usize> {
        match kind {
            Kind::Peer => &mut self.inline_peer,
            Kind::Vip => &mut self.inline_vip,
        }
    }

    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Peer => self.n_peers,
            Kind::Vip => self.n_vips,
        }
    }

    /// Numbers the next `kind` table: `vip[3]`.
    fn next_entry(&mut self, kind: Kind) -> usize {
        match kind {
            Kind::Peer => {
                self.n_peers += 1;
                self.n_peers
            }
            Kind::Vip => {
                self.n_vips += 1;
                self.n_vips
            }
        }
    }

    pub fn section(&mut self, sec: &Section) {
        for &at in &sec.stray_boms {
            self.problems.push(
                at,
                "toml",
                "a byte order mark (U+FEFF) is allowed only at the start of the file",
            );
        }
        let header = if sec.header {
            parse_header(sec)
        } else {
            Header::Table(Vec::new())
        };
        // Which entry this section is, numbered even when it cannot be checked.
        let entry = match &header {
            Header::ArrayTable(p) if p.len() == 1 => {
                Kind::from_key(&p[0]).map(|k| (k, self.next_entry(k)))
            }
            _ => None,
        };
        if let Some((Kind::Vip, _)) = entry
            && self.vips_over.is_some()
        {
            self.unchecked_vips += 1;
            return;
        }
        let label = entry.map_or_else(|| "toml".to_owned(), |(k, n)| format!("{}[{n}]", k.name()));
        if sec.too_large {
            self.problems.push(
                sec.start,
                label,
                format!(
                    "this table has more than {MAX_TABLE_TOKENS} TOML tokens (keys, values, punctuation): split it; write long port lists as ranges (\"8000-8100\")"
                ),
            );
            return;
        }
        let (table, errors) = DeTable::parse_recoverable(sec.text());
        if !errors.is_empty() {
            self.syntax_errors(sec, &label, &errors);
            return;
        }
        let table = table.into_inner();
        if !sec.header {
            self.root(sec, &table);
            return;
        }
        let path = match header {
            Header::Table(p) | Header::ArrayTable(p) => p,
            Header::Broken => return,
        };
        let kind = Kind::from_key(&path[0]);
        if let Some(k) = kind
            && let Some(first) = *self.inline(k)
        {
            self.problems.push_with_line_of(
                sec.start,
                k.name(),
                format!(
                    "TOML cannot add tables to `{0}`: it was given as an inline array `{0} = [...]`",
                    k.name()
                ),
                first,
            );
            return;
        }
        match (kind, entry) {
            (Some(k), Some((_, n))) => {
                let Some(DeValue::Array(a)) = table.get(k.name()).map(|v| v.get_ref()) else {
                    return;
                };
                if let Some(DeValue::Table(t)) = a.first().map(|v| v.get_ref()) {
                    self.entry(sec, k, n, t, sec.start);
                }
            }
            (Some(k), None) if path.len() > 1 && self.count(k) > 0 => {
                // `[vip.x]` after `[[vip]]`: TOML makes it a sub-table of the last vip.
                self.problems.push(
                    sec.start,
                    format!("{}[{}].{}", k.name(), self.count(k), key_name(&path[1])),
                    format!("unknown key: a {} table has {}", k.name(), k.keys()),
                );
            }
            (Some(k), None) => self.problems.push(
                sec.start,
                k.name(),
                format!(
                    "must be an array of tables: write [[{0}]] (double brackets), one per {0}",
                    k.name()
                ),
            ),
            (None, _) => self.problems.push(
                sec.start,
                path.iter()
                    .map(|k| key_name(k))
                    .collect::<Vec<_>>()
                    .join("."),
                "unknown table: a config has [[peer]] and [[vip]] tables only",
            ),
        }
    }

    /// TOML's own errors: its description and the position (never the text), the first
    /// one of each line.
    fn syntax_errors(&mut self, sec: &Section, label: &str, errors: &[toml::de::Error]) {
        let mut errs: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.span().map_or(0, |s| s.start), e.message()))
            .collect();
        errs.sort_by_key(|&(at, _)| at);
        let text = sec.text().as_bytes();
        let (mut line, mut scanned, mut last_line) = (0usize, 0usize, None);
        for (at, msg) in errs {
            let at = at.min(text.len());
            line += text[scanned..at].iter().filter(|&&c| c == b'\n').count();
            scanned = at;
            if last_line == Some(line) {
                continue;
            }
            last_line = Some(line);
            self.problems.push(
                sec.file_offset(at),
                label,
                format!(
                    "TOML syntax: {}",
                    text::excerpt(msg.trim(), 4 * text::EXCERPT_CHARS)
                ),
            );
        }
    }

    /// Before the first header: only `peer = [...]` and `vip = [...]` make sense.
    fn root(&mut self, sec: &Section, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let at = sec.file_offset(k.span().start);
            let Some(kind) = Kind::from_key(k.get_ref()) else {
                self.problems.push(
                    at,
                    key_name(k.get_ref()),
                    "unknown key: a config has [[peer]] and [[vip]] tables only",
                );
                continue;
            };
            let DeValue::Array(items) = v.get_ref() else {
                self.problems.push(
                    at,
                    kind.name(),
                    format!(
                        "must be an array of tables: write [[{}]] tables, found {}",
                        kind.name(),
                        a(v.get_ref())
                    ),
                );
                continue;
            };
            *self.inline(kind) = Some(at);
            for item in items.iter() {
                let n = self.next_entry(kind);
                let at = sec.file_offset(item.span().start);
                match item.get_ref() {
                    DeValue::Table(t) => self.entry(sec, kind, n, t, at),
                    other => self.problems.push(
                        at,
                        format!("{}[{n}]", kind.name()),
                        format!("expected a table {{ ... }}, found {}", a(other)),
                    ),
                }
            }
        }
    }

    fn entry(&mut self, sec: &Section, kind: Kind, n: usize, t: &DeTable<'_>, at: usize) {
        match kind {
            Kind::Peer => self.peer(sec, n, t, at),
            Kind::Vip => self.vip(sec, n, t, at),
        }
    }

    /// Known keys of `t` by name; every other key is reported.
    fn fields<'t, 'i, const N: usize>(
        &mut self,
        sec: &Section,
        kind: Kind,
        n: usize,
        t: &'t DeTable<'i>,
        names: [&str; N],
    ) -> [Option<&'t Value<'i>>; N] {
        let mut out = [None; N];
        for (k, v) in t.iter() {
            match names.iter().position(|&name| name == k.get_ref().as_ref()) {
                Some(i) => out[i] = Some(v),
                None => self.problems.push(
                    sec.file_offset(k.span().start),
                    format!("{}[{n}].{}", kind.name(), key_name(k.get_ref())),
                    format!("unknown key: a {} table has {}", kind.name(), kind.keys()),
                ),
            }
        }
        out
    }

    fn missing(&mut self, at: usize, field: String, example: &str) {
        self.problems
            .push(at, field, format!("missing (required), e.g. {example}"));
    }

    /// A string value, or a type error.
    fn string<'v>(
        &mut self,
        sec: &Section,
        v: &'v Value<'_>,
        field: &str,
        example: &str,
    ) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            other => {
                self.type_error(sec, v, field, example, other);
                None
            }
        }
    }

    fn type_error(
        &mut self,
        sec: &Section,
        v: &Value<'_>,
        field: &str,
        expected: &str,
        found: &DeValue<'_>,
    ) {
        self.problems.push(
            sec.file_offset(v.span().start),
            field,
            format!("expected {expected}, found {}", a(found)),
        );
    }

    fn name(&mut self, sec: &Section, v: Option<&Value<'_>>, field: &str) -> Option<String> {
        let v = v?;
        let s = self.string(sec, v, field, "a string (name = \"web\")")?;
        match values::check_name(s) {
            Ok(()) => Some(s.to_owned()),
            Err(msg) => {
                self.problems
                    .push(sec.file_offset(v.span().start), field, msg);
                None
            }
        }
    }

    fn peer(&mut self, sec: &Section, n: usize, t: &DeTable<'_>, at: usize) {
        if n > MAX_PEERS as usize {
            self.peers_over.get_or_insert(at);
            return;
        }
        let [mac, name] = self.fields(sec, Kind::Peer, n, t, ["mac", "name"]);
        let name = self.name(sec, name, &format!("peer[{n}].name"));
        let field = format!("peer[{n}].mac");
        let Some(v) = mac else {
            return self.missing(at, field, "mac = \"00:0C:29:57:88:CE\"");
        };
        let Some(s) = self.string(sec, v, &field, "a string (mac = \"00:0C:29:57:88:CE\")") else {
            return;
        };
        let at = sec.file_offset(v.span().start);
        match values::parse_mac(s) {
            Ok(mac) => {
                if let Some(first) = self.seen_peers.get(&mac) {
                    self.problems.push_with_line_of(
                        at,
                        field,
                        format!("duplicate peer MAC, already given by peer[{}]", first.n),
                        first.at,
                    );
                } else {
                    self.seen_peers.insert(mac, Seen { n, at });
                    self.peers.push(Peer { mac, name });
                }
            }
            Err(msg) => self.problems.push(at, field, msg),
        }
    }

    fn vip(&mut self, sec: &Section, n: usize, t: &DeTable<'_>, at: usize) {
        let before = self.problems.found();
        let [address, port, protocol, mark, name] = self.fields(
            sec,
            Kind::Vip,
            n,
            t,
            ["address", "port", "protocol", "mark", "name"],
        );
        let name = self.name(sec, name, &format!("vip[{n}].name"));
        let f = |k: &str| format!("vip[{n}].{k}");

        let address = match address {
            None => {
                self.missing(at, f("address"), "address = \"172.17.85.56\"");
                None
            }
            Some(v) => self
                .string(
                    sec,
                    v,
                    &f("address"),
                    "a string (address = \"172.17.85.56\")",
                )
                .and_then(|s| match values::parse_address(s) {
                    Ok(a) => Some((a, sec.file_offset(v.span().start))),
                    Err(msg) => {
                        self.problems
                            .push(sec.file_offset(v.span().start), f("address"), msg);
                        None
                    }
                }),
        };
        let ports = port.map(|v| self.ports(sec, v, &f("port")));
        let protocol = match protocol {
            None => Protocol::Tcp,
            Some(v) => self
                .string(sec, v, &f("protocol"), "a string (protocol = \"udp\")")
                .and_then(|s| match s.parse() {
                    Ok(p) => Some(p),
                    Err(()) => {
                        self.problems.push(
                            sec.file_offset(v.span().start),
                            f("protocol"),
                            format!(
                                "unknown protocol {}: expected \"tcp\", \"udp\" or \"sctp\"",
                                quote(s)
                            ),
                        );
                        None
                    }
                })
                .unwrap_or(Protocol::Tcp),
        };
        let mark = match mark {
            None => {
                self.missing(at, f("mark"), "mark = 0x3");
                None
            }
            Some(v) => match integer(v.get_ref()) {
                None => {
                    self.type_error(sec, v, &f("mark"), "an integer (mark = 0x3)", v.get_ref());
                    None
                }
                Some((value, literal)) => match values::mark_number(value, &literal) {
                    Ok(m) => Some(m),
                    Err(msg) => {
                        self.problems
                            .push(sec.file_offset(v.span().start), f("mark"), msg);
                        None
                    }
                },
            },
        };
        if self.problems.found() != before {
            return;
        }
        let (Some((address, address_at)), Some(mark)) = (address, mark) else {
            return;
        };
        let items = match ports {
            None => vec![None],
            Some(Some(items)) => items.into_iter().map(Some).collect(),
            Some(None) => return,
        };
        for item in items {
            let (range, item_at) = match item {
                None => (None, address_at),
                Some(i) => (Some((i.first, i.last)), i.at),
            };
            let (first, last) = range.unwrap_or((0, 0));
            let mut dups = 0usize;
            let mut first_dup = None;
            for p in first..=last {
                let vip = Vip {
                    address,
                    port: range.map(|_| p),
                    protocol,
                    mark,
                    name: name.clone(),
                };
                let key = vip.key();
                if let Some(seen) = self.seen_vips.get(&key) {
                    dups += 1;
                    first_dup.get_or_insert((vip.port, seen.n, seen.at));
                    continue;
                }
                if self.vips.len() == MAX_VIPS as usize {
                    self.vips_over = Some((item_at, n));
                    return;
                }
                self.seen_vips.insert(key, Seen { n, at: item_at });
                self.vips.push(vip);
            }
            if let Some((port, first_n, first_at)) = first_dup {
                let more = match dups {
                    1 => String::new(),
                    d => format!(" (and {} more ports of this range)", d - 1),
                };
                self.problems.push_with_line_of(
                    item_at,
                    format!("vip[{n}]"),
                    format!(
                        "duplicate VIP {}{more}: already given by vip[{first_n}]",
                        format_endpoint(address, port, protocol)
                    ),
                    first_at,
                );
            }
        }
    }

    /// `port = 80`, `port = "8000-8100"` or `port = [80, 443, "8000-8100"]`.
    fn ports(&mut self, sec: &Section, v: &Value<'_>, field: &str) -> Option<Vec<PortItem>> {
        match v.get_ref() {
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.problems.push(
                        sec.file_offset(v.span().start),
                        field,
                        "an empty port list: omit `port` to cover every port",
                    );
                    return None;
                }
                let before = self.problems.found();
                let out: Vec<PortItem> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        let f = format!("{field}[{}]", i + 1);
                        match item.get_ref() {
                            DeValue::Array(_) | DeValue::Table(_) => {
                                self.type_error(
                                    sec,
                                    item,
                                    &f,
                                    ELEMENT,
                                    item.get_ref(),
                                );
                                None
                            }
                            _ => self.port_item(sec, item, &f, ELEMENT),
                        }
                    })
                    .collect();
                (self.problems.found() == before).then_some(out)
            }
            _ => self
                .port_item(sec, v, field, "a port (port = 80), a list (port = [80, 443]) or a range (port = \"8000-8100\")")
                .map(|i| vec![i]),
        }
    }

    fn port_item(
        &mut self,
        sec: &Section,
        v: &Value<'_>,
        field: &str,
        expected: &str,
    ) -> Option<PortItem> {
        let at = sec.file_offset(v.span().start);
        let range = match v.get_ref() {
            DeValue::String(s) => values::parse_port_range(s),
            other => match integer(other) {
                Some((value, literal)) => values::port_number(value, &literal).map(|p| (p, p)),
                None => {
                    self.type_error(sec, v, field, expected, other);
                    return None;
                }
            },
        };
        match range {
            Ok((first, last)) => Some(PortItem { first, last, at }),
            Err(msg) => {
                self.problems.push(at, field, msg);
                None
            }
        }
    }

    /// Problems that need the whole file: no peer at all, maps too small.
    pub fn finish(mut self) -> (Vec<Peer>, Vec<Vip>, Problems) {
        if self.n_peers == 0 {
            self.problems.push(
                0,
                "peer",
                "no [[peer]] table: at least one peer director MAC is required (packets from it stay unmarked)",
            );
        }
        if let Some(at) = self.peers_over {
            self.problems.push(
                at,
                "peer",
                format!(
                    "{} peers, more than the {MAX_PEERS} the peer map holds",
                    self.n_peers
                ),
            );
        }
        if let Some((at, n)) = self.vips_over {
            let unchecked = match self.unchecked_vips {
                0 => String::new(),
                u => format!("; the {u} [[vip]] tables after it were not checked"),
            };
            self.problems.push(
                at,
                "vip",
                format!(
                    "vip[{n}] adds VIP entry {} (each port of a list or range is one entry): more than the {MAX_VIPS} the VIP map holds{unchecked}",
                    MAX_VIPS as usize + 1
                ),
            );
        }
        (self.peers, self.vips, self.problems)
    }
}

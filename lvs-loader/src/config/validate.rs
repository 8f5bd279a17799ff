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
    Peer, Vip,
    problems::Problems,
    sections::{MAX_TABLE_TOKENS, Section},
    values::quote,
};
use crate::text;

mod daemon;
mod entries;
mod simple;

pub use daemon::MAX_DAEMON_INTERFACES;
use entries::a;

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
            Self::Vip => "address, port, protocol, mark, mark_mask or name",
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

/// The header of a section: its key path and whether it is `[[...]]`.
enum Header {
    Table(Vec<String>),
    ArrayTable(Vec<String>),
    /// `[[vip]]` or `[[peer]]`: `ArrayTable(["vip"])`, without allocating.
    Entry(Kind),
    Broken,
}

fn parse_header(sec: &Section) -> Header {
    // The usual headers without a parse.
    let h = sec.header_text();
    if h.len() <= 16 {
        // Its characters other than (Unicode) whitespace, without allocating; a
        // non-ASCII one matches neither.
        let mut compact = [0u8; 16];
        let mut len = 0;
        for c in h.chars().filter(|c| !c.is_whitespace()) {
            if !c.is_ascii() || len == compact.len() {
                len = 0;
                break;
            }
            compact[len] = c as u8;
            len += 1;
        }
        match &compact[..len] {
            b"[[vip]]" => return Header::Entry(Kind::Vip),
            b"[[peer]]" => return Header::Entry(Kind::Peer),
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
    seen_vips: HashMap<VipKey, Seen, crate::slots::VipHasher>,
    seen_peers: HashMap<[u8; 6], Seen>,
    /// Where the root section gave `peer = [...]` / `vip = [...]` (TOML forbids adding
    /// `[[peer]]` / `[[vip]]` tables to them).
    inline_peer: Option<usize>,
    inline_vip: Option<usize>,
    /// The `[daemon]` table: where it is, and its settings.
    daemon_at: Option<usize>,
    pub daemon: super::Daemon,
    /// The top-level `mark_mask` (before any table) and where it is.
    global_mask: Option<(u32, usize)>,
    /// Distinct masks other than 0xffffffff seen so far (the datapath's mask classes).
    masks: Vec<u32>,
    /// Tables read by [`simple`], without toml's parser.
    simple_tables: usize,
}

impl Validator {
    /// A validator for a config of `len` bytes, with room for the VIP entries it likely
    /// holds (a `[[vip]]` table takes 30 bytes or more), so that a large config's
    /// tables are not regrown and rehashed on the way.
    pub fn for_text(len: usize) -> Self {
        let n = (len / 32).min(MAX_VIPS as usize);
        Self {
            vips: Vec::with_capacity(n),
            seen_vips: HashMap::with_capacity_and_hasher(n, Default::default()),
            ..Self::default()
        }
    }

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
            Header::Entry(k) => Some((*k, self.next_entry(*k))),
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
        let label =
            || entry.map_or_else(|| "toml".to_owned(), |(k, n)| format!("{}[{n}]", k.name()));
        if sec.too_large {
            self.problems.push(
                sec.start,
                label(),
                format!(
                    "this table has more than {MAX_TABLE_TOKENS} TOML tokens (keys, values, punctuation): split it; write long port lists as ranges (\"8000-8100\")"
                ),
            );
            return;
        }
        // The usual `[[vip]]` / `[[peer]]` table without toml's parser: the same checks
        // on the same values.
        if let Some((kind, n)) = entry
            && self.inline(kind).is_none()
            && let Some(fields) = simple::fields(sec.text(), kind)
        {
            self.simple_tables += 1;
            return self.entry_fields(sec, kind, n, sec.start, |_| {
                fields.each_ref().map(Option::as_ref)
            });
        }
        let (table, errors) = DeTable::parse_recoverable(sec.text());
        if !errors.is_empty() {
            self.syntax_errors(sec, &label(), &errors);
            return;
        }
        let table = table.into_inner();
        if !sec.header {
            self.root(sec, &table);
            return;
        }
        let is_array = matches!(header, Header::ArrayTable(_) | Header::Entry(_));
        let path = match header {
            Header::Table(p) | Header::ArrayTable(p) => p,
            Header::Entry(k) => vec![k.name().to_owned()],
            Header::Broken => {
                return self.problems.push(
                    sec.start,
                    "toml",
                    "cannot read this table header: expected [[peer]], [[vip]] or [daemon]",
                );
            }
        };
        if path[0] == "daemon" {
            return self.daemon_section(sec, &table, &path, entry.is_none() && !is_array);
        }
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
                "unknown table: a config has [[peer]], [[vip]] and [daemon] tables only",
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

    /// Before the first header: `mark_mask`, and `peer = [...]`, `vip = [...]`,
    /// `daemon = {...}`.
    fn root(&mut self, sec: &Section, table: &DeTable<'_>) {
        // The global mask first: it applies to every VIP, also to those of a `vip = [...]`
        // written before it.
        if let Some(v) = table.get("mark_mask")
            && let Some((m, at)) = self.mask(sec, v, "mark_mask")
            && self.mask_class(m, at, "mark_mask")
        {
            self.global_mask = Some((m, at));
        }
        for (k, v) in table.iter() {
            let at = sec.file_offset(k.span().start);
            if k.get_ref() == "daemon" {
                self.daemon_inline(sec, v, at);
                continue;
            }
            if k.get_ref() == "mark_mask" {
                continue;
            }
            let Some(kind) = Kind::from_key(k.get_ref()) else {
                self.problems.push(
                    at,
                    key_name(k.get_ref()),
                    "unknown key: a config has a mark_mask and [[peer]], [[vip]] and [daemon] tables only",
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

    /// Problems that need the whole file: no peer at all, maps too small.
    pub fn finish(mut self) -> (Vec<Peer>, Vec<Vip>, super::Daemon, Problems) {
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
        (self.peers, self.vips, self.daemon, self.problems)
    }
}

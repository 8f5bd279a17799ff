//! The fields of one `[[peer]]` or `[[vip]]` table: known keys, types, values, and the
//! expansion of a VIP's port list or range into one map entry per port.

use std::{collections::hash_map::Entry, fmt};

use lvs_ebpf_common::{MASK_CLASSES, MAX_PEERS, MAX_VIPS};
use toml::de::{DeTable, DeValue};

use super::{Kind, Seen, Validator, Value, key_name};
use crate::config::{
    Peer, Protocol, Vip, format_endpoint,
    sections::Section,
    values::{self, quote},
};

/// "a string", "an integer", ...
pub(super) fn a(v: &DeValue<'_>) -> &'static str {
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

/// A field's value as the checks see it: toml's (any table) or that of a
/// [simple](super::simple) table, which was read without toml and holds strings and
/// integers only.
pub(super) trait FieldValue: Sized {
    /// Where the value starts in its section's text.
    fn start(&self) -> usize;
    fn as_str(&self) -> Option<&str>;
    /// The value of an integer (`None` when it does not fit in an i128) and its literal
    /// (for messages).
    fn integer(&self) -> Option<(Option<i128>, &dyn fmt::Display)>;
    /// The items of an array.
    fn items(&self) -> Option<&[Self]>;
    /// "a string", "an integer", ...
    fn a(&self) -> &'static str;
}

impl FieldValue for Value<'_> {
    fn start(&self) -> usize {
        self.span().start
    }

    fn as_str(&self) -> Option<&str> {
        match self.get_ref() {
            DeValue::String(s) => Some(s),
            _ => None,
        }
    }

    fn integer(&self) -> Option<(Option<i128>, &dyn fmt::Display)> {
        match self.get_ref() {
            DeValue::Integer(i) => Some((i128::from_str_radix(i.as_str(), i.radix()).ok(), i)),
            _ => None,
        }
    }

    fn items(&self) -> Option<&[Self]> {
        match self.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => None,
        }
    }

    fn a(&self) -> &'static str {
        a(self.get_ref())
    }
}

/// A field of a numbered table (`vip[3].mark`), formatted only when a problem names it
/// (a config of 131,072 VIPs would otherwise format a million field names it never
/// shows).
#[derive(Clone, Copy)]
pub(super) struct EntryField {
    kind: Kind,
    n: usize,
    key: &'static str,
}

impl fmt::Display for EntryField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}].{}", self.kind.name(), self.n, self.key)
    }
}

/// A field name for messages: a `&str` or an [`EntryField`].
pub(super) trait FieldName: fmt::Display + Copy {}
impl FieldName for &str {}
impl FieldName for EntryField {}

/// The keys of a `[[peer]]` and of a `[[vip]]` table, in the order the checks take them.
pub(super) const PEER_KEYS: [&str; 2] = ["mac", "name"];
pub(super) const VIP_KEYS: [&str; 6] = ["address", "port", "protocol", "mark", "mark_mask", "name"];

const ELEMENT: &str = "a port (80) or a range (\"8000-8100\")";

struct PortItem {
    first: u16,
    last: u16,
    at: usize,
}

impl Validator {
    pub(super) fn entry(
        &mut self,
        sec: &Section,
        kind: Kind,
        n: usize,
        t: &DeTable<'_>,
        at: usize,
    ) {
        self.entry_fields(sec, kind, n, at, |v| match kind {
            Kind::Peer => {
                let [mac, name] = v.fields(sec, kind, n, t, PEER_KEYS);
                [mac, name, None, None, None, None]
            }
            Kind::Vip => v.fields(sec, kind, n, t, VIP_KEYS),
        });
    }

    /// Checks table `n` of `kind`; `fields` reads its known fields (in [`PEER_KEYS`] or
    /// [`VIP_KEYS`] order) and reports the unknown ones, unless the table is one too many.
    pub(super) fn entry_fields<'v, V: FieldValue + 'v>(
        &mut self,
        sec: &Section,
        kind: Kind,
        n: usize,
        at: usize,
        fields: impl FnOnce(&mut Self) -> [Option<&'v V>; 6],
    ) {
        match kind {
            Kind::Peer => {
                if n > MAX_PEERS as usize {
                    self.peers_over.get_or_insert(at);
                    return;
                }
                let [mac, name, ..] = fields(self);
                self.peer(sec, n, [mac, name], at);
            }
            Kind::Vip => {
                let f = fields(self);
                self.vip(sec, n, f, at);
            }
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

    fn missing(&mut self, at: usize, field: impl FieldName, example: &str) {
        self.problems.push(
            at,
            field.to_string(),
            format!("missing (required), e.g. {example}"),
        );
    }

    /// A string value, or a type error.
    pub(super) fn string<'v>(
        &mut self,
        sec: &Section,
        v: &'v impl FieldValue,
        field: impl FieldName,
        example: &str,
    ) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.type_error(sec, v, field, example);
        }
        s
    }

    pub(super) fn type_error(
        &mut self,
        sec: &Section,
        v: &impl FieldValue,
        field: impl FieldName,
        expected: &str,
    ) {
        self.problems.push(
            sec.file_offset(v.start()),
            field.to_string(),
            format!("expected {expected}, found {}", v.a()),
        );
    }

    fn name(
        &mut self,
        sec: &Section,
        v: Option<&impl FieldValue>,
        field: impl FieldName,
    ) -> Option<String> {
        let v = v?;
        let s = self.string(sec, v, field, "a string (name = \"web\")")?;
        match values::check_name(s) {
            Ok(()) => Some(s.to_owned()),
            Err(msg) => {
                self.problems
                    .push(sec.file_offset(v.start()), field.to_string(), msg);
                None
            }
        }
    }

    /// A `[[peer]]` table's known fields, in [`PEER_KEYS`] order.
    fn peer<V: FieldValue>(
        &mut self,
        sec: &Section,
        n: usize,
        [mac, name]: [Option<&V>; 2],
        at: usize,
    ) {
        let f = |key| EntryField {
            kind: Kind::Peer,
            n,
            key,
        };
        let name = self.name(sec, name, f("name"));
        let field = f("mac");
        let Some(v) = mac else {
            return self.missing(at, field, "mac = \"00:0C:29:57:88:CE\"");
        };
        let Some(s) = self.string(sec, v, field, "a string (mac = \"00:0C:29:57:88:CE\")") else {
            return;
        };
        let at = sec.file_offset(v.start());
        match values::parse_mac(s) {
            Ok(mac) => {
                if let Some(first) = self.seen_peers.get(&mac) {
                    self.problems.push_with_line_of(
                        at,
                        field.to_string(),
                        format!("duplicate peer MAC, already given by peer[{}]", first.n),
                        first.at,
                    );
                } else {
                    self.seen_peers.insert(mac, Seen { n, at });
                    self.peers.push(Peer { mac, name });
                }
            }
            Err(msg) => self.problems.push(at, field.to_string(), msg),
        }
    }

    /// A `[[vip]]` table's known fields, in [`VIP_KEYS`] order.
    fn vip<V: FieldValue>(
        &mut self,
        sec: &Section,
        n: usize,
        [address, port, protocol, mark, mark_mask, name]: [Option<&V>; 6],
        at: usize,
    ) {
        let before = self.problems.found();
        let f = |key| EntryField {
            kind: Kind::Vip,
            n,
            key,
        };
        let name = self.name(sec, name, f("name"));

        let address = match address {
            None => {
                self.missing(at, f("address"), "address = \"172.17.85.56\"");
                None
            }
            Some(v) => self
                .string(
                    sec,
                    v,
                    f("address"),
                    "a string (address = \"172.17.85.56\")",
                )
                .and_then(|s| match values::parse_address(s) {
                    Ok(a) => Some((a, sec.file_offset(v.start()))),
                    Err(msg) => {
                        self.problems.push(
                            sec.file_offset(v.start()),
                            f("address").to_string(),
                            msg,
                        );
                        None
                    }
                }),
        };
        let ports = port.map(|v| self.ports(sec, v, f("port")));
        let protocol = match protocol {
            None => Protocol::Tcp,
            Some(v) => self
                .string(sec, v, f("protocol"), "a string (protocol = \"udp\")")
                .and_then(|s| match s.parse() {
                    Ok(p) => Some(p),
                    Err(()) => {
                        self.problems.push(
                            sec.file_offset(v.start()),
                            f("protocol").to_string(),
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
        let own_mask = mark_mask.and_then(|v| self.mask(sec, v, f("mark_mask")));
        let mark_at = mark.map(|v| sec.file_offset(v.start()));
        let mark = match mark {
            None => {
                self.missing(at, f("mark"), "mark = 0x3");
                None
            }
            Some(v) => match v.integer() {
                None => {
                    self.type_error(sec, v, f("mark"), "an integer (mark = 0x3)");
                    None
                }
                Some((value, literal)) => match values::mark_number(value, literal) {
                    Ok(m) => Some(m),
                    Err(msg) => {
                        self.problems
                            .push(sec.file_offset(v.start()), f("mark").to_string(), msg);
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
        let mark_mask = match own_mask {
            Some((m, m_at)) => {
                if !self.mask_class(m, m_at, f("mark_mask")) {
                    return;
                }
                m
            }
            None => self.global_mask.map_or(u32::MAX, |(m, _)| m),
        };
        if mark & !mark_mask != 0 {
            let whose = match own_mask {
                Some(_) => "its mark_mask",
                None => "the global mark_mask",
            };
            return self.problems.push(
                mark_at.unwrap_or(at),
                f("mark").to_string(),
                format!(
                    "{mark:#x} has bits outside {whose} {mark_mask:#x} ({:#x}): xt_MARK (--set-xmark {mark:#x}/{mark_mask:#x}) would toggle those bits of other users' marks; lvs-ebpf refuses it: keep the mark inside the mask",
                    mark & !mark_mask
                ),
            );
        }
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
                    mark_mask,
                    name: name.clone(),
                };
                let seen = match self.seen_vips.entry(vip.key()) {
                    Entry::Occupied(seen) => {
                        let seen = seen.get();
                        dups += 1;
                        first_dup.get_or_insert((vip.port, seen.n, seen.at));
                        continue;
                    }
                    Entry::Vacant(v) => v,
                };
                if self.vips.len() == MAX_VIPS as usize {
                    self.vips_over = Some((item_at, n));
                    return;
                }
                seen.insert(Seen { n, at: item_at });
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

    /// A `mark_mask` value and where it is, or a problem.
    pub(super) fn mask(
        &mut self,
        sec: &Section,
        v: &impl FieldValue,
        field: impl FieldName,
    ) -> Option<(u32, usize)> {
        let at = sec.file_offset(v.start());
        let Some((value, literal)) = v.integer() else {
            self.type_error(sec, v, field, "an integer (mark_mask = 0xff00)");
            return None;
        };
        match values::mask_number(value, literal) {
            Ok(m) => Some((m, at)),
            Err(msg) => {
                self.problems.push(at, field.to_string(), msg);
                None
            }
        }
    }

    /// Counts `mask` among the distinct masks other than the full one: the datapath holds
    /// at most [`MASK_CLASSES`]` - 1` of them. `false` (and a problem) when over.
    pub(super) fn mask_class(&mut self, mask: u32, at: usize, field: impl FieldName) -> bool {
        if mask == u32::MAX || self.masks.contains(&mask) {
            return true;
        }
        if self.masks.len() + 1 >= MASK_CLASSES {
            self.problems.push(
                at,
                field.to_string(),
                format!(
                    "a {}th distinct mark_mask: a config may use at most {} masks besides 0xffffffff",
                    MASK_CLASSES,
                    MASK_CLASSES - 1
                ),
            );
            return false;
        }
        self.masks.push(mask);
        true
    }

    /// `port = 80`, `port = "8000-8100"` or `port = [80, 443, "8000-8100"]`.
    fn ports<V: FieldValue>(
        &mut self,
        sec: &Section,
        v: &V,
        field: impl FieldName,
    ) -> Option<Vec<PortItem>> {
        match v.items() {
            Some(items) => {
                if items.is_empty() {
                    self.problems.push(
                        sec.file_offset(v.start()),
                        field.to_string(),
                        "an empty port list: omit `port` to cover every port",
                    );
                    return None;
                }
                let before = self.problems.found();
                let out: Vec<PortItem> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        // An array or table item is neither a string nor an integer:
                        // port_item reports it as a type error.
                        let f = format!("{field}[{}]", i + 1);
                        self.port_item(sec, item, f.as_str(), ELEMENT)
                    })
                    .collect();
                (self.problems.found() == before).then_some(out)
            }
            None => self
                .port_item(sec, v, field, "a port (port = 80), a list (port = [80, 443]) or a range (port = \"8000-8100\")")
                .map(|i| vec![i]),
        }
    }

    fn port_item(
        &mut self,
        sec: &Section,
        v: &impl FieldValue,
        field: impl FieldName,
        expected: &str,
    ) -> Option<PortItem> {
        let at = sec.file_offset(v.start());
        let range = match (v.as_str(), v.integer()) {
            (Some(s), _) => values::parse_port_range(s),
            (None, Some((value, literal))) => values::port_number(value, literal).map(|p| (p, p)),
            (None, None) => {
                self.type_error(sec, v, field, expected);
                return None;
            }
        };
        match range {
            Ok((first, last)) => Some(PortItem { first, last, at }),
            Err(msg) => {
                self.problems.push(at, field.to_string(), msg);
                None
            }
        }
    }
}

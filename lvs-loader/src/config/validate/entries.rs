//! The fields of one `[[peer]]` or `[[vip]]` table: known keys, types, values, and the
//! expansion of a VIP's port list or range into one map entry per port.

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
    pub(super) fn string<'v>(
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

    pub(super) fn type_error(
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
        let [address, port, protocol, mark, mark_mask, name] = self.fields(
            sec,
            Kind::Vip,
            n,
            t,
            ["address", "port", "protocol", "mark", "mark_mask", "name"],
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
        let own_mask = mark_mask.and_then(|v| self.mask(sec, v, &f("mark_mask")));
        let mark_at = mark.map(|v| sec.file_offset(v.span().start));
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
        let mark_mask = match own_mask {
            Some((m, m_at)) => {
                if !self.mask_class(m, m_at, &f("mark_mask")) {
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
                f("mark"),
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

    /// A `mark_mask` value and where it is, or a problem.
    pub(super) fn mask(
        &mut self,
        sec: &Section,
        v: &Value<'_>,
        field: &str,
    ) -> Option<(u32, usize)> {
        let at = sec.file_offset(v.span().start);
        let Some((value, literal)) = integer(v.get_ref()) else {
            self.type_error(
                sec,
                v,
                field,
                "an integer (mark_mask = 0xff00)",
                v.get_ref(),
            );
            return None;
        };
        match values::mask_number(value, &literal) {
            Ok(m) => Some((m, at)),
            Err(msg) => {
                self.problems.push(at, field, msg);
                None
            }
        }
    }

    /// Counts `mask` among the distinct masks other than the full one: the datapath holds
    /// at most [`MASK_CLASSES`]` - 1` of them. `false` (and a problem) when over.
    pub(super) fn mask_class(&mut self, mask: u32, at: usize, field: &str) -> bool {
        if mask == u32::MAX || self.masks.contains(&mask) {
            return true;
        }
        if self.masks.len() + 1 >= MASK_CLASSES {
            self.problems.push(
                at,
                field,
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
}

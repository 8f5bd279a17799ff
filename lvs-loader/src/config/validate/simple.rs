//! Simple tables, read without toml: a config of 131,072 VIPs is 131,072 tables like
//!
//! ```toml
//! [[vip]]
//! address = "10.0.0.1"
//! port = 80
//! mark = 0x3
//! ```
//!
//! and toml's parser (lexer, events, a tree per table) was a third of reading it. A
//! section is simple when its text (as [`Sections`](super::super::sections) left it:
//! comments, blank lines and indentation gone) is exactly its `[[vip]]` or `[[peer]]`
//! header line followed by `key = value` lines, each key a known field of the table given
//! once, each value a basic string of printable ASCII without escapes or an integer
//! (decimal without sign, leading zero or `_`; or `0x` and hex digits). What such a
//! section means in TOML is exactly what [`fields`] returns, and it has no syntax error.
//! Anything else, even a space too many, makes it not simple and toml reads it as
//! before: every message stays the same, because the checks that follow are the same
//! code ([`FieldValue`]).

use std::fmt;

use super::{
    Kind,
    entries::{FieldValue, PEER_KEYS, VIP_KEYS},
};
use crate::config::sections::equals_at;

/// A value of a simple table.
pub(super) struct SimpleValue<'a> {
    /// Where it starts in the section's text (the opening quote of a string).
    at: usize,
    value: Simple<'a>,
}

enum Simple<'a> {
    Str(&'a str),
    /// Its value (`None`: does not fit an i128) and its literal as written.
    Int(Option<i128>, &'a str),
}

impl FieldValue for SimpleValue<'_> {
    fn start(&self) -> usize {
        self.at
    }

    fn as_str(&self) -> Option<&str> {
        match self.value {
            Simple::Str(s) => Some(s),
            Simple::Int(..) => None,
        }
    }

    fn integer(&self) -> Option<(Option<i128>, &dyn fmt::Display)> {
        match &self.value {
            Simple::Int(value, literal) => Some((*value, literal)),
            Simple::Str(_) => None,
        }
    }

    fn items(&self) -> Option<&[Self]> {
        None
    }

    fn a(&self) -> &'static str {
        match self.value {
            Simple::Str(_) => "a string",
            Simple::Int(..) => "an integer",
        }
    }
}

/// The fields of `text`, a `[[kind]]` section, by position in [`PEER_KEYS`] /
/// [`VIP_KEYS`] (the rest `None`); `None` when the section is not simple.
pub(super) fn fields(text: &str, kind: Kind) -> Option<[Option<SimpleValue<'_>>; 6]> {
    let (header, keys): (&str, &[&str]) = match kind {
        Kind::Peer => ("[[peer]]", &PEER_KEYS),
        Kind::Vip => ("[[vip]]", &VIP_KEYS),
    };
    let b = text.as_bytes();
    let mut i = header.len();
    if !text.starts_with(header) {
        return None;
    }
    let mut out: [Option<SimpleValue>; 6] = Default::default();
    while i < b.len() {
        if b[i] != b'\n' {
            return None;
        }
        i += 1;
        if i == b.len() {
            break;
        }
        // key
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
            i += 1;
        }
        let slot = keys.iter().position(|&k| k.as_bytes() == &b[start..i])?;
        if out[slot].is_some() {
            return None;
        }
        i = equals_at(b, i)?;
        let at = i;
        let value = match *b.get(i)? {
            b'"' => {
                i += 1;
                let from = i;
                while i < b.len() && matches!(b[i], 0x20..=0x7e) && b[i] != b'"' && b[i] != b'\\' {
                    i += 1;
                }
                if b.get(i) != Some(&b'"') {
                    return None;
                }
                i += 1;
                Simple::Str(&text[from..i - 1])
            }
            b'0' if b.get(i + 1) == Some(&b'x') => {
                i += 2;
                let from = i;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if i == from {
                    return None;
                }
                Simple::Int(i128::from_str_radix(&text[from..i], 16).ok(), &text[at..i])
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b[at] == b'0' && i - at > 1 {
                    return None;
                }
                Simple::Int(text[at..i].parse::<i128>().ok(), &text[at..i])
            }
            _ => return None,
        };
        out[slot] = Some(SimpleValue { at, value });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use toml::de::{DeTable, DeValue};

    use super::*;

    /// What checks see of a value: where it starts, its type name, string, integer value
    /// and literal.
    type Seen = (
        usize,
        &'static str,
        Option<String>,
        Option<(Option<i128>, String)>,
    );

    fn seen(v: &impl FieldValue) -> Seen {
        (
            v.start(),
            v.a(),
            v.as_str().map(str::to_owned),
            v.integer().map(|(n, l)| (n, l.to_string())),
        )
    }

    /// toml's reading of `text` (a `[[kind]]` section), by field position.
    fn by_toml(text: &str, kind: Kind) -> Vec<Option<Seen>> {
        let (t, errors) = DeTable::parse_recoverable(text);
        assert!(errors.is_empty(), "{text:?}: {errors:?}");
        let t = t.into_inner();
        let Some(DeValue::Array(a)) = t.get(kind.name()).map(|v| v.get_ref()) else {
            panic!("{text:?}: no array")
        };
        let Some(DeValue::Table(t)) = a.first().map(|v| v.get_ref()) else {
            panic!("{text:?}: no table")
        };
        let keys: &[&str] = match kind {
            Kind::Peer => &PEER_KEYS,
            Kind::Vip => &VIP_KEYS,
        };
        assert!(
            t.keys().all(|k| keys.contains(&k.get_ref().as_ref())),
            "{text:?}"
        );
        let mut out = vec![None; 6];
        for (k, v) in t.iter() {
            let i = keys
                .iter()
                .position(|&n| n == k.get_ref().as_ref())
                .unwrap();
            out[i] = Some(seen(v));
        }
        out
    }

    fn simple(text: &str, kind: Kind) -> Option<Vec<Option<Seen>>> {
        fields(text, kind).map(|f| f.iter().map(|v| v.as_ref().map(seen)).collect())
    }

    /// Every section read here is read by toml the same way: same fields, same types,
    /// values, literals and positions.
    #[test]
    fn simple_tables_read_as_toml_reads_them() {
        let vips = [
            "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\nprotocol = \"tcp\"\nmark = 0x1000\n",
            "[[vip]]\naddress = \"2001:db8::1\"\nport = \"8000-8100\"\nmark = 3\nmark_mask = 0xff\nname = \"web a-1\"",
            "[[vip]]\nmark=0\naddress=\"\"\n",
            "[[vip]]\nmark = 0x0001\nport = 0\n",
            "[[vip]]\nmark = 0xFFffFFff\n",
            "[[vip]]\nmark = 99999999999999999999999999999999999999999999\n",
            "[[vip]]\nmark = 0x99999999999999999999999999999999999999999999\n",
            "[[vip]]\nname = \" ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"\n",
            "[[vip]]\n",
            "[[vip]]",
            // A value at the very end of the text (a file without its last newline).
            "[[vip]]\nmark = 0x1f",
            "[[vip]]\nport = 80",
            "[[vip]]\nname = \"x\"",
        ];
        for text in vips {
            assert_eq!(
                simple(text, Kind::Vip),
                Some(by_toml(text, Kind::Vip)),
                "{text:?}"
            );
        }
        for text in [
            "[[peer]]\nmac = \"02:00:00:00:00:01\"\nname = \"b\"\n",
            "[[peer]]\nname = 5\n",
        ] {
            assert_eq!(
                simple(text, Kind::Peer),
                Some(by_toml(text, Kind::Peer)),
                "{text:?}"
            );
        }
    }

    /// The same on random sections near the usual tables (`fuzz_text`, as `Sections` cuts
    /// them): whenever a section is read here, toml reads it without an error and sees the
    /// same fields; and most usual tables are read here.
    #[test]
    fn simple_tables_read_as_toml_reads_them_on_random_texts() {
        use crate::config::sections::Sections;
        let (mut simple_ones, mut all) = (0, 0);
        for t in crate::config::fuzz_text::texts(0x007a_b1e5, 20_000) {
            for s in Sections::new(&t).filter(|s| s.header) {
                let text = s.text();
                for kind in [Kind::Vip, Kind::Peer] {
                    all += 1;
                    if let Some(got) = simple(text, kind) {
                        simple_ones += 1;
                        assert_eq!(Some(got), Some(by_toml(text, kind)), "{text:?}");
                    }
                }
            }
        }
        assert!(simple_ones > all / 20, "{simple_ones} of {all} read here");
    }

    /// The usual tables are read here, the others by toml, and the result is the same.
    #[test]
    fn usual_tables_are_read_without_toml() {
        use crate::config::sections::Sections;
        let text = "[[peer]]\nmac = \"02:50:00:00:00:01\"\n\n[[vip]]\naddress = \"10.0.0.1\"  # web\n  port = 80\nmark = 0x3\n[[vip]]\naddress = \"10.0.0.2\"\nport = [80, 443]\nmark = 3\n";
        let mut v = super::super::Validator::default();
        for s in Sections::new(text) {
            v.section(&s);
        }
        assert_eq!(
            v.simple_tables, 2,
            "the peer and the first vip, not the port list"
        );
        let (peers, vips, _, problems) = v.finish();
        assert!(problems.is_empty());
        assert_eq!((peers.len(), vips.len()), (1, 3));
        assert_eq!(vips[0].mark, 3);
        assert_eq!(vips[2].port, Some(443));
    }

    /// Anything else is left to toml: syntax errors, escapes, other types and forms,
    /// unknown or repeated keys, another header.
    #[test]
    fn anything_else_is_not_simple() {
        for text in [
            "[[vip]]\nmark = 0x\n",
            "[[vip]]\nmark = 0X10\n",
            "[[vip]]\nmark = 010\n",
            "[[vip]]\nmark = 1_000\n",
            "[[vip]]\nmark = +1\n",
            "[[vip]]\nmark = -1\n",
            "[[vip]]\nmark = 1.5\n",
            "[[vip]]\nmark = 1e3\n",
            "[[vip]]\nmark = 0o7\n",
            "[[vip]]\nmark = 0b1\n",
            "[[vip]]\nmark = 1 \n",
            "[[vip]]\nmark = 1 ",
            "[[vip]]\nmark  = 1\n",
            "[[vip]]\nmark =  1\n",
            "[[vip]]\nmark = true\n",
            "[[vip]]\nmark = 1979-05-27\n",
            "[[vip]]\nmark = 12ab\n",
            "[[vip]]\nport = [80]\n",
            "[[vip]]\nport = {}\n",
            "[[vip]]\naddress = '10.0.0.1'\n",
            "[[vip]]\naddress = \"\"\"10.0.0.1\"\"\"\n",
            "[[vip]]\naddress = \"10.0.0.\\u0031\"\n",
            "[[vip]]\naddress = \"10.0.0.1\n",
            "[[vip]]\naddress = \"10.0.0.1",
            "[[vip]]\naddress = \"10.0.0.1\" x\n",
            "[[vip]]\nname = \"caf\u{e9}\"\n",
            "[[vip]]\nname = \"a\tb\"\n",
            "[[vip]]\nname = \"a\u{7f}\"\n",
            "[[vip]]\nmark = 1\nmark = 2\n",
            "[[vip]]\nmac = \"02:00:00:00:00:01\"\n",
            "[[vip]]\nMark = 1\n",
            "[[vip]]\n\"mark\" = 1\n",
            "[[vip]]\nmark.x = 1\n",
            "[[vip]]\n= 1\n",
            "[[vip]]\nmark\n",
            "[[vip]]\n\nmark = 1\n",
            "[[vip]]\r\nmark = 1\n",
            "[[vip]] \nmark = 1\n",
            "[[ vip ]]\nmark = 1\n",
            "[[vip]][x]\n",
            "[[peer]]\nmark = 1\n",
            "[vip]\nmark = 1\n",
        ] {
            assert!(fields(text, Kind::Vip).is_none(), "{text:?}");
        }
        assert!(fields("[[vip]]\nmac = \"x\"\n", Kind::Peer).is_none());
        assert!(fields("[[peer]]\naddress = \"x\"\n", Kind::Peer).is_none());
    }
}

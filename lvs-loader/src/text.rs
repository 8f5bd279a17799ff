//! Printing strings that came from outside (interface names, paths, config text, kernel
//! names) without letting them drive the terminal.
//!
//! [`escape`] keeps printable text as is and writes everything else as an escape:
//! C0/C1 control characters and DEL as `\xNN` (`\x1b` for ESC), Unicode bidi controls
//! and other invisible format characters as `\u{NNNN}`, bytes that are not UTF-8 as
//! `\xNN`, and a backslash as `\\` so the output is unambiguous. [`excerpt`] does the
//! same and cuts the result at a bound.

use std::{borrow::Cow, fmt, fmt::Write as _};

/// At most this many characters of an outside string are echoed in an error message.
pub const EXCERPT_CHARS: usize = 64;

/// Characters that reorder or hide text without being control characters: bidi
/// embeddings/overrides/isolates and marks, zero-width characters, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Whether `c` may be printed as is.
pub fn is_safe_char(c: char) -> bool {
    !c.is_control() && !is_invisible_format(c)
}

fn push_char(out: &mut String, c: char) {
    if c == '\\' {
        out.push_str("\\\\");
    } else if is_safe_char(c) {
        out.push(c);
    } else if (c as u32) < 0x100 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:04x}}}", c as u32);
    }
}

/// `s` with everything unsafe for a terminal escaped. Borrows when nothing needs escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| c != '\\' && is_safe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// Bytes (e.g. a file name or an interface name that is not UTF-8), escaped: valid UTF-8
/// runs as by [`escape`], every other byte as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// An escaped path.
pub fn escape_path(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    escape_bytes(p.as_os_str().as_bytes())
}

/// serde helper: a path as an escaped string (JSON can't carry non-UTF-8 bytes).
pub fn serialize_path<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escape_path(p))
}

/// At most `max` characters of `s`, escaped, with `...` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        push_char(&mut out, c);
    }
    out
}

/// At most `max` characters of the bytes `b`, escaped like [`escape_bytes`] (each
/// invalid byte counts as one), with `...` when cut.
pub fn excerpt_bytes(b: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if n == max {
                out.push_str("...");
                return out;
            }
            push_char(&mut out, c);
            n += 1;
        }
        for byte in chunk.invalid() {
            if n == max {
                out.push_str("...");
                return out;
            }
            let _ = write!(out, "\\x{byte:02x}");
            n += 1;
        }
    }
    out
}

/// `Display` adapter: `format!("{}", Escaped(name))`.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// `2026-11-26T14:45:04Z` (UTC); `-` for 0.
pub fn format_time(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    // UTC, without pulling in a date crate.
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `s` with everything unsafe for a terminal escaped except line breaks, and backslashes
/// left alone: the last line of defence for a whole message whose parts were escaped
/// (or should have been) where they were made.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| c == '\n' || is_safe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\n' || c == '\\' {
            out.push(c);
        } else {
            push_char(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// Pretty JSON in which every character [`is_safe_char`] rejects is written as a `\uXXXX`
/// escape: the same value to a JSON parser, harmless on a terminal (serde_json escapes C0
/// controls only, not DEL, C1 controls or bidi overrides).
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        SafeFormatter(serde_json::ser::PrettyFormatter::new()),
    );
    v.serialize(&mut ser)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(out).unwrap_or_default())
}

struct SafeFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for SafeFormatter<'_> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some(i) = rest.find(|c: char| !is_safe_char(c)) {
            w.write_all(&rest.as_bytes()[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_iso8601() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1), "1970-01-01T00:00:01Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_795_704_304), "2026-11-26T14:45:04Z");
    }

    #[test]
    fn printable_text_is_borrowed_unchanged() {
        for s in [
            "eth0",
            "web-internal",
            "172.17.85.56:80/tcp",
            "dr2 (eth0)",
            "ümlaut 名前",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(escape(s), s);
        }
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape("a\x1b[31mb"), "a\\x1b[31mb");
        assert_eq!(escape("tab\there"), "tab\\x09here");
        assert_eq!(escape("nl\n"), "nl\\x0a");
        assert_eq!(escape("del\x7f"), "del\\x7f");
        assert_eq!(escape("c1\u{9b}"), "c1\\x9b");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        assert_eq!(escape("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(escape("x\u{2066}y\u{2069}"), "x\\u{2066}y\\u{2069}");
        assert_eq!(escape("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(escape("\u{feff}bom"), "\\u{feff}bom");
        assert_eq!(escape("arabic\u{061c}mark"), "arabic\\u{061c}mark");
        // Just outside the escaped ranges: printable.
        assert_eq!(
            escape("\u{2027}\u{202f}\u{206a}"),
            "\u{2027}\u{202f}\u{206a}"
        );
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(escape_bytes(b"eth\xff0"), "eth\\xff0");
        assert_eq!(escape_bytes(b"ok\x1b"), "ok\\x1b");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(10_000);
        let e = excerpt(&long, EXCERPT_CHARS);
        assert_eq!(e.len(), EXCERPT_CHARS + 3);
        assert!(e.ends_with("..."));
        assert_eq!(excerpt("short\x1b", 64), "short\\x1b");
        assert_eq!(excerpt("abcd", 4), "abcd");
        assert_eq!(excerpt("abcde", 4), "abcd...");
        assert_eq!(excerpt_bytes(b"a\x1b\xffbc", 3), "a\\x1b\\xff...");
        assert_eq!(excerpt_bytes(b"ok", 3), "ok");
    }

    #[test]
    fn terminal_safe_keeps_lines_and_backslashes() {
        assert_eq!(terminal_safe("a\nb\\x1b"), "a\nb\\x1b");
        assert_eq!(terminal_safe("a\x1b[2Jb\r"), "a\\x1b[2Jb\\x0d");
        assert_eq!(terminal_safe("\u{202e}x"), "\\u{202e}x");
    }

    #[test]
    fn json_is_the_same_value_with_unsafe_characters_escaped() {
        let v = serde_json::json!({"s": "a\x1bb\u{9b}c\u{202e}d\u{7f}e\\ \"q\" é 名"});
        let out = to_json_pretty(&v).expect("json");
        assert!(out.chars().all(|c| c == '\n' || is_safe_char(c)), "{out:?}");
        assert!(out.contains("\\u009b") && out.contains("\\u202e") && out.contains("\\u007f"));
        assert!(out.contains("é 名"), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).expect("parses");
        assert_eq!(back, v);
    }
}

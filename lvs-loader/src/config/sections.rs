//! Cutting a config into its top-level sections, so that memory is bounded by the largest
//! table rather than by the file.
//!
//! The toml crate lexes a whole document into a token vector and an event vector before
//! building its tree: about 48 bytes per token, so 100 MB of blank lines cost 4.8 GB.
//! Here the file is walked once, a token at a time, with toml's own lexer; comments,
//! blank lines and indentation are dropped on the way (a run of them becomes one `\n` or
//! one space, which TOML treats alike), and the text is cut before every table header
//! (`[x]` or `[[x]]` at the start of a line, outside any array or inline table). Each
//! section is then parsed on its own (`validate.rs`) and dropped before the next is read.
//! A section of more than [`MAX_TABLE_TOKENS`] tokens is not kept at all.
//!
//! Offsets in a section's text map back to offsets in the file, so every message points
//! at the file's own line and column.

use toml_parser::{Source, lexer::TokenKind};

/// Most tokens (keys, values, punctuation; not comments or blank lines) one table may
/// hold. The largest useful table, a port list of every port 1-65535 written out one by
/// one, has about 131,000.
pub const MAX_TABLE_TOKENS: usize = 1 << 18;

/// One top-level part of a config: what comes before the first table header, or one
/// header with the key/values under it.
pub(super) struct Section<'a> {
    src: &'a str,
    /// File offset of the section's first token (the header's `[`; 0 for the root).
    pub start: usize,
    /// Starts with a table header (every section but the first).
    pub header: bool,
    /// The section's tokens with comments, blank lines and indentation removed: a copy
    /// once something was removed, until then `src[borrowed.0..borrowed.1]` (so a
    /// section that is one 60 MB string costs no second 60 MB).
    owned: Option<String>,
    borrowed: (usize, usize),
    /// `(offset in text, offset in file)` where each verbatim run starts.
    segments: Vec<(usize, usize)>,
    /// File offset just past the section's last token.
    pub end: usize,
    tokens: usize,
    /// More than [`MAX_TABLE_TOKENS`] tokens: `text` is incomplete and must not be parsed.
    pub too_large: bool,
    /// File offsets of byte order marks that are not at the start of the file.
    pub stray_boms: Vec<usize>,
}

impl<'a> Section<'a> {
    fn new(src: &'a str, start: usize, header: bool) -> Self {
        Self {
            src,
            start,
            header,
            owned: None,
            borrowed: (start, start),
            segments: Vec::new(),
            end: start,
            tokens: 0,
            too_large: false,
            stray_boms: Vec::new(),
        }
    }

    /// The section's text, to parse.
    pub fn text(&self) -> &str {
        match &self.owned {
            Some(s) => s,
            None => &self.src[self.borrowed.0..self.borrowed.1],
        }
    }

    /// The file offset of `at`, an offset in `text` (e.g. from a span of its parse).
    pub fn file_offset(&self, at: usize) -> usize {
        let i = self.segments.partition_point(|&(t, _)| t <= at);
        match i.checked_sub(1).map(|i| self.segments[i]) {
            Some((t, f)) => (f + (at - t)).min(self.end),
            None => self.start,
        }
    }

    /// The header line (`[[vip]]`), as kept.
    pub fn header_text(&self) -> &str {
        if !self.header {
            return "";
        }
        self.text().split('\n').next().unwrap_or("")
    }

    fn push(&mut self, s: &str, at: usize) {
        if self.too_large {
            return;
        }
        let t = self.text().len();
        let contiguous = self
            .segments
            .last()
            .is_some_and(|&(st, sf)| sf + (t - st) == at);
        if !contiguous {
            self.segments.push((t, at));
        }
        let (b0, b1) = self.borrowed;
        let owned = match &mut self.owned {
            Some(owned) => owned,
            None if (b0 == b1 || b1 == at) && verbatim_at(self.src, s, at) => {
                self.borrowed = (if b0 == b1 { at } else { b0 }, at + s.len());
                return;
            }
            None => self.owned.insert(self.src[b0..b1].to_owned()),
        };
        owned.push_str(s);
    }

    fn count_token(&mut self) {
        self.tokens += 1;
        if self.tokens > MAX_TABLE_TOKENS && !self.too_large {
            self.too_large = true;
            self.owned = Some(String::new());
            self.segments = Vec::new();
        }
    }
}

/// `s` is what `src` has at `at`: true at once for a token sliced from `src` there (no
/// compare of its bytes).
fn verbatim_at(src: &str, s: &str, at: usize) -> bool {
    match src.as_bytes().get(at..at + s.len()) {
        // A separator (" ", "\n"): one byte, no call to memcmp.
        Some(&[f]) => s.as_bytes() == [f],
        Some(f) => std::ptr::eq(f.as_ptr(), s.as_ptr()) || f == s.as_bytes(),
        None => false,
    }
}

/// The sections of `src`, in file order; the first is the root section (possibly empty).
pub(super) struct Sections<'a> {
    src: &'a str,
    pos: usize,
    started: bool,
    done: bool,
    /// Take simple `key = value` lines whole ([`simple_line`]); off only to test that
    /// this changes nothing.
    lines: bool,
    /// Lines taken whole so far.
    whole_lines: usize,
}

impl<'a> Sections<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            started: false,
            done: false,
            lines: true,
            whole_lines: 0,
        }
    }
}

/// Where the token of toml's lexer that starts at `i` ends, when it is an atom (a bare
/// key or an unquoted value) of ASCII letters and digits and `extra` bytes only.
fn atom_end(b: &[u8], mut i: usize, extra: &[u8]) -> Option<usize> {
    /// What ends an atom in toml's lexer.
    const TOKEN_START: &[u8] = b".=,[]{} \t#\r\n";
    let start = i;
    while let Some(&c) = b.get(i)
        && !TOKEN_START.contains(&c)
    {
        if !c.is_ascii_alphanumeric() && !extra.contains(&c) {
            return None;
        }
        i += 1;
    }
    (i > start).then_some(i)
}

/// The `=` between a key ending at `i` and its value, with at most one space on each
/// side (what the simple lines and tables accept): where the value starts.
pub(in crate::config) fn equals_at(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    Some(i)
}

/// A `key = value` at `i` that toml's lexer reads as three tokens (key, `=`, value)
/// separated by nothing or one space each: where it ends. The key is bare, the value an
/// atom of letters and digits (`80`, `0x3`) or a basic string of printable ASCII without
/// escapes. Walking it token by token pushes exactly these bytes, so it is taken whole.
fn simple_line(b: &[u8], i: usize) -> Option<usize> {
    let mut i = equals_at(b, atom_end(b, i, b"_-")?)?;
    if b.get(i) != Some(&b'"') {
        return atom_end(b, i, b"");
    }
    // Three quotes open a multi-line string (found by the random-text test: `k = """"`
    // was cut as `k = ""` and a lone quote).
    if b.get(i + 1..i + 3) == Some(b"\"\"") {
        return None;
    }
    i += 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i + 1),
            b'\\' => return None,
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    None
}

/// Skips spaces, tabs, newlines and comments from `i`. Returns where they end and where
/// the first newline among them is. A comment with a character TOML forbids, or a `\r`
/// not followed by `\n`, is left for toml's lexer and parser to report.
fn skip_trivia(b: &[u8], mut i: usize) -> (usize, Option<usize>) {
    let mut newline = None;
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\n') => {
                newline.get_or_insert(i);
                i += 1;
            }
            Some(b'\r') if b.get(i + 1) == Some(&b'\n') => {
                newline.get_or_insert(i);
                i += 2;
            }
            Some(b'#') => {
                let eol = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                let end = if eol < b.len() && eol > i && b[eol - 1] == b'\r' {
                    eol - 1
                } else {
                    eol
                };
                if b[i + 1..end]
                    .iter()
                    .any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
                {
                    break;
                }
                i = end;
            }
            _ => break,
        }
    }
    (i, newline)
}

impl<'a> Iterator for Sections<'a> {
    type Item = Section<'a>;

    fn next(&mut self) -> Option<Section<'a>> {
        if self.done {
            return None;
        }
        let b = self.src.as_bytes();
        let mut sec = Section::new(self.src, self.pos, self.started);
        self.started = true;
        // Nothing significant since the last newline (or the section's start).
        let mut line_start = true;
        let mut in_header = false;
        let mut depth = 0usize;
        loop {
            let (end, newline) = skip_trivia(b, self.pos);
            if end > self.pos {
                if let Some(nl) = newline {
                    if !line_start {
                        sec.push("\n", nl);
                    }
                    line_start = true;
                    in_header = false;
                } else if !line_start {
                    sec.push(" ", self.pos);
                }
                self.pos = end;
            }
            if self.pos >= b.len() {
                self.done = true;
                break;
            }
            if self.lines
                && line_start
                && depth == 0
                && sec.tokens + 3 <= MAX_TABLE_TOKENS
                && let Some(end) = simple_line(b, self.pos)
            {
                // Its three tokens and the spaces between them, as the loop below would
                // push them one by one.
                sec.push(&self.src[self.pos..end], self.pos);
                for _ in 0..3 {
                    sec.count_token();
                }
                sec.end = end;
                line_start = false;
                self.pos = end;
                self.whole_lines += 1;
                continue;
            }
            let rest = &self.src[self.pos..];
            let Some(token) = Source::new(rest).lex().next() else {
                self.done = true;
                break;
            };
            let (start, end) = (
                self.pos + token.span().start(),
                self.pos + token.span().end(),
            );
            if start > self.pos {
                // toml's lexer skips a byte order mark at the start of its input; only the
                // file's first bytes may be one.
                if self.pos != 0 {
                    sec.stray_boms.push(self.pos);
                }
                self.pos = start;
                continue;
            }
            if token.kind() == TokenKind::Eof || end <= start {
                self.done = true;
                break;
            }
            match token.kind() {
                TokenKind::LeftSquareBracket if !in_header && depth == 0 && line_start => {
                    if sec.header && sec.tokens == 0 {
                        in_header = true;
                    } else {
                        // The next section's header.
                        self.pos = start;
                        return Some(sec);
                    }
                }
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket if !in_header => {
                    depth += 1;
                }
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket if !in_header => {
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            sec.push(&self.src[start..end], start);
            sec.count_token();
            sec.end = end;
            line_start = false;
            self.pos = end;
        }
        Some(sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(src: &str) -> Vec<(usize, String)> {
        Sections::new(src)
            .map(|s| (s.start, s.text().to_owned()))
            .collect()
    }

    #[test]
    fn cuts_at_headers_and_drops_comments_and_blank_lines() {
        let src = "# top\n\n[[peer]]  # c\n  mac = \"a\"   # x\n\n\n[[vip]]\r\naddress = \"b#\" \nport = [\n  80, # http\n  [1],\n]\n";
        assert_eq!(
            cut(src),
            vec![
                (0, String::new()),
                (7, "[[peer]]\nmac = \"a\"\n".into()),
                (
                    41,
                    "[[vip]]\naddress = \"b#\"\nport = [\n80,\n[1],\n]\n".into()
                ),
            ]
        );
    }

    #[test]
    fn offsets_map_back_to_the_file() {
        let src = "\n\n[[vip]]\n   # comment\n   mark = 3\n";
        let secs: Vec<Section> = Sections::new(src).collect();
        let s = &secs[1];
        assert_eq!(s.text(), "[[vip]]\nmark = 3\n");
        let mark = s.text().find("mark").unwrap();
        assert_eq!(s.file_offset(mark), src.find("mark").unwrap());
        let three = s.text().find('3').unwrap();
        assert_eq!(s.file_offset(three), src.find('3').unwrap());
        assert_eq!(s.file_offset(0), 2);
    }

    #[test]
    fn headers_inside_values_do_not_cut() {
        let src = "a = [\n[1],\n]\nb = {\nc = [\n[2]]}\n[x]\n";
        let c = cut(src);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].1, "[x]\n");
    }

    #[test]
    fn bad_comments_and_carriage_returns_are_kept_for_toml_to_report() {
        assert_eq!(cut("a = 1 # \u{1}\n")[0].1, "a = 1 # \u{1}\n");
        assert_eq!(cut("a = 1 # \u{7f}")[0].1, "a = 1 # \u{7f}");
        assert_eq!(cut("a = 1 # \t ok\n")[0].1, "a = 1\n");
        assert_eq!(cut("a = 1\rb = 2")[0].1, "a = 1\rb = 2");
    }

    /// Comments ended by CRLF are dropped with the CR (not kept for toml), also a comment
    /// ending the file, an empty comment and one right before a header.
    #[test]
    fn crlf_comments_are_dropped() {
        assert_eq!(cut("a = 1 # c\r\nb = 2 #\r\n")[0].1, "a = 1\nb = 2\n");
        assert_eq!(cut("a = 1 # c")[0].1, "a = 1 ");
        assert_eq!(cut("#\r\na = 1\r\n")[0].1, "a = 1\n");
        assert_eq!(
            cut("a = 1\r\n# x\r\n[[vip]] # y\r\nb = [[1]] # z\r\n[[vip]]\r\n"),
            vec![
                (0, "a = 1\n".into()),
                (12, "[[vip]]\nb = [[1]]\n".into()),
                (40, "[[vip]]\n".into())
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_is_allowed_only_first() {
        let s: Vec<Section> = Sections::new("\u{feff}a = 1\n").collect();
        assert!(s[0].stray_boms.is_empty());
        assert_eq!(s[0].text(), "a = 1\n");
        let s: Vec<Section> = Sections::new("\n\u{feff}a = 1\n").collect();
        assert_eq!(s[0].stray_boms, vec![1]);
    }

    #[test]
    fn a_table_over_the_token_limit_is_dropped() {
        let ok = format!(
            "[[vip]]\nport = [{}]\n",
            "1,".repeat(MAX_TABLE_TOKENS / 2 - 8)
        );
        let s: Vec<Section> = Sections::new(&ok).collect();
        assert!(!s[1].too_large);
        let big = format!(
            "[[vip]]\nport = [{}]\n[[vip]]\n",
            "1,".repeat(MAX_TABLE_TOKENS / 2)
        );
        let s: Vec<Section> = Sections::new(&big).collect();
        assert!(s[1].too_large && s[1].text().is_empty());
        assert_eq!(s.len(), 3, "the next header still starts a section");
    }

    /// Everything a section holds, to compare two cuts.
    #[allow(clippy::type_complexity)]
    fn whole(
        src: &str,
        lines: bool,
    ) -> Vec<(
        usize,
        bool,
        String,
        Vec<(usize, usize)>,
        usize,
        usize,
        bool,
        Vec<usize>,
    )> {
        let mut s = Sections::new(src);
        s.lines = lines;
        s.map(|s| {
            (
                s.start,
                s.header,
                s.text().to_owned(),
                s.segments.clone(),
                s.end,
                s.tokens,
                s.too_large,
                s.stray_boms.clone(),
            )
        })
        .collect()
    }

    /// Taking `key = value` lines whole cuts every text exactly as token by token does.
    #[test]
    fn simple_lines_cut_as_token_by_token() {
        let texts = [
            "[[peer]]\nmac = \"02:50:00:00:00:00\"\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\nprotocol = \"tcp\"\nmark = 0x1000\nname = \"target-v4\"\n",
            "a=1\nb =2\nc= 3\nd  = 4\ne =  5\nf\t= 6\ng =\t7\n",
            "a = 1 # c\nb = \"x\" # d\r\nc = \"y\"\r\n  d = 1\n\n\ne = 2",
            "a = \"#[]{}=,.\"\nb = \"\\\"\"\nc = \"\\u0041\"\nd = \"x\ny\"\ne = \"\u{e9}\"\nf = \"\t\"\n",
            "a = \"unterminated\nb = 1\n[x]\nc = \"a\" \"b\"\nd = 1 2\n",
            "port = [80, 443]\nm = {a = 1}\nx.y = 1\n\"q\" = 1\na = 1.5\nb = 80-90\nc = 1979-05-27\nd = +1\ne = -1\nf = 1_000\ng = true\n",
            "a = [\nb = 1,\n]\n[[vip]]\n[y]\nk = 1\n[[vip]] # h\nk = 1\n[ [vip] ]\nk=1",
            "\u{feff}a = 1\n\u{feff}b = 2\n",
            "a = 1\rb = 2\n",
            "a = 1 # \u{1}\nb = 2\n",
            "k = v\nk=\nk =\n= 1\nk\n",
            "",
        ];
        for t in texts {
            assert_eq!(whole(t, true), whole(t, false), "{t:?}");
        }
        // The lines of the usual tables are taken whole; the others are not.
        let mut s = Sections::new(texts[0]);
        assert_eq!(s.by_ref().count(), 3);
        assert_eq!(s.whole_lines, 6);
        let mut s = Sections::new(texts[1]);
        assert_eq!(s.by_ref().count(), 1);
        assert_eq!(s.whole_lines, 3, "a=1, b =2 and c= 3");
        // Across the token limit.
        let big = format!(
            "[[vip]]\n{}[[vip]]\na = 1\n",
            "a = 1\n".repeat(MAX_TABLE_TOKENS / 3 + 2)
        );
        assert_eq!(whole(&big, true), whole(&big, false));
        let edge = format!(
            "[[vip]]\n{}a = 1\n",
            "a = 1\n".repeat(MAX_TABLE_TOKENS / 3 - 1)
        );
        assert_eq!(whole(&edge, true), whole(&edge, false));
    }

    /// The same on 20,000 random texts near the usual tables (`fuzz_text`): a line taken
    /// whole is cut exactly as token by token cuts it, and the usual lines are taken whole.
    #[test]
    fn simple_lines_cut_as_token_by_token_on_random_texts() {
        let mut whole_lines = 0;
        for t in crate::config::fuzz_text::texts(0x5ec7_10e5, 20_000) {
            assert_eq!(whole(&t, true), whole(&t, false), "{t:?}");
            let mut s = Sections::new(&t);
            s.by_ref().count();
            whole_lines += s.whole_lines;
        }
        assert!(whole_lines > 20_000, "only {whole_lines} lines taken whole");
    }

    #[test]
    fn a_section_with_nothing_removed_borrows_the_file() {
        let src = "[[peer]]\nname = \"x\"\n[[vip]]\n  a = 1\n";
        let s: Vec<Section> = Sections::new(src).collect();
        assert!(s[1].owned.is_none(), "nothing removed");
        assert_eq!(s[1].text(), "[[peer]]\nname = \"x\"\n");
        assert!(s[2].owned.is_some(), "indentation removed");
        assert_eq!(s[2].text(), "[[vip]]\na = 1\n");
    }
}

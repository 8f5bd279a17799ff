//! Test-only: random config texts near the usual `[[vip]]`/`[[peer]]` tables, for the
//! differential tests of the fast paths (a section's simple lines taken whole by
//! `sections.rs`, simple tables read without toml by `validate/simple.rs`): each text is
//! usual table lines with some fragments that break them inserted at random places.

use crate::table::splitmix64;

/// Pieces of lines: what the fast paths accept and, next to it, what they must leave to
/// toml (escapes, other quotes, spacing, number forms, comments, structure, non-ASCII).
const FRAGMENTS: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    " ",
    "  ",
    "\t",
    "#",
    "# c",
    "=",
    " = ",
    "\"",
    "'",
    "\\",
    "\\u0041",
    "\\\"",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ".",
    "0x",
    "0X",
    "0",
    "00",
    "_",
    "-",
    "+",
    "1.5",
    "e3",
    "true",
    "\u{e9}",
    "\u{7f}",
    "\u{1}",
    "\u{feff}",
    "x",
    "[[vip]]",
    "[[peer]]",
    "[vip]",
    "\"\"\"",
    "99999999999999999999999999999999999999999",
];
const KEYS: &[&str] = &[
    "address",
    "port",
    "protocol",
    "mark",
    "mark_mask",
    "name",
    "mac",
    "Mark",
    "x-y",
    "a_b",
];
const SEPS: &[&str] = &["=", " =", "= ", " = ", "  = ", " =  "];
const VALUES: &[&str] = &[
    "\"10.0.0.1\"",
    "\"2001:db8::1\"",
    "\"tcp\"",
    "\"8000-8100\"",
    "\"02:00:00:00:00:01\"",
    "\"web a-1 #x\"",
    "\"\"",
    "80",
    "0",
    "0x3",
    "0xFFffFFff",
    "0x",
    "010",
    "1_000",
    "-1",
    "[80, 443]",
    "{}",
    "'x'",
    "\"a\\tb\"",
    "65535",
    "4294967296",
];

fn pick<'a>(s: &mut u64, from: &[&'a str]) -> &'a str {
    from[(splitmix64(s) % from.len() as u64) as usize]
}

/// `n` texts from `seed`.
pub(crate) fn texts(seed: u64, n: usize) -> Vec<String> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let mut t = String::new();
            for _ in 0..1 + splitmix64(&mut s) % 3 {
                t.push_str(if splitmix64(&mut s).is_multiple_of(3) {
                    "[[peer]]"
                } else {
                    "[[vip]]"
                });
                for _ in 0..splitmix64(&mut s) % 6 {
                    t.push('\n');
                    t.push_str(pick(&mut s, KEYS));
                    t.push_str(pick(&mut s, SEPS));
                    t.push_str(pick(&mut s, VALUES));
                }
                t.push('\n');
            }
            // Break it at 0-2 random places (a third of the texts stay usual).
            for _ in 0..splitmix64(&mut s) % 3 {
                let f = pick(&mut s, FRAGMENTS);
                let mut at = (splitmix64(&mut s) % (t.len() as u64 + 1)) as usize;
                while !t.is_char_boundary(at) {
                    at -= 1;
                }
                t.insert_str(at, f);
            }
            // A file without its last newline now and then.
            if splitmix64(&mut s).is_multiple_of(4) {
                t.pop();
            }
            t
        })
        .collect()
}

//! Reading keepalived.conf the way keepalived's `lib/parser.c` does:
//!
//! * `decomment()`: leading blanks dropped; `!` and `#` start a comment outside double
//!   quotes; `\#` / `\!` outside quotes are literal;
//! * `include FILE` (and `includer|includem|includew|includeb|includea`): a glob with
//!   brace expansion, relative to the directory of the file that includes it (keepalived
//!   `chdir()`s there); matches in glob order; directories and executable files are
//!   skipped, as keepalived skips them;
//! * `@ID line` applies only when ID is the config id (keepalived's default: the host
//!   name up to the first dot), `@^ID line` only when it is not;
//! * `$NAME=value` definitions and `$NAME` / `${NAME}` in later lines;
//! * `{` and `}` anywhere outside quotes start a new line (`read_line()`'s residue), so
//!   `real_server 10.0.0.1 80 { weight 1 }` is three lines and a block;
//! * words split on blanks, `"..."` one word without its quotes.
//!
//! Here: the parsed tree and the entry points. `text`: line-level rules; `reader`:
//! files, includes, `@ID` and `$NAME`; `tree`: lines into blocks.

mod reader;
#[cfg(test)]
mod tests;
mod text;
mod tree;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use reader::Reader;
pub use text::{decomment, expand_braces, words};
use tree::build_tree;

/// Where a line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", crate::text::escape_path(&self.file), self.line)
    }
}

/// A keyword line and, when it opens a block, what is inside.
#[derive(Clone, Debug)]
pub struct Node {
    pub words: Vec<String>,
    pub loc: Loc,
    pub children: Vec<Node>,
    pub has_block: bool,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// Children with this keyword.
    pub fn all<'a>(&'a self, kw: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.keyword() == kw)
    }
}

/// Trouble reading the configuration (keepalived would complain too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseIssue {
    pub loc: Loc,
    pub message: String,
}

/// The parsed configuration.
#[derive(Clone, Debug, Default)]
pub struct Conf {
    pub top: Vec<Node>,
    pub issues: Vec<ParseIssue>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
}

/// The default config id: the host name up to the first dot.
pub fn default_config_id() -> Option<String> {
    // SAFETY: uname fills the struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let name: Vec<u8> = u
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let name = String::from_utf8_lossy(&name).into_owned();
    Some(name.split('.').next().unwrap_or("").to_owned())
}

/// Reads `path` and everything it includes.
pub fn parse_file(path: &Path, config_id: Option<String>) -> Conf {
    let mut r = Reader {
        config_id,
        defs: BTreeMap::new(),
        lines: Vec::new(),
        issues: Vec::new(),
        files: Vec::new(),
        depth: 0,
    };
    r.read_file(path, None);
    let mut conf = Conf {
        issues: r.issues,
        files: r.files,
        top: Vec::new(),
    };
    conf.top = build_tree(r.lines, &mut conf.issues);
    conf
}

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

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

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

/// `decomment()`: returns the line without its comment, trimmed.
pub fn decomment(s: &str) -> String {
    let s = s.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(s.len());
    let mut quote = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match it.peek() {
                Some(&n @ ('#' | '!')) if !quote => {
                    out.push(n);
                    it.next();
                }
                Some(&n) => {
                    out.push('\\');
                    out.push(n);
                    it.next();
                }
                None => out.push('\\'),
            },
            '!' | '#' if !quote => break,
            _ => out.push(c),
        }
    }
    out.trim_end_matches([' ', '\t']).to_owned()
}

/// Splits at `{` / `}` outside quotes: the part before, then each brace, then the rest.
fn split_braces(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = false;
    for c in s.chars() {
        match c {
            '"' => {
                quote = !quote;
                cur.push(c);
            }
            '{' | '}' if !quote => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_owned());
                }
                cur.clear();
                out.push(c.to_string());
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// Words of a line (`alloc_strvec`): blanks separate, `"..."` is one word.
pub fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        if c == ' ' || c == '\t' {
            it.next();
            continue;
        }
        let mut w = String::new();
        if c == '"' {
            it.next();
            for c in it.by_ref() {
                if c == '"' {
                    break;
                }
                w.push(c);
            }
        } else {
            while let Some(&c) = it.peek() {
                if c == ' ' || c == '\t' {
                    break;
                }
                w.push(c);
                it.next();
            }
        }
        out.push(w);
    }
    out
}

/// `a{b,c}d` -> `abd`, `acd` (glibc's GLOB_BRACE, nested braces included).
pub fn expand_braces(p: &str) -> Vec<String> {
    let b: Vec<char> = p.chars().collect();
    let Some(open) = b.iter().position(|&c| c == '{') else {
        return vec![p.to_owned()];
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = open + 1;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(b[start..i].iter().collect::<String>());
                    let pre: String = b[..open].iter().collect();
                    let post: String = b[i + 1..].iter().collect();
                    return parts
                        .into_iter()
                        .flat_map(|alt| expand_braces(&format!("{pre}{alt}{post}")))
                        .collect();
                }
            }
            ',' if depth == 1 => {
                parts.push(b[start..i].iter().collect::<String>());
                start = i + 1;
            }
            _ => {}
        }
    }
    vec![p.to_owned()]
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

struct Reader {
    config_id: Option<String>,
    defs: BTreeMap<String, String>,
    lines: Vec<(String, Loc)>,
    issues: Vec<ParseIssue>,
    files: Vec<PathBuf>,
    depth: usize,
}

const MAX_INCLUDE_DEPTH: usize = 32;

impl Reader {
    fn substitute(&self, s: &str) -> String {
        if self.defs.is_empty() || !s.contains('$') {
            return s.to_owned();
        }
        let mut out = s.to_owned();
        // Longest names first so $AB does not eat $A.
        let mut names: Vec<&String> = self.defs.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for n in names {
            out = out.replace(&format!("${{{n}}}"), &self.defs[n]);
            out = out.replace(&format!("${n}"), &self.defs[n]);
        }
        out
    }

    fn read_file(&mut self, path: &Path, from: Option<&Loc>) {
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                let loc = from.cloned().unwrap_or(Loc {
                    file: path.to_path_buf(),
                    line: 0,
                });
                self.issues.push(ParseIssue {
                    loc,
                    message: format!("cannot read {}: {e}", crate::text::escape_path(path)),
                });
                return;
            }
        };
        self.files.push(path.to_path_buf());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (i, raw) in text.lines().enumerate() {
            let loc = Loc {
                file: path.to_path_buf(),
                line: i + 1,
            };
            let mut line = decomment(raw.trim_end_matches('\r'));
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('@') {
                let (rev, rest) = match rest.strip_prefix('^') {
                    Some(r) => (true, r),
                    None => (false, rest),
                };
                let Some((id, body)) = rest.split_once([' ', '\t']) else {
                    continue;
                };
                let matches = self.config_id.as_deref() == Some(id);
                if matches == rev {
                    continue;
                }
                line = body.trim_start().to_owned();
            }
            if line.starts_with('$')
                && let Some((name, value)) = line[1..].split_once('=')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.defs.insert(name.to_owned(), value.trim().to_owned());
                continue;
            }
            let line = self.substitute(&line);
            if let Some(pattern) = include_pattern(&line) {
                self.include(&dir, pattern, &loc);
                continue;
            }
            for part in split_braces(&line) {
                self.lines.push((part, loc.clone()));
            }
        }
    }

    fn include(&mut self, dir: &Path, pattern: &str, loc: &Loc) {
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.issues.push(ParseIssue {
                loc: loc.clone(),
                message: format!(
                    "includes nest deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"
                ),
            });
            return;
        }
        let mut matched = Vec::new();
        let has_wild = pattern.contains(['*', '?', '[']) || pattern.contains('{');
        for p in expand_braces(pattern) {
            let full = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                dir.join(&p)
            };
            let Some(full_s) = full.to_str() else {
                continue;
            };
            match glob::glob(full_s) {
                Ok(paths) => matched.extend(paths.flatten()),
                Err(e) => self.issues.push(ParseIssue {
                    loc: loc.clone(),
                    message: format!("include {}: bad pattern: {e}", crate::text::escape(pattern)),
                }),
            }
        }
        if matched.is_empty() {
            if !has_wild {
                self.issues.push(ParseIssue {
                    loc: loc.clone(),
                    message: format!("include {}: no such file", crate::text::escape(pattern)),
                });
            }
            return;
        }
        for f in matched {
            use std::os::unix::fs::PermissionsExt as _;
            match std::fs::metadata(&f) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 == 0 => {
                    self.depth += 1;
                    self.read_file(&f, Some(loc));
                    self.depth -= 1;
                }
                _ => self.issues.push(ParseIssue {
                    loc: loc.clone(),
                    message: format!(
                        "include: {} is not a regular non-executable file: keepalived skips it",
                        crate::text::escape_path(&f)
                    ),
                }),
            }
        }
    }
}

/// `include`, `includer`, `includem`, `includew`, `includeb`, `includea` (`is_include()`).
fn include_pattern(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        ' ' | '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' if rest[1..].starts_with([' ', '\t']) => &rest[1..],
        _ => return None,
    };
    let p = rest.trim();
    (!p.is_empty()).then_some(p)
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

fn build_tree(lines: Vec<(String, Loc)>, issues: &mut Vec<ParseIssue>) -> Vec<Node> {
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    let mut opened: Vec<Loc> = Vec::new();
    for (line, loc) in lines {
        match line.as_str() {
            "{" => {
                if stack.last().is_some_and(|l| !l.is_empty()) {
                    stack.push(Vec::new());
                    opened.push(loc);
                } else {
                    issues.push(ParseIssue {
                        loc,
                        message: "'{' without a keyword before it".into(),
                    });
                    stack.push(Vec::new());
                    opened.push(Loc {
                        file: PathBuf::new(),
                        line: 0,
                    });
                }
            }
            "}" => {
                if stack.len() == 1 {
                    issues.push(ParseIssue {
                        loc,
                        message: "extra '}'".into(),
                    });
                    continue;
                }
                let children = stack.pop().expect("len > 1");
                opened.pop();
                let level = stack.last_mut().expect("root");
                if let Some(owner) = level.last_mut() {
                    owner.children = children;
                    owner.has_block = true;
                }
            }
            _ => stack.last_mut().expect("root").push(Node {
                words: words(&line),
                loc,
                children: Vec::new(),
                has_block: false,
            }),
        }
    }
    while stack.len() > 1 {
        let children = stack.pop().expect("len > 1");
        let loc = opened.pop().expect("matching");
        issues.push(ParseIssue {
            loc,
            message: "block never closed: '}' missing".into(),
        });
        if let Some(owner) = stack.last_mut().and_then(|l| l.last_mut()) {
            owner.children = children;
            owner.has_block = true;
        }
    }
    stack.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_like_keepalived() {
        assert_eq!(decomment("  lb_algo rr # round robin"), "lb_algo rr");
        assert_eq!(decomment("lb_algo rr ! comment"), "lb_algo rr");
        assert_eq!(
            decomment("notify \"/bin/echo #1!\" # x"),
            "notify \"/bin/echo #1!\""
        );
        assert_eq!(decomment("a \\# b"), "a # b");
        assert_eq!(decomment("# all comment"), "");
        assert_eq!(decomment("! all comment"), "");
    }

    #[test]
    fn braces_and_words() {
        assert_eq!(
            split_braces("real_server 10.0.0.1 80 { weight 1 }"),
            ["real_server 10.0.0.1 80", "{", "weight 1", "}"]
        );
        assert_eq!(
            split_braces("virtual_server fwmark 3{"),
            ["virtual_server fwmark 3", "{"]
        );
        assert_eq!(split_braces("x \"a{b}\" {"), ["x \"a{b}\"", "{"]);
        assert_eq!(
            words("notify  \"/usr/bin/x a b\"\tc"),
            ["notify", "/usr/bin/x a b", "c"]
        );
    }

    #[test]
    fn brace_expansion() {
        assert_eq!(expand_braces("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(
            expand_braces("{x,y{1,2}}.conf"),
            ["x.conf", "y1.conf", "y2.conf"]
        );
        assert_eq!(expand_braces("plain*.conf"), ["plain*.conf"]);
    }

    #[test]
    fn include_keywords() {
        assert_eq!(
            include_pattern("include /etc/k/*.conf"),
            Some("/etc/k/*.conf")
        );
        assert_eq!(include_pattern("includew  x.conf"), Some("x.conf"));
        assert_eq!(include_pattern("includex x.conf"), None);
        assert_eq!(include_pattern("include_foo 1"), None);
        assert_eq!(include_pattern("include"), None);
    }

    #[test]
    fn tree_and_includes_relative_to_the_including_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        std::fs::write(
            d.path().join("keepalived.conf"),
            "$MARK=3\nglobal_defs {\n router_id x\n}\ninclude conf.d/*.conf\n@otherhost virtual_server fwmark 99 { }\n@^otherhost vrrp_instance VI { virtual_ipaddress { 172.17.85.56/24 dev eth0 } }\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("conf.d/a.conf"),
            "virtual_server fwmark $MARK {\n  include ../rs.inc\n}\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("rs.inc"),
            "real_server 10.0.0.1 80 { weight 1 }\n",
        )
        .unwrap();
        let c = parse_file(&d.path().join("keepalived.conf"), Some("thishost".into()));
        assert!(c.issues.is_empty(), "{:?}", c.issues);
        let kws: Vec<&str> = c.top.iter().map(Node::keyword).collect();
        assert_eq!(kws, ["global_defs", "virtual_server", "vrrp_instance"]);
        let vs = &c.top[1];
        assert_eq!(vs.words, ["virtual_server", "fwmark", "3"]);
        assert_eq!(vs.loc.line, 1);
        assert!(vs.loc.file.ends_with("conf.d/a.conf"));
        assert_eq!(vs.children[0].words, ["real_server", "10.0.0.1", "80"]);
        assert!(vs.children[0].loc.file.ends_with("rs.inc"));
        assert_eq!(vs.children[0].children[0].words, ["weight", "1"]);
        let vi = &c.top[2];
        assert_eq!(vi.children[0].children[0].words[0], "172.17.85.56/24");
        assert_eq!(c.files.len(), 3);
    }

    #[test]
    fn broken_files_are_reported() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("k.conf"),
            "a {\n b\n}\n}\nc {\ninclude missing.conf\n",
        )
        .unwrap();
        let c = parse_file(&d.path().join("k.conf"), None);
        let msgs: Vec<(usize, &str)> = c
            .issues
            .iter()
            .map(|i| (i.loc.line, i.message.as_str()))
            .collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs.iter().any(|m| m.0 == 4 && m.1 == "extra '}'"));
        assert!(
            msgs.iter()
                .any(|m| m.0 == 6 && m.1.contains("no such file"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.0 == 5 && m.1.contains("never closed"))
        );
    }
}

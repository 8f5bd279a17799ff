//! Reading the files: includes (globbed, relative to the including file), `@ID` lines,
//! `$NAME` definitions, down to one line per keyword or brace.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{
    Loc, ParseIssue,
    text::{decomment, expand_braces, split_braces},
};

pub(super) struct Reader {
    pub(super) config_id: Option<String>,
    pub(super) defs: BTreeMap<String, String>,
    pub(super) lines: Vec<(String, Loc)>,
    pub(super) issues: Vec<ParseIssue>,
    pub(super) files: Vec<PathBuf>,
    pub(super) depth: usize,
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

    pub(super) fn read_file(&mut self, path: &Path, from: Option<&Loc>) {
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
pub(super) fn include_pattern(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        ' ' | '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' if rest[1..].starts_with([' ', '\t']) => &rest[1..],
        _ => return None,
    };
    let p = rest.trim();
    (!p.is_empty()).then_some(p)
}

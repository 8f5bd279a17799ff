//! Problems found in a config, kept as byte offsets while validating and turned into
//! `LINE:COLUMN` once at the end (one pass over the text, no per-line index: a config may
//! be 64 MiB of blank lines).

use super::Diagnostic;

/// At most this many problems are reported; validation stops there (a file that is not a
/// config at all would otherwise produce one per line).
pub const MAX_PROBLEMS: usize = 1000;

struct Problem {
    at: usize,
    field: String,
    message: String,
    /// The message ends with " on line N", N the line of this offset.
    first_at: Option<usize>,
}

#[derive(Default)]
pub(super) struct Problems {
    list: Vec<Problem>,
    /// Problems found, including those beyond [`MAX_PROBLEMS`].
    found: usize,
    /// Where validation stopped because the list was full, or where the first problem
    /// that did not fit was found.
    stopped_at: Option<usize>,
}

impl Problems {
    pub fn push(&mut self, at: usize, field: impl Into<String>, message: impl Into<String>) {
        self.add(at, field.into(), message.into(), None);
    }

    /// A problem whose message names the line of an earlier offset (`... on line N`).
    pub fn push_with_line_of(
        &mut self,
        at: usize,
        field: impl Into<String>,
        message: impl Into<String>,
        first_at: usize,
    ) {
        self.add(at, field.into(), message.into(), Some(first_at));
    }

    fn add(&mut self, at: usize, field: String, message: String, first_at: Option<usize>) {
        self.found += 1;
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(Problem {
                at,
                field,
                message,
                first_at,
            });
        } else {
            self.stopped_at.get_or_insert(at);
        }
    }

    /// Problems found so far (a counter: compare before and after a check).
    pub fn found(&self) -> usize {
        self.found
    }

    pub fn is_full(&self) -> bool {
        self.list.len() >= MAX_PROBLEMS
    }

    pub fn stop_at(&mut self, at: usize) {
        self.stopped_at.get_or_insert(at);
    }

    pub fn is_empty(&self) -> bool {
        self.found == 0
    }

    /// Sorted by position (stable: problems at one offset keep the order they were found).
    pub fn into_diagnostics(mut self, text: &[u8]) -> Vec<Diagnostic> {
        if let Some(at) = self.stopped_at {
            self.list.push(Problem {
                at,
                field: "config".into(),
                message: format!(
                    "stopped after {MAX_PROBLEMS} problems: fix these and check again"
                ),
                first_at: None,
            });
        }
        self.list.sort_by_key(|p| p.at);
        let mut offsets: Vec<usize> = self
            .list
            .iter()
            .flat_map(|p| [Some(p.at), p.first_at])
            .flatten()
            .map(|o| o.min(text.len()))
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let positions = line_columns(text, &offsets);
        let pos = |at: usize| {
            let at = at.min(text.len());
            positions[offsets.partition_point(|&o| o < at)]
        };
        self.list
            .into_iter()
            .map(|p| {
                let (line, column) = pos(p.at);
                let mut message = p.message;
                if let Some(first) = p.first_at {
                    message.push_str(&format!(" on line {}", pos(first).0));
                }
                Diagnostic {
                    line,
                    column,
                    field: p.field,
                    message,
                }
            })
            .collect()
    }
}

/// `(line, column)` (1-based, column in bytes) of each of the sorted `offsets`.
fn line_columns(text: &[u8], offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(offsets.len());
    let (mut line, mut line_start, mut i) = (1, 0, 0);
    for &at in offsets {
        while let Some(p) = text[i..at].iter().position(|&b| b == b'\n') {
            line += 1;
            line_start = i + p + 1;
            i = line_start;
        }
        i = at;
        out.push((line, at - line_start + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = b"ab\ncd\n\nef";
        assert_eq!(
            line_columns(text, &[0, 1, 2, 3, 6, 7, 9]),
            vec![(1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (4, 1), (4, 3)]
        );
    }

    #[test]
    fn sorted_bounded_and_referencing_lines() {
        let text = b"l1\nl2\nl3\n";
        let mut p = Problems::default();
        p.push(6, "b", "second");
        p.push_with_line_of(3, "a", "first, already given", 0);
        let d = p.into_diagnostics(text);
        assert_eq!((d[0].line, d[0].field.as_str()), (2, "a"));
        assert_eq!(d[0].message, "first, already given on line 1");
        assert_eq!((d[1].line, d[1].column), (3, 1));

        let mut p = Problems::default();
        for i in 0..MAX_PROBLEMS + 5 {
            p.push(i, "f", "m");
        }
        assert!(p.is_full());
        assert_eq!(p.found(), MAX_PROBLEMS + 5);
        p.stop_at(2000);
        let d = p.into_diagnostics(&[b'\n'; 3000]);
        assert_eq!(d.len(), MAX_PROBLEMS + 1);
        assert!(d[MAX_PROBLEMS].message.starts_with("stopped after 1000"));
        assert_eq!(
            d[MAX_PROBLEMS].line,
            MAX_PROBLEMS + 1,
            "where the first one left out is"
        );
    }
}

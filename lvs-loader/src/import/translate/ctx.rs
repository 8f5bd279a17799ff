//! The problems an analysis collects: one per rule and severity, and why a rule's
//! outcome can't be modelled.

use std::collections::BTreeMap;

use crate::import::{
    Problem, Severity,
    eval::{Outcome, Tables},
    rule::Target,
};

pub(super) struct Ctx<'a> {
    pub(super) t: &'a Tables,
    pub(super) problems: BTreeMap<(usize, String), Problem>,
}

impl Ctx<'_> {
    /// One message per rule and severity (the first packet class that shows it).
    pub(super) fn rule_problem(&mut self, idx: usize, severity: Severity, reason: String) {
        let r = &self.t.rules[idx];
        let key = (idx, format!("{severity:?}"));
        self.problems.entry(key).or_insert(Problem {
            line: Some(r.line),
            text: r.text.clone(),
            reason,
            severity,
        });
    }

    pub(super) fn note_uncertain(&mut self, o: &Outcome, what: &str) {
        for &u in &o.uncertain {
            let r = &self.t.rules[u];
            let why = if !r.unknown.is_empty() {
                format!(
                    "its match {} can't be translated and decides the mark of {what}",
                    r.unknown.join(", ")
                )
            } else {
                match &r.target {
                    Target::OtherMark(s) => {
                        format!("{s} changes marks in a way vips.toml can't express ({what})")
                    }
                    Target::Jump(c) | Target::Goto(c) => format!(
                        "jumps to {c}, which is neither a chain of this table nor a known target ({what})"
                    ),
                    Target::Other(s) => {
                        format!("target {s} is not modelled and decides what happens to {what}")
                    }
                    _ => format!("decides the mark of {what} in a way that can't be modelled"),
                }
            };
            self.rule_problem(u, Severity::Error, why);
        }
        if let Some((idx, why)) = &o.broken {
            self.rule_problem(*idx, Severity::Error, why.clone());
        }
    }
}

//! Lines into blocks: `{` opens one under the keyword before it, `}` closes it.

use std::path::PathBuf;

use super::{Loc, Node, ParseIssue, words};

pub(super) fn build_tree(lines: Vec<(String, Loc)>, issues: &mut Vec<ParseIssue>) -> Vec<Node> {
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

//! `firewall-cmd --direct --get-all-rules` output: rules sorted by priority.

use super::{Family, Lexed, Place, RawRule, insert, note, problem, shell_words};

pub(super) fn lex_firewalld(text: &str, out: &mut Lexed) {
    // firewalld keeps direct rules of one chain sorted by priority, then in the order
    // they were added (the order of the listing).
    let mut rules: Vec<(i64, RawRule)> = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = match shell_words(line) {
            Ok(w) => w,
            Err(e) => {
                problem(out, n, raw_line, format!("cannot split the line: {e}"));
                continue;
            }
        };
        if words.len() < 4 {
            problem(
                out,
                n,
                raw_line,
                "expected `ipv4|ipv6 TABLE CHAIN PRIORITY ARGS...` (firewall-cmd --direct --get-all-rules)",
            );
            continue;
        }
        let family = match words[0].as_str() {
            "ipv4" => Family::V4,
            "ipv6" => Family::V6,
            "eb" => {
                note(
                    out,
                    n,
                    raw_line,
                    "ebtables rule: not an IP marking rule, ignored",
                );
                continue;
            }
            other => {
                problem(
                    out,
                    n,
                    raw_line,
                    format!(
                        "unknown family {:?}: expected ipv4 or ipv6",
                        crate::text::excerpt(other, 16)
                    ),
                );
                continue;
            }
        };
        let Ok(prio) = words[3].parse::<i64>() else {
            problem(
                out,
                n,
                raw_line,
                format!(
                    "priority {:?} is not a number",
                    crate::text::excerpt(&words[3], 16)
                ),
            );
            continue;
        };
        rules.push((
            prio,
            RawRule {
                line: n,
                family,
                table: words[1].clone(),
                chain: words[2].clone(),
                args: words[4..].to_vec(),
                text: line.to_owned(),
            },
        ));
    }
    rules.sort_by_key(|(p, _)| *p); // stable: listing order within a priority
    for (_, r) in rules {
        if r.chain != "PREROUTING"
            && r.chain != "INPUT"
            && r.chain != "OUTPUT"
            && r.chain != "FORWARD"
            && r.chain != "POSTROUTING"
        {
            let k = (r.family, r.table.clone(), r.chain.clone());
            if !out.user_chains.contains(&k) {
                out.user_chains.push(k);
            }
        }
        insert(out, r, Place::Append);
    }
}

//! keepalived's line-level text rules: comments, braces that split lines, words and
//! quotes, and brace expansion of include patterns.

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
pub(super) fn split_braces(s: &str) -> Vec<String> {
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

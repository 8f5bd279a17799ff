//! The eBPF mutation list (`xtask/mutants/ebpf.txt`): its `name:`/`file:`/`from:`/`to:`
//! blocks, and `--only`'s numbers.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

/// One hand-written mutation.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub name: String,
    pub file: PathBuf,
    pub from: String,
    pub to: String,
}

/// Parses the `name:`/`file:`/`from:`/`to:` blocks of the mutation list.
pub fn parse_list(text: &str, origin: &str) -> Result<Vec<Mutation>> {
    let mut out = Vec::new();
    let mut cur: [Option<String>; 4] = Default::default();
    let unescape = |s: &str| s.replace("\\n", "\n");
    let flush = |cur: &mut [Option<String>; 4], out: &mut Vec<Mutation>, line: usize| {
        if cur.iter().all(Option::is_none) {
            return Ok(());
        }
        let [name, file, from, to] = std::mem::take(cur);
        match (name, file, from, to) {
            (Some(name), Some(file), Some(from), Some(to)) => {
                out.push(Mutation {
                    name,
                    file: file.into(),
                    from,
                    to,
                });
                Ok(())
            }
            _ => bail!("{origin}:{line}: a mutation needs name:, file:, from: and to:"),
        }
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            flush(&mut cur, &mut out, line_no)?;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            bail!("{origin}:{line_no}: expected `key: value`, got {line:?}");
        };
        let slot = match key {
            "name" => 0,
            "file" => 1,
            "from" => 2,
            "to" => 3,
            _ => bail!("{origin}:{line_no}: unknown key {key:?}"),
        };
        if cur[slot].is_some() {
            bail!("{origin}:{line_no}: {key}: twice in one mutation (blank line missing?)");
        }
        cur[slot] = Some(unescape(value.trim()));
    }
    flush(&mut cur, &mut out, text.lines().count())?;
    Ok(out)
}

/// Parses `1,3,5-7` into 1-based numbers.
pub(super) fn parse_only(s: &str, n: usize) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .parse()
            .with_context(|| format!("--only: bad number {a:?}"))?;
        let b: usize = b
            .parse()
            .with_context(|| format!("--only: bad number {b:?}"))?;
        if a == 0 || b < a || b > n {
            bail!("--only: {part} is not within 1-{n}");
        }
        v.extend(a..=b);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_and_every_snippet_occurs_once() {
        let root = crate::workspace_root();
        let text = std::fs::read_to_string(root.join("xtask/mutants/ebpf.txt")).expect("list");
        let list = parse_list(&text, "ebpf.txt").expect("parse");
        assert!(list.len() >= 20, "{} mutations", list.len());
        for m in &list {
            let src = std::fs::read_to_string(root.join(&m.file)).expect("source");
            assert_eq!(src.matches(&m.from).count(), 1, "{}", m.name);
            assert_ne!(m.from, m.to, "{}", m.name);
        }
    }

    #[test]
    fn list_errors_name_the_line() {
        let e = parse_list("name: a\nfile: b\nfrom: c\n", "l").expect_err("incomplete");
        assert!(e.to_string().starts_with("l:3:"), "{e}");
        let e = parse_list("name: a\nbogus: b\n", "l").expect_err("unknown key");
        assert!(e.to_string().starts_with("l:2:"), "{e}");
        let l = parse_list("name: a\nfile: f\nfrom: x\\ny\nto: z\n", "l").expect("ok");
        assert_eq!(l[0].from, "x\ny");
        assert_eq!(parse_only("1,3-4", 5).expect("only"), vec![1, 3, 4]);
        assert!(parse_only("6", 5).is_err());
    }
}

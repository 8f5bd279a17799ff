//! `cargo xtask mutants`: are the tests measured by the mutants they kill?
//!
//! * Host side: cargo-mutants on `lvs-loader/src/config/` and `lvs-loader/src/table/`
//!   (their unit tests and `lvs-loader/tests/config*.rs`), when `cargo mutants` is
//!   installed.
//! * eBPF side (cargo-mutants can't build it: no_std, bpfel-unknown-none, built by
//!   lvs-loader/build.rs): the hand-written mutations of `xtask/mutants/ebpf.txt`, one at
//!   a time, in place: rebuild, run the fixture, model-fuzz and differential tests, then
//!   a table of killed and survived.
//!
//! The mutated file is restored after each mutation, also on a panic (a guard) and on
//! Ctrl-C (SIGINT is ignored here: the child cargo dies of it, the run stops, the guard
//! restores). A copy of the pristine file is kept in `target/mutants/` first, so even a
//! SIGKILL leaves a recoverable state: the next run restores it before anything else.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

/// The default fast test subset run against each eBPF mutation.
const DEFAULT_TESTS: &str = "fixtures_ipv4,fixtures_ipv6,fixtures_malformed,fixtures_peers,fixtures_scale,fuzz_model,differential";

#[derive(clap::Args)]
pub struct MutantsArgs {
    /// Only the eBPF mutations whose number (1-based, as in the table) is listed,
    /// comma-separated; ranges like 3-7 allowed.
    #[arg(long, value_name = "LIST")]
    only: Option<String>,
    /// The lvs-tests test files run against each eBPF mutation, comma-separated.
    #[arg(long, value_name = "TESTS", default_value = DEFAULT_TESTS)]
    tests: String,
    /// The eBPF mutation list.
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Skip cargo-mutants (host side).
    #[arg(long)]
    no_host: bool,
    /// Skip the eBPF mutations.
    #[arg(long)]
    no_ebpf: bool,
    /// Extra arguments for cargo-mutants (e.g. "--shard 0/8" or "--list").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    host_args: Option<String>,
}

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
fn parse_only(s: &str, n: usize) -> Result<Vec<usize>> {
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

/// Puts the pristine file back when dropped (after the mutation's run, on an error, on a
/// panic), then removes the backup copy.
struct Restore {
    path: PathBuf,
    backup: PathBuf,
    original: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        match std::fs::write(&self.path, &self.original) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.backup);
            }
            Err(e) => eprintln!(
                "[mutants] RESTORING {} FAILED: {e}; the original is in {}",
                self.path.display(),
                self.backup.display()
            ),
        }
    }
}

/// The backup copy of `file` in `dir`.
fn backup_path(dir: &Path, file: &Path) -> PathBuf {
    dir.join(file.to_string_lossy().replace('/', "__"))
}

/// Restores every file an interrupted run (SIGKILL, power loss) left mutated.
fn recover(root: &Path, dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rel) = name.strip_suffix(".orig") else {
            continue;
        };
        let target = root.join(rel.replace("__", "/"));
        let text =
            std::fs::read(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
        std::fs::write(&target, text).with_context(|| format!("restoring {}", target.display()))?;
        std::fs::remove_file(e.path())?;
        eprintln!(
            "[mutants] restored {} left mutated by an interrupted run",
            target.display()
        );
    }
    Ok(())
}

/// Applies `m` to its file and returns the guard that undoes it.
fn apply(root: &Path, dir: &Path, m: &Mutation) -> Result<Restore> {
    let path = root.join(&m.file);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let count = original.matches(&m.from).count();
    if count != 1 {
        bail!(
            "mutation {:?}: the snippet {:?} occurs {count} times in {} (must be once)",
            m.name,
            m.from,
            m.file.display()
        );
    }
    let mut backup = backup_path(dir, &m.file);
    backup.as_mut_os_string().push(".orig");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&backup, &original).with_context(|| format!("writing {}", backup.display()))?;
    let guard = Restore {
        path: path.clone(),
        backup,
        original: original.clone(),
    };
    std::fs::write(&path, original.replacen(&m.from, &m.to, 1))
        .with_context(|| format!("mutating {}", path.display()))?;
    Ok(guard)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A test failed.
    Killed,
    /// The mutated program did not build or load: killed by the toolchain or verifier.
    BuildFailed,
    Survived,
}

/// Lets `cmd` die of Ctrl-C although this process ignores it (an ignored signal stays
/// ignored across exec).
fn default_sigint(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            signal(SIGINT, SIG_DFL);
            Ok(())
        })
    }
}

fn quiet(cmd: &mut Command, log: &Path) -> Result<bool> {
    let f = std::fs::File::create(log)?;
    default_sigint(cmd);
    let status = cmd
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("starting {cmd:?}"))?;
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status)
        && sig == SIGINT
    {
        bail!("interrupted");
    }
    Ok(status.success())
}

/// The first failing test named in a cargo test log, for the table.
fn first_failure(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Running tests/") {
            current = rest.split(".rs").next().unwrap_or("").to_owned();
        }
        if let Some(name) = line.strip_prefix("test ")
            && let Some(name) = name.strip_suffix(" ... FAILED")
        {
            return format!("{current}::{name}");
        }
    }
    if text.contains("error: test failed") || text.contains("error[") {
        return "(see log)".into();
    }
    String::new()
}

fn run_ebpf(root: &Path, args: &MutantsArgs) -> Result<bool> {
    let list_path = args
        .list
        .clone()
        .unwrap_or_else(|| root.join("xtask/mutants/ebpf.txt"));
    let text = std::fs::read_to_string(&list_path)
        .with_context(|| format!("reading {}", list_path.display()))?;
    let all = parse_list(&text, &list_path.display().to_string())?;
    let picked: Vec<usize> = match &args.only {
        Some(s) => parse_only(s, all.len())?,
        None => (1..=all.len()).collect(),
    };
    let dir = root.join("target/mutants");
    recover(root, &dir)?;
    // Every snippet must be found once before anything is built.
    for &i in &picked {
        let m = &all[i - 1];
        let src = std::fs::read_to_string(root.join(&m.file))
            .with_context(|| format!("reading {}", m.file.display()))?;
        let n = src.matches(&m.from).count();
        if n != 1 {
            bail!(
                "mutation {i} ({}): snippet found {n} times in {}",
                m.name,
                m.file.display()
            );
        }
    }
    let tests: Vec<&str> = args.tests.split(',').map(str::trim).collect();
    let test_cmd = |cmd: &mut Command| {
        cmd.current_dir(root).args(["test", "-p", "lvs-tests"]);
        for t in &tests {
            cmd.args(["--test", t]);
        }
    };
    // Baseline: the unmutated tree must pass, or every mutant would look killed.
    eprintln!("[mutants] baseline: building and running {}", args.tests);
    let log = dir.join("baseline.log");
    std::fs::create_dir_all(&dir)?;
    let build_ok = quiet(
        Command::new("cargo")
            .current_dir(root)
            .args(["build", "-p", "lvs-loader"]),
        &log,
    )?;
    let mut cmd = Command::new("cargo");
    test_cmd(&mut cmd);
    if !build_ok || !quiet(&mut cmd, &log)? {
        bail!(
            "the unmutated tree fails its tests: see {} ({})",
            log.display(),
            first_failure(&log)
        );
    }
    let mut rows = Vec::new();
    for &i in &picked {
        let m = &all[i - 1];
        let started = Instant::now();
        eprintln!("[mutants] {i}/{}: {}", all.len(), m.name);
        let log = dir.join(format!("mutant-{i}.log"));
        let outcome = {
            let _restore = apply(root, &dir, m)?;
            // The loader binary too: the namespace tests run it with the mutated program.
            let built = quiet(
                Command::new("cargo")
                    .current_dir(root)
                    .args(["build", "-p", "lvs-loader"]),
                &log,
            )?;
            if !built {
                Outcome::BuildFailed
            } else {
                let mut cmd = Command::new("cargo");
                test_cmd(&mut cmd);
                let log_t = dir.join(format!("mutant-{i}.test.log"));
                let passed = quiet(&mut cmd, &log_t)?;
                std::fs::rename(&log_t, &log)?;
                if passed {
                    Outcome::Survived
                } else {
                    Outcome::Killed
                }
            }
        };
        let by = match outcome {
            Outcome::Killed => first_failure(&log),
            Outcome::BuildFailed => "build".into(),
            Outcome::Survived => String::new(),
        };
        eprintln!("[mutants] {i}: {outcome:?} {by}");
        rows.push((i, m.clone(), outcome, by, started.elapsed().as_secs()));
    }
    // Rebuild the pristine program so target/ holds what the sources say.
    quiet(
        Command::new("cargo")
            .current_dir(root)
            .args(["build", "-p", "lvs-loader"]),
        &dir.join("final.log"),
    )?;
    println!(
        "\n## eBPF mutants ({} tests: {})\n",
        tests.len(),
        args.tests
    );
    println!("| # | mutation | file | result | killed by | s |");
    println!("| ---: | --- | --- | --- | --- | ---: |");
    for (i, m, outcome, by, secs) in &rows {
        let result = match outcome {
            Outcome::Killed => "killed",
            Outcome::BuildFailed => "killed (build/load)",
            Outcome::Survived => "**SURVIVED**",
        };
        println!(
            "| {i} | {} | {} | {result} | {by} | {secs} |",
            m.name,
            m.file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let survived = rows.iter().filter(|r| r.2 == Outcome::Survived).count();
    println!(
        "\n{} killed, {survived} survived (of {})",
        rows.len() - survived,
        rows.len()
    );
    Ok(survived == 0)
}

fn run_host(root: &Path, args: &MutantsArgs) -> Result<bool> {
    let have = Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!(
            "host side: SKIP: cargo-mutants is not installed (`cargo install --locked \
             cargo-mutants@27.1.0`; ~9 min to build on 2 cores, so `cargo xtask setup` \
             does not install it)"
        );
        return Ok(true);
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "mutants",
        "--package",
        "lvs-loader",
        "--file",
        "lvs-loader/src/config/**",
        "--file",
        "lvs-loader/src/table/**",
        "--file",
        "lvs-loader/src/table.rs",
        "--output",
        "target/mutants/host",
    ]);
    if let Some(extra) = &args.host_args {
        cmd.args(extra.split_whitespace());
    }
    // The tests that exercise config/ and table/: the library's unit tests and the
    // config integration tests (no namespace, no root needed).
    cmd.args(["--", "--lib", "--test", "config", "--test", "config_daemon"]);
    std::fs::create_dir_all(root.join("target/mutants"))?;
    let status = default_sigint(&mut cmd)
        .status()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(status.success())
}

const SIGINT: i32 = 2;
const SIG_IGN: usize = 1;
const SIG_DFL: usize = 0;

unsafe extern "C" {
    fn signal(sig: i32, handler: usize) -> usize;
}

pub fn run(root: &Path, args: MutantsArgs) -> Result<()> {
    // Ctrl-C goes to the whole foreground group: the child cargo dies of it, we stay to
    // put the mutated file back (the guards run on the error path).
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { signal(SIGINT, SIG_IGN) };
    let mut clean = true;
    if !args.no_ebpf {
        clean &= run_ebpf(root, &args)?;
    }
    if !args.no_host {
        clean &= run_host(root, &args)?;
    }
    if !clean {
        bail!("surviving mutants: each is a missing test");
    }
    Ok(())
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

    #[test]
    fn a_mutation_is_undone_by_its_guard_and_recovered_after_a_kill() {
        let root = std::env::temp_dir().join(format!("xtask-mutants-{}", std::process::id()));
        let dir = root.join("target/mutants");
        std::fs::create_dir_all(root.join("src")).expect("dir");
        std::fs::write(root.join("src/a.rs"), "let x = 1 + 2;\n").expect("write");
        let m = Mutation {
            name: "plus".into(),
            file: "src/a.rs".into(),
            from: "1 + 2".into(),
            to: "1 - 2".into(),
        };
        {
            let _g = apply(&root, &dir, &m).expect("apply");
            let now = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
            assert_eq!(now, "let x = 1 - 2;\n");
        }
        let back = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
        assert_eq!(back, "let x = 1 + 2;\n");
        // A run killed while mutated: the guard never ran.
        std::mem::forget(apply(&root, &dir, &m).expect("apply"));
        recover(&root, &dir).expect("recover");
        let back = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
        assert_eq!(back, "let x = 1 + 2;\n");
        let _ = std::fs::remove_dir_all(&root);
    }
}

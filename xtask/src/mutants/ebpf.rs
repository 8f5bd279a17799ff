//! The eBPF side: each mutation of the list applied in turn, rebuilt and run against the
//! test subset (after an unmutated baseline), then the table of killed and survived.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use super::{
    MutantsArgs, SIGINT, default_sigint,
    list::{parse_list, parse_only},
    mutate::{apply, recover},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A test failed.
    Killed,
    /// The mutated program did not build or load: killed by the toolchain or verifier.
    BuildFailed,
    Survived,
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

pub(super) fn run_ebpf(root: &Path, args: &MutantsArgs) -> Result<bool> {
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

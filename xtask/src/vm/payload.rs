//! What the host builds for the guests: `lvs-loader` and the test executables of
//! `lvs-tests` and `lvs-loader`, located through cargo's JSON messages (never guessed).
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// One test executable and where `cargo test` would run it from.
pub struct TestExe {
    pub executable: PathBuf,
    /// The package directory (the test's cwd and `CARGO_MANIFEST_DIR`).
    pub package_dir: PathBuf,
    pub package: String,
    /// The test target's name, e.g. `fixtures`.
    pub name: String,
}

/// What the host built for the guest.
pub struct Payload {
    pub loader: PathBuf,
    pub tests: Vec<TestExe>,
    /// The scenarios' UDP service and client (xtask's `lvs-vm-udp`).
    pub udp_helper: PathBuf,
}

/// Builds lvs-loader and (with `tests`) the test executables; returns their paths from
/// cargo's JSON. Without `tests` (`vm-test --no-tests`: the scenarios only) the payload has
/// no test executables.
pub fn build(root: &Path, release: bool, tests: bool) -> Result<Payload> {
    eprintln!(
        "[vm-test] building lvs-loader{} ({} profile)",
        if tests {
            " and the test executables"
        } else {
            ""
        },
        if release { "release" } else { "dev" }
    );
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let build = [&["build", "-p", "lvs-loader", "--bins"][..], profile].concat();
    let test = [
        &["test", "--no-run", "-p", "lvs-tests", "-p", "lvs-loader"][..],
        profile,
    ]
    .concat();
    let loader = cargo_artifacts(root, &build)?
        .into_iter()
        .find(|a| a.kind.iter().any(|k| k == "bin") && a.name == "lvs-loader")
        .map(|a| a.executable)
        .context("cargo build -p lvs-loader produced no lvs-loader executable")?;
    let tests = if !tests {
        Vec::new()
    } else {
        cargo_artifacts(root, &test)?
            .into_iter()
            .filter(|a| a.test)
            .map(|a| TestExe {
                executable: a.executable,
                package_dir: a.manifest_dir,
                package: a.package,
                name: a.name,
            })
            .collect()
    };
    let helper = [
        &["build", "-p", "xtask", "--bin", "lvs-vm-udp"][..],
        profile,
    ]
    .concat();
    let udp_helper = cargo_artifacts(root, &helper)?
        .into_iter()
        .find(|a| a.name == "lvs-vm-udp")
        .map(|a| a.executable)
        .context("cargo build -p xtask --bin lvs-vm-udp produced no executable")?;
    Ok(Payload {
        loader,
        tests,
        udp_helper,
    })
}

struct Artifact {
    executable: PathBuf,
    manifest_dir: PathBuf,
    package: String,
    name: String,
    kind: Vec<String>,
    test: bool,
}

fn cargo_artifacts(root: &Path, args: &[&str]) -> Result<Vec<Artifact>> {
    let out = Command::new("cargo")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("cargo {} failed: {}", args.join(" "), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|msg| artifact(&msg))
        .collect())
}

/// A `compiler-artifact` message with an executable -> Artifact.
fn artifact(msg: &serde_json::Value) -> Option<Artifact> {
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let exe = msg["executable"].as_str()?;
    let manifest = msg["manifest_path"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir_name = manifest
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let package = msg["package_id"]
        .as_str()
        .and_then(package_name_from_id)
        .unwrap_or(dir_name);
    Some(Artifact {
        executable: PathBuf::from(exe),
        manifest_dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        package,
        name: msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        kind: msg["target"]["kind"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        test: msg["profile"]["test"].as_bool().unwrap_or(false),
    })
}

/// `path+file:///x/tests#lvs-tests@0.1.0` -> `lvs-tests`; `path+file:///x/xtask#0.1.0` -> None.
fn package_name_from_id(id: &str) -> Option<String> {
    let frag = id.rsplit_once('#')?.1;
    let name = frag.split_once('@')?.0;
    Some(name.to_owned())
}

//! The one command runner of the tests crate: run a command, fail with its command
//! line, exit status, stdout and stderr if it does not succeed.

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Runs `cmd` with `stdin` as its standard input (none if `None`); its stdout if it
/// exits 0, else an error with its command line, status and output.
pub fn try_run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = if let Some(input) = stdin {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        child
            .stdin
            .take()
            .context("child stdin")?
            .write_all(input)
            .with_context(|| format!("writing to {what}"))?;
        child
            .wait_with_output()
            .with_context(|| format!("waiting for {what}"))?
    } else {
        cmd.output().with_context(|| format!("starting {what}"))?
    };
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`, panicking with its command line, status and output if it fails; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    try_run(cmd, None).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `cmd` and returns its output whatever its exit status (panics only if it cannot
/// be started).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

//! How `lvs-loader` reports a failure: text on stderr, or with `--json` one JSON document
//! on stdout (so a script reads stdout whatever happened, and the exit status says which):
//!
//! * an invalid config: `{"error": "...", "problems": [{"file", "line", "column",
//!   "field", "message"}, ...]}`,
//! * anything else: `{"error": "..."}`.
//!
//! Exit status 1 for errors, 2 for usage errors. Every message passes through
//! [`text::terminal_safe`] (text) or [`text::to_json_pretty`] (JSON): whatever an error
//! repeats from outside, it cannot drive the terminal.

use std::{ffi::OsString, process::ExitCode};

use lvs_loader::{config::ConfigError, text};
use serde_json::json;

/// `--json` / `-j` given as its own argument (before `--`): for usage errors, which
/// happen before the command line is parsed.
pub fn wants_json(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json" || a == "-j")
}

/// A command line clap refused: exit status 2.
pub fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    if json {
        let first = rendered.lines().next().unwrap_or_default();
        let msg = first.strip_prefix("error: ").unwrap_or(first);
        print_json(&json!({ "error": msg }));
    } else {
        eprint!("{}", text::terminal_safe(&rendered));
    }
    ExitCode::from(2)
}

/// A failed command: exit status 1.
pub fn error(e: &anyhow::Error, json: bool) -> ExitCode {
    if json {
        print_json(&json_error(e));
    } else {
        eprintln!("{}", text::terminal_safe(&text_error(e)));
    }
    ExitCode::FAILURE
}

fn print_json(v: &serde_json::Value) {
    match text::to_json_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{{\"error\": \"cannot format the error as JSON\"}}"),
    }
}

/// The config error in `e`'s chain, whether bare or inside the library's error.
fn config_error(e: &anyhow::Error) -> Option<&ConfigError> {
    e.chain().find_map(|c| {
        c.downcast_ref::<ConfigError>()
            .or(match c.downcast_ref::<lvs_loader::Error>() {
                Some(lvs_loader::Error::Config(c)) => Some(c),
                _ => None,
            })
    })
}

/// `lvs-loader: error: MESSAGE` and each cause once: a cause whose text the message
/// already holds (a thiserror message that embeds its source) is not repeated.
pub fn text_error(e: &anyhow::Error) -> String {
    let mut msg = format!("lvs-loader: error: {e}");
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if c.is_empty() || msg.contains(&c) {
            continue;
        }
        msg.push_str("\n  caused by: ");
        msg.push_str(&c);
    }
    msg
}

fn json_error(e: &anyhow::Error) -> serde_json::Value {
    let mut parts: Vec<String> = Vec::new();
    let config = config_error(e);
    for cause in e.chain() {
        if let Some(c) = config
            && let ConfigError::Invalid { file, diagnostics } = c
            && (cause.to_string() == c.to_string())
        {
            parts.push(format!(
                "{file}: invalid config: {} problem(s)",
                diagnostics.len()
            ));
            break;
        }
        let c = cause.to_string();
        if !c.is_empty() && !parts.iter().any(|p| p.contains(&c)) {
            parts.push(c);
        }
    }
    let error = parts.join(": ");
    match config {
        Some(c @ ConfigError::Invalid { .. }) => {
            let problems: Vec<_> = c
                .diagnostics()
                .iter()
                .map(|d| {
                    json!({
                        "file": c.file(),
                        "line": d.line,
                        "column": d.column,
                        "field": d.field,
                        "message": d.message,
                    })
                })
                .collect();
            json!({ "error": error, "problems": problems })
        }
        _ => json!({ "error": error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_wanted_only_as_its_own_argument_before_dashdash() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(wants_json(args(&["lvs-loader", "--json", "chekc"])));
        assert!(wants_json(args(&["lvs-loader", "status", "-j"])));
        assert!(!wants_json(args(&["lvs-loader", "status"])));
        assert!(!wants_json(args(&["--json"])), "argv[0] is not an option");
        assert!(!wants_json(args(&["lvs-loader", "--", "--json"])));
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(ConfigError::Read {
            file: "v.toml".into(),
            source: io,
        });
        let msg = text_error(&e);
        assert_eq!(msg.matches("No such file").count(), 1, "{msg}");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(
            text_error(&e),
            "lvs-loader: error: outer\n  caused by: inner"
        );
        let v = json_error(&e);
        assert_eq!(v["error"], "outer: inner");
    }
}

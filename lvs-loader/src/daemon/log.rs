//! Log lines on stderr, one per event. Under systemd (`$JOURNAL_STREAM` names our
//! stderr) each line carries a `<N>` priority prefix and no timestamp (journald adds
//! both); elsewhere it starts with a UTC timestamp.

use std::{io::Write as _, os::unix::fs::MetadataExt as _, sync::OnceLock};

/// syslog priorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Self::Error => "error: ",
            Self::Warning => "warning: ",
            Self::Notice | Self::Info => "",
        }
    }
}

/// Whether stderr is the journal stream systemd told us about (`JOURNAL_STREAM` is
/// `DEVICE:INODE` of it; a child with redirected stderr inherits the variable but not the
/// stream).
fn to_journal() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| {
        let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let Ok(md) = std::fs::metadata("/proc/self/fd/2") else {
            return false;
        };
        dev.parse() == Ok(md.dev()) && ino.parse() == Ok(md.ino())
    })
}

/// One line: `message` must already be escaped where it repeats outside text.
pub fn line(level: Level, message: &str) {
    let text = if to_journal() {
        format!("<{}>{}{message}\n", level as u8, level.word())
    } else {
        format!(
            "{} lvs-loader: {}{message}\n",
            crate::text::format_time(crate::sys::now_unix()),
            level.word()
        )
    };
    // One write per line, so concurrent lines never interleave.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn info(message: impl AsRef<str>) {
    line(Level::Info, message.as_ref());
}

pub fn notice(message: impl AsRef<str>) {
    line(Level::Notice, message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    line(Level::Warning, message.as_ref());
}

pub fn error(message: impl AsRef<str>) {
    line(Level::Error, message.as_ref());
}

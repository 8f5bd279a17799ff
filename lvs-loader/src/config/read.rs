//! Reading a config file: regular files only, at most [`MAX_CONFIG_BYTES`]
//! ([`crate::bounded`]).
//!
//! `--config /dev/zero`, `/dev/urandom`, a FIFO, a directory or a 1 GB file each get a
//! clear error without reading more than `MAX_CONFIG_BYTES + 1` bytes, and nothing
//! blocks: the path is checked with `stat` before it is opened (opening some devices has
//! effects: a watchdog starts, a tape rewinds), opened with `O_NONBLOCK` (a FIFO swapped in
//! meanwhile cannot hang us), and the open descriptor is checked again with `fstat`, so
//! what is read is what was checked.

use std::path::Path;

use super::ConfigError;
use crate::bounded::{self, ReadError};

/// Largest config file accepted: 64 MiB. The largest useful config, 131,072 VIPs with
/// names and comments, is about 30 MB.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// The bytes of the regular file at `path` (`file` names it in messages).
pub(super) fn read_bounded(path: &Path, file: &str) -> Result<Vec<u8>, ConfigError> {
    bounded::read_regular(path, MAX_CONFIG_BYTES).map_err(|e| match e {
        ReadError::Io(source) => ConfigError::Read {
            file: file.to_owned(),
            source,
        },
        ReadError::NotRegularFile(kind) => ConfigError::NotRegularFile {
            file: file.to_owned(),
            kind,
        },
        ReadError::TooLarge(size) => ConfigError::TooLarge {
            file: file.to_owned(),
            size,
        },
    })
}

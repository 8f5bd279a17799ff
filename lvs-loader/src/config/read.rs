//! Reading a config file: regular files only, at most [`MAX_CONFIG_BYTES`].
//!
//! `--config /dev/zero`, `/dev/urandom`, a FIFO, a directory or a 1 GB file each get a
//! clear error without reading more than `MAX_CONFIG_BYTES + 1` bytes, and nothing
//! blocks: the path is checked with `stat` before it is opened (opening some devices has
//! effects: a watchdog starts, a tape rewinds), opened with `O_NONBLOCK` (a FIFO swapped in
//! meanwhile cannot hang us), and the open descriptor is checked again with `fstat`, so
//! what is read is what was checked.

use std::{
    fs::{Metadata, OpenOptions},
    io::Read as _,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

use super::ConfigError;

/// Largest config file accepted: 64 MiB. The largest useful config, 131,072 VIPs with
/// names and comments, is about 30 MB.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// What a non-regular file is, for the message.
fn kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    })
}

fn check(meta: &Metadata, file: &str) -> Result<(), ConfigError> {
    if let Some(kind) = kind(meta) {
        return Err(ConfigError::NotRegularFile {
            file: file.to_owned(),
            kind,
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            size: meta.len(),
        });
    }
    Ok(())
}

/// The bytes of the regular file at `path` (`file` names it in messages).
pub(super) fn read_bounded(path: &Path, file: &str) -> Result<Vec<u8>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        file: file.to_owned(),
        source,
    };
    check(&std::fs::metadata(path).map_err(read_err)?, file)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    check(&meta, file)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        // It grew after fstat, or it is a file whose size stat does not know.
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

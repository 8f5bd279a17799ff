//! Reading a file from outside (a config, a capture): regular files only, at most a
//! given number of bytes.
//!
//! `/dev/zero`, `/dev/urandom`, a FIFO, a directory or a 1 GB file each get a clear error
//! without reading more than `max + 1` bytes, and nothing blocks: the path is checked with
//! `stat` before it is opened (opening some devices has effects: a watchdog starts, a tape
//! rewinds), opened with `O_NONBLOCK` (a FIFO swapped in meanwhile cannot hang us), and the
//! open descriptor is checked again with `fstat`, so what is read is what was checked.

use std::{
    fs::{Metadata, OpenOptions},
    io::Read as _,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// `stat`, `open` or `read` failed.
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a directory", "a FIFO", ...).
    NotRegularFile(&'static str),
    /// Larger than allowed: its size (or the bytes read past the bound).
    TooLarge(u64),
}

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

fn check(meta: &Metadata, max: u64) -> Result<(), ReadError> {
    if let Some(kind) = kind(meta) {
        return Err(ReadError::NotRegularFile(kind));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(meta.len()));
    }
    Ok(())
}

/// The bytes of the regular file at `path`, at most `max` of them.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    check(&std::fs::metadata(path).map_err(ReadError::Io)?, max)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = f.metadata().map_err(ReadError::Io)?;
    check(&meta, max)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        // It grew after fstat, or it is a file whose size stat does not know.
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

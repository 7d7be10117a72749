//! Open package files without ever blocking on them: a folder package is a
//! directory anyone could have filled, and opening a named pipe for reading
//! waits for a writer forever. Files are opened with `O_NONBLOCK` (which
//! never blocks, and changes nothing for a regular file's reads), checked
//! with `fstat` on the open descriptor (no race with a rename), and refused
//! unless they are regular files.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for the error message.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Open `path` read-only if it is a regular file (symlinks followed).
/// `Ok(Err(kind))` says what it is instead; `Err` is the open's own error.
pub fn open_regular(path: &Path) -> io::Result<Result<File, &'static str>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(Ok(file))
    } else {
        Ok(Err(kind_of(&meta)))
    }
}

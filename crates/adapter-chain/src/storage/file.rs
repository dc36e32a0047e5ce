//! The chain file on disk, beside the database: which file the store has open (device and
//! inode) and whether the file at the path is still that one.
//!
//! A data directory deleted (or a file moved over the path) while a node runs leaves the node
//! writing into a file nobody will ever open again; its restart would silently start a new
//! chain. The store compares the path with the open file before each commit and each head read,
//! and stops committing once they differ.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The open database file: device and inode, and the descriptor (an unlinked file can still be
/// copied out through `/proc/<pid>/fd/<fd>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    device: u64,
    inode: u64,
    descriptor: RawFd,
}

impl FileIdentity {
    /// The identity of an open file.
    pub(crate) fn of(file: &File) -> io::Result<Self> {
        let metadata = file.metadata()?;
        Ok(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            descriptor: file.as_raw_fd(),
        })
    }

    /// Where the open file can be read while the process runs, even once unlinked.
    pub(crate) fn proc_path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.descriptor)
    }
}

/// What is at the database path now, compared with the open file.
#[derive(Debug)]
pub(crate) enum AtPath {
    /// The open file.
    Same,
    /// Nothing: the file (or its directory) was deleted.
    Deleted,
    /// Another file.
    Replaced,
    /// The path cannot be examined (permissions, an I/O error): no evidence either way.
    Unknown,
}

/// Compares the file at `path` with the open file `identity`.
pub(crate) fn what_is_at(path: &Path, identity: &FileIdentity) -> AtPath {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.dev() == identity.device && metadata.ino() == identity.inode => {
            AtPath::Same
        }
        Ok(_) => AtPath::Replaced,
        Err(error) if error.kind() == io::ErrorKind::NotFound => AtPath::Deleted,
        Err(_) => AtPath::Unknown,
    }
}

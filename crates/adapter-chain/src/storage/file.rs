//! The chain file on disk, beside the database: the data directory and its lock, the atomic
//! creation of a new chain file, what an existing file must look like before redb opens it,
//! which file the store has open (device and inode) and whether the file at the path is still
//! that one.
//!
//! A first start killed while redb initialises its file used to leave a file without redb's
//! header, refused by every later start. A new chain is now built under a temporary name and
//! renamed into place only once its genesis is committed and synced, so the chain file is
//! either absent or whole; an existing file that is empty or not a redb database is refused
//! with the fix, never silently replaced by a new chain.
//!
//! A data directory deleted (or a file moved over the path) while a node runs leaves the node
//! writing into a file nobody will ever open again; its restart would silently start a new
//! chain. The store compares the path with the open file before each commit and each head read,
//! and stops committing once they differ.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// The first bytes of every redb database file (redb writes them last when it creates one).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Appended to the chain file's name while a first start builds it.
const CREATING_SUFFIX: &str = ".creating";

/// Creates the data directory if missing and locks it for the life of the returned file, so
/// two processes never start on one data directory (not even both creating it).
///
/// # Errors
///
/// [`StorageError::DataDirNotADirectory`], [`StorageError::InUse`], or
/// [`StorageError::Open`] when the file system refuses.
pub(crate) fn lock_data_dir(data_dir: &Path, path: &Path) -> Result<File, StorageError> {
    let refused = |source: io::Error| StorageError::Open {
        path: path.to_path_buf(),
        source: Box::new(redb::Error::Io(source)),
    };
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(StorageError::DataDirNotADirectory {
            path: data_dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(refused)?;
    let directory = File::open(data_dir).map_err(refused)?;
    match directory.try_lock() {
        Ok(()) => Ok(directory),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(refused(error)),
    }
}

/// Checks that the existing file at `path` can be a chain database before redb sees it: a
/// regular file, not empty, starting with redb's header. Returns `false` when there is none.
///
/// # Errors
///
/// [`StorageError::NotARegularFile`], [`StorageError::EmptyFile`],
/// [`StorageError::NotADatabase`], or [`StorageError::Open`] when it cannot be read.
pub(crate) fn existing_database(path: &Path) -> Result<bool, StorageError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(StorageError::Open {
                path: path.to_path_buf(),
                source: Box::new(redb::Error::Io(error)),
            });
        }
    };
    if !metadata.is_file() {
        return Err(StorageError::NotARegularFile {
            path: path.to_path_buf(),
        });
    }
    if metadata.len() == 0 {
        return Err(StorageError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let mut header = Vec::with_capacity(REDB_MAGIC.len());
    File::open(path)
        .and_then(|file| file.take(REDB_MAGIC.len() as u64).read_to_end(&mut header))
        .map_err(|error| StorageError::Open {
            path: path.to_path_buf(),
            source: Box::new(redb::Error::Io(error)),
        })?;
    if header != REDB_MAGIC {
        return Err(StorageError::NotADatabase {
            path: path.to_path_buf(),
            detail: format!("its first {} bytes are not redb's header", header.len()),
        });
    }
    Ok(true)
}

/// Builds a new chain file: `build` creates and fills it under a temporary name (a leftover of
/// an interrupted first start there is removed first); then it is synced, renamed to `path`
/// and the directory synced, so the chain file appears whole or not at all.
///
/// # Errors
///
/// What `build` returned, or [`StorageError::Open`] when the file system refuses.
pub(crate) fn create_atomically(
    path: &Path,
    build: impl FnOnce(&Path) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let refused = |source: io::Error| StorageError::Open {
        path: path.to_path_buf(),
        source: Box::new(redb::Error::Io(source)),
    };
    let creating = creating_path(path);
    match std::fs::remove_file(&creating) {
        Ok(()) => tracing::info!(
            path = %creating.display(),
            "removed an unfinished chain database left by an interrupted first start"
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(refused(error)),
    }
    build(&creating)?;
    File::open(&creating)
        .and_then(|file| file.sync_all())
        .map_err(refused)?;
    std::fs::rename(&creating, path).map_err(refused)?;
    if let Some(directory) = path.parent() {
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(refused)?;
    }
    Ok(())
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CREATING_SUFFIX);
    PathBuf::from(name)
}

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

//! The redb storage backend of the chain file: redb's own file backend (or what a
//! [`BackendWrapper`] makes of it), observed so the store knows which file operation failed and
//! why.
//!
//! redb answers every call after its first I/O error with "previous I/O error", which hides the
//! cause ("No space left on device") and the operation (a failed `fsync` must never be retried,
//! a failed write may be). [`ObservedBackend`] records the first failure of each opening; the
//! store reads it to name the cause and to decide between reopening and giving up. It changes no
//! byte and no result.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use redb::StorageBackend;
use redb::backends::FileBackend;

/// Builds the backend of each opening of the database from redb's file backend. The default
/// uses the file backend as it is; tests wrap it to inject faults (a full disk, a failing
/// `fsync`) behind the store.
#[derive(Clone)]
pub struct BackendWrapper(Arc<dyn Fn(FileBackend) -> Box<dyn StorageBackend> + Send + Sync>);

impl BackendWrapper {
    /// A wrapper that builds each backend with `wrap`.
    pub fn new(
        wrap: impl Fn(FileBackend) -> Box<dyn StorageBackend> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(wrap))
    }

    /// The file backend of redb, unwrapped.
    pub fn plain() -> Self {
        Self::new(|file| Box::new(file))
    }

    pub(crate) fn wrap(&self, file: FileBackend) -> Box<dyn StorageBackend> {
        (self.0)(file)
    }
}

impl Default for BackendWrapper {
    fn default() -> Self {
        Self::plain()
    }
}

impl fmt::Debug for BackendWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackendWrapper")
    }
}

/// A file operation of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileOperation {
    Size,
    Read,
    Resize,
    Sync,
    Write,
}

impl FileOperation {
    /// The verb the store's errors use.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Self::Size => "read the size of the file",
            Self::Read => "read",
            Self::Resize => "resize the file",
            Self::Sync => "sync to disk (fsync)",
            Self::Write => "write",
        }
    }
}

/// The first failed operation of one opening and what the file system said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IoFailure {
    pub(crate) operation: FileOperation,
    /// The error as the operating system renders it, e.g. "No space left on device (os error 28)".
    pub(crate) cause: String,
}

/// Where an [`ObservedBackend`] records its first failure; shared with the store.
pub(crate) type FailureSlot = Arc<Mutex<Option<IoFailure>>>;

/// Passes every call through and records the first failure in a shared slot.
#[derive(Debug)]
pub(crate) struct ObservedBackend {
    inner: Box<dyn StorageBackend>,
    failure: FailureSlot,
}

impl ObservedBackend {
    pub(crate) fn new(inner: Box<dyn StorageBackend>, failure: FailureSlot) -> Self {
        Self { inner, failure }
    }

    fn observe<T>(&self, operation: FileOperation, result: io::Result<T>) -> io::Result<T> {
        if let Err(error) = &result {
            let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(IoFailure {
                    operation,
                    cause: error.to_string(),
                });
            }
        }
        result
    }
}

impl StorageBackend for ObservedBackend {
    fn len(&self) -> io::Result<u64> {
        self.observe(FileOperation::Size, self.inner.len())
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.observe(FileOperation::Read, self.inner.read(offset, len))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.observe(FileOperation::Resize, self.inner.set_len(len))
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.observe(FileOperation::Sync, self.inner.sync_data(eventual))
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.observe(FileOperation::Write, self.inner.write(offset, data))
    }
}

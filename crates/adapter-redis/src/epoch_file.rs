//! The highest fencing epoch this process has seen, kept in a file so that no restart ever leads
//! with an epoch already used.
//!
//! Epochs live on the Redis nodes, and a node restored from an old snapshot (or emptied) hands
//! out epochs again from where its copy stood. A process therefore remembers, across restarts,
//! the highest epoch it led with and the highest it saw in the shared log, and passes it as the
//! floor of every promote (`docs/protocol.md`, "Lease"). An epoch is written here (and synced)
//! before this process writes anything with it.
//!
//! The file holds one decimal number and a newline. It is replaced atomically (a temporary file
//! in the same directory, synced, renamed over it, the directory synced), so a crash leaves the
//! old value or the new one, never a torn one. A file that exists but does not parse is an
//! error: guessing could repeat an epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use poa_ports::Epoch;
use tokio::sync::Mutex;

use crate::error::Error;

/// The epoch file of one process.
#[derive(Debug, Clone)]
pub(crate) struct EpochFile {
    path: Arc<PathBuf>,
    /// The value on disk; the lock also serialises writers.
    stored: Arc<Mutex<u64>>,
}

impl EpochFile {
    /// Opens (without creating) the file at `path`: a missing file holds epoch 0.
    ///
    /// # Errors
    ///
    /// [`Error::EpochFile`] when the file cannot be read or does not hold an epoch.
    pub(crate) fn open(path: &Path) -> Result<(Self, Epoch), Error> {
        let stored =
            match std::fs::read_to_string(path) {
                Ok(text) => text.trim_end_matches('\n').parse::<u64>().map_err(|_| {
                    Error::EpochFile {
                        path: path.to_path_buf(),
                        reason: format!(
                            "it does not hold an epoch (one decimal number): {:?}; restore it from \
                         a backup, or replace it with a number at least as high as any epoch \
                         the fleet used (the Redis nodes' `<lease-key>:epoch:token`)",
                            text.chars().take(40).collect::<String>()
                        ),
                    }
                })?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
                Err(error) => {
                    return Err(Error::EpochFile {
                        path: path.to_path_buf(),
                        reason: format!("cannot read it: {error}"),
                    });
                }
            };
        Ok((
            Self {
                path: Arc::new(path.to_path_buf()),
                stored: Arc::new(Mutex::new(stored)),
            },
            Epoch::new(stored),
        ))
    }

    /// Raises the stored epoch to `epoch` if it is higher, durably, before returning.
    ///
    /// # Errors
    ///
    /// The I/O error, naming the file.
    pub(crate) async fn raise_to(&self, epoch: Epoch) -> Result<(), String> {
        let mut stored = self.stored.lock().await;
        if epoch.get() <= *stored {
            return Ok(());
        }
        let path = Arc::clone(&self.path);
        let value = epoch.get();
        tokio::task::spawn_blocking(move || write_atomically(&path, value))
            .await
            .map_err(|error| format!("the write of the epoch file did not finish: {error}"))?
            .map_err(|error| format!("cannot write {}: {error}", self.path.display()))?;
        *stored = value;
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Replaces the file at `path` with `value`: temporary file, sync, rename, sync the directory.
fn write_atomically(path: &Path, value: u64) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
    writeln!(temporary, "{value}")?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raise_to__when_higher_then_lower__then_keeps_the_highest_across_reopens() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epoch");
        let (file, initial) = EpochFile::open(&path).unwrap();

        // when
        file.raise_to(Epoch::new(7)).await.unwrap();
        file.raise_to(Epoch::new(3)).await.unwrap();

        // then
        assert_eq!(initial, Epoch::new(0));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "7\n");
        let (_, reopened) = EpochFile::open(&path).unwrap();
        assert_eq!(reopened, Epoch::new(7));
    }

    #[test]
    fn open__when_the_file_holds_no_number__then_refuses_and_names_the_file() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epoch");
        std::fs::write(&path, "seven\n").unwrap();

        // when
        let error = EpochFile::open(&path).unwrap_err();

        // then
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("does not hold an epoch"), "{message}");
    }

    #[tokio::test]
    async fn raise_to__when_the_directory_is_gone__then_says_which_file() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("epoch");
        let (file, _) = EpochFile::open(&path).unwrap();

        // when
        let error = file.raise_to(Epoch::new(1)).await.unwrap_err();

        // then
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}

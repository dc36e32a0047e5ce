//! [`GuardedDatabase`]: the open redb database of the chain file, and what happens when it
//! fails.
//!
//! redb refuses every operation after one I/O error ("previous I/O error"), so a store that
//! never reopens its database stays wedged after one full-disk episode. Every operation runs
//! through [`GuardedDatabase::run`], which classifies a failure:
//!
//! - an I/O error of a read, write or resize closes the database; a later operation reopens it
//!   (at most once per `retry_every`) and proves it writable with one durable write; after
//!   `give_up_after` of failed attempts the store fails for good;
//! - a failed `fsync` fails for good at once: after it the kernel may have dropped the
//!   unwritten pages, so no reopen can know what reached the disk (the lesson PostgreSQL
//!   learnt in 2018);
//! - damage (redb reports corruption, a stored block does not check, or redb panics) fails for
//!   good at once and the database is never written again.
//!
//! Every transition is logged once, counted and published as a [`StorageHealth`]. A panic of
//! redb is caught here and becomes a typed error; the panicked database is leaked, never
//! dropped, because dropping it would write its header into a damaged file.

use std::any::Any;
use std::fs::OpenOptions;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::backends::FileBackend;
use redb::{Database, Durability};
use tokio::sync::watch;

use crate::error::StorageError;
use crate::metrics::StorageMetrics;
use crate::storage::backend::{BackendWrapper, FailureSlot, FileOperation, ObservedBackend};
use crate::storage::file::{AtPath, FileIdentity, what_is_at};
use crate::storage::health::StorageHealth;
use crate::storage::tables::{METADATA, REOPENED_AT_KEY};

/// How the store reacts to an I/O error of its database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// The least time between two reopen attempts.
    pub retry_every: Duration,
    /// How long after the first failure the store keeps trying before it fails for good.
    pub give_up_after: Duration,
}

impl Default for RecoveryPolicy {
    /// One attempt a second for a minute: a disk that fills and is cleaned up within a minute
    /// costs no restart; beyond that a supervisor's restart (with its own backoff) takes over.
    fn default() -> Self {
        Self {
            retry_every: Duration::from_secs(1),
            give_up_after: Duration::from_secs(60),
        }
    }
}

/// What opening the database needs, kept for every reopen.
#[derive(Debug, Clone)]
pub(crate) struct OpenSettings {
    pub(crate) cache_size_bytes: usize,
    pub(crate) backend: BackendWrapper,
    pub(crate) recovery: RecoveryPolicy,
}

/// The database, or why there is none.
enum State {
    Open(Database),
    /// Closed after an I/O error; reopened by a later operation.
    Closed {
        cause: String,
        since: Instant,
        last_attempt: Instant,
    },
    /// Given up for the life of the process.
    Failed {
        cause: String,
    },
}

/// How a failed operation is handled.
enum FailureClass {
    Io,
    Corruption,
    /// A refusal that says nothing about the file (a lock, a transaction limit).
    Other,
}

/// The chain's open database with its failure handling. Every store operation goes through
/// [`GuardedDatabase::run`].
pub(crate) struct GuardedDatabase {
    path: PathBuf,
    settings: OpenSettings,
    state: RwLock<State>,
    failure: FailureSlot,
    /// The file the database has open; replaced at each reopen.
    identity: Mutex<FileIdentity>,
    /// Set once the file at the path is no longer the open one: commits are refused for good.
    detached: Mutex<Option<String>>,
    health: watch::Sender<StorageHealth>,
    metrics: StorageMetrics,
}

impl std::fmt::Debug for GuardedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedDatabase")
            .field("path", &self.path)
            .field("health", &*self.health.borrow())
            .finish_non_exhaustive()
    }
}

impl GuardedDatabase {
    /// Wraps a database opened by [`open_database`] with `failure` as its slot.
    pub(crate) fn new(
        path: PathBuf,
        (db, identity): (Database, FileIdentity),
        settings: OpenSettings,
        failure: FailureSlot,
        metrics: StorageMetrics,
    ) -> Self {
        metrics.set_healthy(true);
        Self {
            path,
            settings,
            state: RwLock::new(State::Open(db)),
            failure,
            identity: Mutex::new(identity),
            detached: Mutex::new(None),
            health: watch::Sender::new(StorageHealth::Healthy),
            metrics,
        }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A receiver of every health change.
    pub(crate) fn health(&self) -> watch::Receiver<StorageHealth> {
        self.health.subscribe()
    }

    /// Checks that the file at the path is still the open one; once it is not, the store is
    /// detached for good: commits are refused, reads are still served from the open file.
    ///
    /// # Errors
    ///
    /// [`StorageError::Detached`] once the file was deleted or replaced.
    pub(crate) fn ensure_attached(&self) -> Result<(), StorageError> {
        if let Some(cause) = self
            .detached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(StorageError::Detached {
                path: self.path.clone(),
                cause,
            });
        }
        let identity = *self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        let change = match what_is_at(&self.path, &identity) {
            AtPath::Same | AtPath::Unknown => return Ok(()),
            AtPath::Deleted => "the file was deleted",
            AtPath::Replaced => "another file was put at its path",
        };
        Err(self.detach(change, &identity))
    }

    fn detach(&self, change: &str, identity: &FileIdentity) -> StorageError {
        let cause = format!(
            "{change} while the node had it open: commits are refused. The open file still holds this node's chain: copy it out before stopping the node (cp {} {}.rescued), then put it back at the path or move the path aside and resync",
            identity.proc_path(),
            self.path.display()
        );
        let mut detached = self.detached.lock().unwrap_or_else(PoisonError::into_inner);
        if detached.is_none() {
            *detached = Some(cause.clone());
            drop(detached);
            tracing::error!(
                path = %self.path.display(),
                recover_from = %identity.proc_path(),
                error = %cause,
                "chain database file deleted or replaced while open: refusing commits"
            );
            self.metrics.record_failure("file_replaced");
            self.publish(StorageHealth::Detached {
                cause: format!("{}: {cause}", self.path.display()),
            });
        }
        StorageError::Detached {
            path: self.path.clone(),
            cause,
        }
    }

    /// Runs `operation` on the open database (reopening it first when a reopen is due) and
    /// classifies its failure; see the module documentation.
    ///
    /// # Errors
    ///
    /// What `operation` returned (an I/O error as [`StorageError::Io`]), or
    /// [`StorageError::Reopening`] / [`StorageError::Failed`] while the database is closed.
    pub(crate) fn run<T>(
        &self,
        operation: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.reopen_if_due()?;
        let outcome = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                State::Open(db) => catch_unwind(AssertUnwindSafe(|| operation(db))),
                State::Closed { cause, .. } => {
                    return Err(StorageError::Reopening {
                        path: self.path.clone(),
                        cause: cause.clone(),
                    });
                }
                State::Failed { cause } => {
                    return Err(StorageError::Failed {
                        path: self.path.clone(),
                        cause: cause.clone(),
                    });
                }
            }
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.handle_error(error)),
            Err(panic) => Err(self.fail_damaged(panic_message(&*panic))),
        }
    }

    /// Turns an operation's error into what the caller sees, closing or failing the database
    /// as its class requires.
    fn handle_error(&self, error: StorageError) -> StorageError {
        match classify(&error) {
            FailureClass::Other => error,
            FailureClass::Corruption => self.fail_damaged(error_chain(&error)),
            FailureClass::Io => {
                let failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let (operation, cause) = match failure {
                    Some(failure) => (failure.operation, failure.cause),
                    // redb failed without a backend call failing: name what it said.
                    None => (FileOperation::Write, error_chain(&error)),
                };
                if operation == FileOperation::Sync {
                    return self.fail(
                        format!(
                            "fsync failed: {cause}; after a failed fsync the kernel may have dropped unwritten pages, so the node cannot know what reached the disk: check the device, then restart the node (the chain is checked when it opens)"
                        ),
                        "io",
                    );
                }
                self.close(operation, &cause);
                StorageError::Io {
                    path: self.path.clone(),
                    operation: operation.verb(),
                    cause,
                }
            }
        }
    }

    /// Closes the open database after an I/O error; a later operation reopens it.
    fn close(&self, operation: FileOperation, cause: &str) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, State::Open(_)) {
            return;
        }
        let now = Instant::now();
        let cause = format!("{} failed: {cause}", operation.verb());
        let State::Open(db) = std::mem::replace(
            &mut *state,
            State::Closed {
                cause: cause.clone(),
                since: now,
                last_attempt: now,
            },
        ) else {
            return;
        };
        // redb has marked the file for repair and writes nothing more after an I/O error.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(db)));
        drop(state);
        tracing::error!(
            path = %self.path.display(),
            error = %cause,
            retry_every_ms = duration_ms(self.settings.recovery.retry_every),
            give_up_after_ms = duration_ms(self.settings.recovery.give_up_after),
            "chain database i/o error: closed it, reopening"
        );
        self.metrics.record_failure("io");
        self.publish(StorageHealth::Recovering {
            cause: format!("{}: {cause}", self.path.display()),
        });
    }

    /// Gives up for the life of the process. An open database is leaked, never dropped:
    /// dropping it could write into a damaged file.
    fn fail(&self, cause: String, kind: &'static str) -> StorageError {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let State::Failed { cause } = &*state {
            return StorageError::Failed {
                path: self.path.clone(),
                cause: cause.clone(),
            };
        }
        if let State::Open(db) = std::mem::replace(
            &mut *state,
            State::Failed {
                cause: cause.clone(),
            },
        ) {
            std::mem::forget(db);
        }
        drop(state);
        tracing::error!(path = %self.path.display(), error = %cause, "chain database failed for good: refusing every operation");
        self.metrics.record_failure(kind);
        self.publish(StorageHealth::Failed {
            cause: format!("{}: {cause}", self.path.display()),
        });
        StorageError::Failed {
            path: self.path.clone(),
            cause,
        }
    }

    /// Gives up on a damaged file: the caller gets [`StorageError::Corrupted`], later calls
    /// [`StorageError::Failed`] with the same text.
    fn fail_damaged(&self, detail: String) -> StorageError {
        let damaged = StorageError::Corrupted {
            path: self.path.clone(),
            detail,
        };
        self.fail(damaged.to_string(), "corruption");
        damaged
    }

    /// Reopens a closed database when an attempt is due; fails for good past the window.
    fn reopen_if_due(&self) -> Result<(), StorageError> {
        if matches!(
            *self.state.read().unwrap_or_else(PoisonError::into_inner),
            State::Open(_)
        ) {
            return Ok(());
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let (cause, since, last_attempt) = match &*state {
            State::Open(_) => return Ok(()),
            State::Failed { cause } => {
                return Err(StorageError::Failed {
                    path: self.path.clone(),
                    cause: cause.clone(),
                });
            }
            State::Closed {
                cause,
                since,
                last_attempt,
            } => (cause.clone(), *since, *last_attempt),
        };
        if last_attempt.elapsed() < self.settings.recovery.retry_every {
            return Err(StorageError::Reopening {
                path: self.path.clone(),
                cause,
            });
        }
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let identity = *self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(what_is_at(&self.path, &identity), AtPath::Replaced) {
            drop(state);
            return Err(self.fail(
                "another file was put at the path while the database was closed after an i/o error; the node never opens a file it did not have open: restart it".to_owned(),
                "file_replaced",
            ));
        }
        let reopened = open_database(&self.path, &self.settings, &self.failure, false)
            .and_then(|(db, identity)| prove_writable(&db).map(|()| (db, identity)));
        match reopened {
            Ok((db, identity)) => {
                *self.identity.lock().unwrap_or_else(PoisonError::into_inner) = identity;
                *state = State::Open(db);
                drop(state);
                tracing::info!(
                    path = %self.path.display(),
                    down_ms = duration_ms(since.elapsed()),
                    "chain database reopened after an i/o error"
                );
                self.metrics.record_reopen(true);
                self.publish(StorageHealth::Healthy);
                Ok(())
            }
            Err(error) => {
                self.metrics.record_reopen(false);
                let detail = self
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .map_or_else(|| error_chain(&error), |failure| failure.cause);
                let given_up = since.elapsed() >= self.settings.recovery.give_up_after
                    || matches!(classify(&error), FailureClass::Corruption)
                    || matches!(error, StorageError::Corrupted { .. });
                if !given_up {
                    *state = State::Closed {
                        cause: cause.clone(),
                        since,
                        last_attempt: Instant::now(),
                    };
                    tracing::warn!(path = %self.path.display(), error = %detail, "chain database reopen failed: trying again");
                    return Err(StorageError::Reopening {
                        path: self.path.clone(),
                        cause,
                    });
                }
                drop(state);
                Err(self.fail(
                    format!(
                        "{cause}; reopening failed for {} ({detail}): fix the cause (free space, replace the device), then restart the node",
                        humanize(since.elapsed())
                    ),
                    "io",
                ))
            }
        }
    }

    fn publish(&self, health: StorageHealth) {
        self.metrics.set_healthy(health.is_healthy());
        self.health.send_replace(health);
    }
}

/// Opens the database file at `path` (creating it only when `create` is set), with an
/// [`ObservedBackend`] recording into `failure`; returns it with the identity of the file. A panic of redb while opening becomes
/// [`StorageError::Corrupted`].
///
/// # Errors
///
/// [`StorageError::Open`] for what redb or the file system refused, or
/// [`StorageError::Corrupted`].
pub(crate) fn open_database(
    path: &Path,
    settings: &OpenSettings,
    failure: &FailureSlot,
    create: bool,
) -> Result<(Database, FileIdentity), StorageError> {
    let open_error = |source: redb::Error| StorageError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|error| open_error(redb::Error::Io(error)))?;
    let identity = FileIdentity::of(&file).map_err(|error| open_error(redb::Error::Io(error)))?;
    let file = FileBackend::new(file).map_err(|error| match error {
        redb::DatabaseError::DatabaseAlreadyOpen => StorageError::InUse {
            path: path.to_path_buf(),
        },
        other => open_error(other.into()),
    })?;
    let backend = ObservedBackend::new(settings.backend.wrap(file), failure.clone());
    let repair_path = path.to_path_buf();
    let opened = catch_unwind(AssertUnwindSafe(|| {
        Database::builder()
            .set_cache_size(settings.cache_size_bytes)
            .set_repair_callback(move |session| {
                // A full repair walks the whole file: on a long chain the operator should know
                // why startup is slow.
                tracing::warn!(
                    path = %repair_path.display(),
                    progress = session.progress(),
                    "repairing chain database after unclean shutdown"
                );
            })
            .create_with_backend(backend)
    }));
    match opened {
        Ok(Ok(db)) => Ok((db, identity)),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)))) => {
            Err(StorageError::Corrupted {
                path: path.to_path_buf(),
                detail,
            })
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(error))))
            if error.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Err(StorageError::Corrupted {
                path: path.to_path_buf(),
                detail: format!(
                    "the file is shorter than its header says, it was truncated ({error})"
                ),
            })
        }
        Ok(Err(error)) => Err(open_error(error.into())),
        Err(panic) => Err(StorageError::Corrupted {
            path: path.to_path_buf(),
            detail: panic_message(&*panic),
        }),
    }
}

/// One durable write, so a reopened database is known to take writes before the store says
/// it is healthy again (opening alone writes only the header, which a full disk still takes).
fn prove_writable(db: &Database) -> Result<(), StorageError> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    txn.open_table(METADATA)?
        .insert(REOPENED_AT_KEY, &millis.to_be_bytes()[..])?;
    txn.commit()?;
    Ok(())
}

fn classify(error: &StorageError) -> FailureClass {
    match error {
        StorageError::Database(source) | StorageError::Open { source, .. } => match &**source {
            redb::Error::Io(_) | redb::Error::PreviousIo => FailureClass::Io,
            redb::Error::Corrupted(_) => FailureClass::Corruption,
            _ => FailureClass::Other,
        },
        StorageError::UndecodableBlock { .. }
        | StorageError::DamagedBlock { .. }
        | StorageError::Inconsistent { .. }
        | StorageError::Corrupted { .. } => FailureClass::Corruption,
        _ => FailureClass::Other,
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("the storage library panicked: {message}")
}

/// An error and its sources, joined by ": ".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn humanize(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

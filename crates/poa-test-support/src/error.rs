//! Typed errors of the fixtures' RESP client, so a test can tell "no answer in time" (a frozen or
//! held node) from "connection refused or reset" (a stopped node) without matching on strings.
//! Fixture set-up failures are not errors: they panic with a message saying what to do. A
//! [`crate::ChildProcess`] is run by tooling binaries too, which must not panic: its failures
//! are [`ProcessError`]s.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// Why a RESP request to a fixture (or anything listening on a loopback port) got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Nothing answered within the timeout (a frozen, held or half-alive peer).
    #[error("no reply from {addr} within {timeout:?}")]
    TimedOut {
        /// The address the request went to.
        addr: SocketAddr,
        /// The timeout that ran out (it covers connect, write and read).
        timeout: Duration,
    },
    /// The peer closed the connection before a complete reply arrived.
    #[error("{addr} closed the connection before replying")]
    Closed {
        /// The address the request went to.
        addr: SocketAddr,
    },
    /// Connecting, writing or reading failed (refused, reset, broken pipe...).
    #[error("i/o error talking to {addr}")]
    Io {
        /// The address the request went to.
        addr: SocketAddr,
        /// The underlying error; its `kind()` tells refused from reset.
        #[source]
        source: io::Error,
    },
    /// The reply was not valid RESP2.
    #[error("invalid resp from {addr}: {detail}")]
    Protocol {
        /// The address the request went to.
        addr: SocketAddr,
        /// What was wrong with the bytes.
        detail: String,
    },
}

impl RespError {
    /// Classifies an I/O error: socket timeouts surface as `WouldBlock` or `TimedOut`.
    pub(crate) fn from_io(addr: SocketAddr, timeout: Duration, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::TimedOut { addr, timeout },
            _ => Self::Io { addr, source },
        }
    }

    /// The I/O error kind when the request failed at the socket level.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            Self::TimedOut { .. } | Self::Closed { .. } | Self::Protocol { .. } => None,
        }
    }
}

/// Why a [`crate::ChildProcess`] could not be started, made ready or signalled.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be opened for appending.
    #[error("cannot open the log {path}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// The process exited while it was awaited to become ready.
    #[error("{name} exited with {status} at start; {log} ends:\n{tail}")]
    ExitedAtStart {
        /// The process's name.
        name: String,
        /// How it exited.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The process did not become ready in time; it was killed.
    #[error("{name} did not become ready within {waited:?}; {log} ends:\n{tail}")]
    NotReady {
        /// The process's name.
        name: String,
        /// How long it was given.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The process is not running (never started, killed or exited).
    #[error("{name} is not running")]
    NotRunning {
        /// The process's name.
        name: String,
    },
    /// A signal could not be sent.
    #[error("cannot send {signal} to {name}")]
    Signal {
        /// The process's name.
        name: String,
        /// The signal.
        signal: Signal,
        /// Why it could not be sent.
        #[source]
        errno: Errno,
    },
}

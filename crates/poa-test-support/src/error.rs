//! Typed errors of the fixtures' RESP client, so a test can tell "no answer in time" (a frozen or
//! held node) from "connection refused or reset" (a stopped node) without matching on strings.
//! Fixture set-up failures are not errors: they panic with a message saying what to do.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

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

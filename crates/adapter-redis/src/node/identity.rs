//! A node's server identity: the `run_id` its server reported (`INFO server`), which a
//! restarted server (emptied, or restored from a snapshot) reports anew, and whether the
//! client connected again since it was last asked. Two URLs of one server are told apart by it
//! (`fleet`), and the anti-entropy sweep starts a full pass at once when it changes. Owns no
//! I/O: the node fetches the `run_id` and hands it in.

use std::sync::{Mutex, PoisonError};

use fred::clients::Client;
use fred::interfaces::EventInterface;
use fred::types::config::Server;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

/// What recording a freshly fetched `run_id` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentityCheck {
    /// The same server as before.
    Unchanged,
    /// The first identity learnt (the first connection did not report one in time).
    Learnt,
    /// Another server answers at this URL: it restarted (its data may be older or gone), or
    /// the URL now reaches another server.
    Changed {
        /// The identity reported before.
        previous: String,
        /// The identity reported now.
        current: String,
    },
    /// The node did not report one.
    Unknown,
}

/// The identity last reported, and the client's (re)connections not yet looked at.
#[derive(Debug)]
pub(crate) struct ServerIdentity {
    run_id: Mutex<Option<String>>,
    connections: Mutex<Receiver<Server>>,
}

impl ServerIdentity {
    /// Subscribes to `client`'s connection events before it connects, so the first
    /// connection and every reconnection are seen.
    pub(crate) fn new(client: &Client) -> Self {
        Self {
            run_id: Mutex::new(None),
            connections: Mutex::new(client.reconnect_rx()),
        }
    }

    /// The identity last reported, if any.
    pub(crate) fn run_id(&self) -> Option<String> {
        self.run_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records what the server reported now (`None`: it did not answer) and compares it with
    /// what it reported before.
    pub(crate) fn record(&self, reported: Option<String>) -> IdentityCheck {
        let Some(current) = reported else {
            return IdentityCheck::Unknown;
        };
        let mut run_id = self.run_id.lock().unwrap_or_else(PoisonError::into_inner);
        match run_id.replace(current.clone()) {
            None => IdentityCheck::Learnt,
            Some(previous) if previous == current => IdentityCheck::Unchanged,
            Some(previous) => IdentityCheck::Changed { previous, current },
        }
    }

    /// Whether the client connected (for the first time, or again) since the last call: the
    /// server behind the connection may be another one. Never waits.
    pub(crate) fn connected_since_last_asked(&self) -> bool {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut connected = false;
        loop {
            match connections.try_recv() {
                // Lagged: connections were missed, which is at least one.
                Ok(_) | Err(TryRecvError::Lagged(_)) => connected = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return connected,
            }
        }
    }
}

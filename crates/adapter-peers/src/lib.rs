//! Committed blocks from other `poa-node` processes ("peers") over HTTP, for a process whose
//! next height was already trimmed from every Redis stream (a new replica, a long outage).
//!
//! The adapter implements [`poa_ports::BlockHistorySource`]: it asks each configured peer in
//! turn for a range of encoded sealed blocks (`GET /blocks/raw?from=<height>&limit=<n>`, framed
//! by [`poa_ports::encode_block_batch`]) and returns the first non-empty answer. Every request
//! is bounded by a timeout. It never verifies or commits: what it returns is untrusted and the
//! service verifies every block like any imported block.
//!
//! # Layout
//!
//! - [`config`]: the peer list and the request bounds, validated.
//! - [`peer_history`]: [`PeerBlockHistory`], the port over HTTP peers.
//! - [`noop`]: [`NoopBlockHistory`], for a process with no peer configured.
//! - [`transaction_relay`]: [`PeerTransactionRelay`], passes transactions a follower accepted on
//!   to its peers.
//! - [`error`]: configuration errors.
//!
//! Architecture invariant: depends on `poa-ports` only among workspace crates.

pub mod config;
pub mod error;
pub mod noop;
pub mod peer_history;
pub mod transaction_relay;

pub use config::PeerConfig;
pub use error::PeerConfigError;
pub use noop::NoopBlockHistory;
pub use peer_history::PeerBlockHistory;
pub use transaction_relay::{PeerTransactionRelay, RELAYED_HEADER};

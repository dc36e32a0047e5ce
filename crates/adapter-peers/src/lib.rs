//! The other `poa-node` processes ("peers") over HTTP: committed blocks from them, for a
//! process whose next height was already trimmed from every Redis stream (a new replica, a long
//! outage), and transactions relayed to them, so what one process accepts reaches the leader.
//!
//! The adapter implements [`poa_ports::BlockHistorySource`] for any chain with a
//! [`poa_ports::BlockCodec`]: it asks each configured peer in turn for a range of encoded
//! sealed blocks (`GET /blocks/raw?from=<height>&limit=<n>`, framed by
//! [`encode_block_batch`]) and returns the first non-empty answer. It never
//! verifies or commits: what it returns is untrusted and the service verifies every block like
//! any imported block. Every request, history or relay, is async on the runtime's workers,
//! bounded by a timeout and capped in size, over pooled keep-alive connections.
//!
//! # Layout
//!
//! - [`config`]: the peer list and the request bounds, validated.
//! - [`block_batch`]: the framing of several encoded blocks in one answer, which the node
//!   serving history writes and [`PeerBlockHistory`] reads.
//! - [`peer_history`]: [`PeerBlockHistory`], the port over HTTP peers.
//! - [`noop`]: [`NoopBlockHistory`], for a process with no peer configured.
//! - [`transaction_relay`]: [`PeerTransactionRelay`], passes accepted transactions on to the
//!   peers through a bounded queue per peer, in batches.
//! - [`resend`]: sends again what stays pending, and hands everything on when this process
//!   stops leading; [`PendingTransactions`] is how it reads the local pool.
//! - [`relay_batch`]: the framing of a relay request.
//! - `http_client`: the pooled async HTTP client behind both.
//! - `metrics`: the relay's metrics.
//! - [`error`]: configuration, relay batch and request errors.
//!
//! Architecture invariant: depends on `poa-ports` only among workspace crates.

pub mod block_batch;
pub mod config;
pub mod error;
mod http_client;
mod metrics;
pub mod noop;
pub mod peer_history;
pub mod relay_batch;
pub mod resend;
pub mod transaction_relay;

pub use block_batch::{BlockBatchError, encode_block_batch, split_block_batch};
pub use config::{PeerConfig, RelayBounds};
pub use error::{PeerConfigError, RelayBatchError};
pub use noop::NoopBlockHistory;
pub use peer_history::PeerBlockHistory;
pub use relay_batch::{RelayedTransaction, decode_relay_batch, encode_relay_batch};
pub use resend::PendingTransactions;
pub use transaction_relay::{PeerTransactionRelay, RELAY_PATH, RELAYED_HEADER};

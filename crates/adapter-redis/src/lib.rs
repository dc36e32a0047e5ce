//! `BlockReconciliationPort` over N independent Redis nodes: a quorum lease with fencing
//! epochs, a fenced quorum publish, and reconciliation with repair, as `docs/protocol.md`
//! specifies them: keys, scripts, timing, the state machine, failure handling with its tests,
//! metrics and tuning.
//!
//! # Map
//!
//! Pure rules first, then I/O, then the port that composes them:
//!
//! - [`config`]: [`RedisConfig`], validated once into derived values (quorum, drift, keys).
//! - `scripts` + `lua/*.lua`: the server-side scripts ([`SCRIPTS`], public with their text and
//!   SHA-1) and the one decoder per script that turns replies into typed outcomes.
//! - `node`: one fred client per node, each built by [`node_client`] (public: the benchmarks'
//!   floors run over the same client); every call bounded, never re-sent, reset on failure.
//! - `fanout`: one task per node, outcomes streamed back, stragglers finish in the background.
//! - `epoch_file`: the highest epoch this process has seen, kept across restarts.
//! - `membership`: the membership record this process joined (server ids per URL, the digest
//!   every script checks), reading it, bootstrapping a blank fleet, and a leader's
//!   re-admission of wiped members.
//! - `lease`: acquire, renewal, expansion to unheld nodes, release.
//! - `publish`: the fenced quorum publish of a produced block.
//! - `log_read`: the full read of the log from every node, each entry decoded and verified.
//! - `reconcile`: leadership generations, the walk over verified blocks, repair, follower
//!   sync.
//! - `repair`: the fenced write of a block below quorum to the nodes that lack it.
//! - `anti_entropy`: the leader's background sweep that keeps every height of the window
//!   below its head on a quorum.
//! - `tls`: the rustls client configuration of `rediss://` nodes (roots, client identity).
//! - `metrics`: the `poa_*` metrics on a registry passed in by the caller.
//! - [`cleanup`]: the operator's removal of entries proven invalid at a blocked height.
//! - `adapter`: [`RedisReconciliation`], the port implementation.
//! - [`error`]: configuration and construction errors, and the mapping into the port error.
//!
//! This crate is the only one that names `fred`; it depends on `poa-ports` only.

mod adapter;
mod anti_entropy;
pub mod cleanup;
pub mod config;
mod epoch_file;
pub mod error;
mod fanout;
mod lease;
mod log_read;
mod membership;
mod metrics;
mod node;
mod publish;
mod reconcile;
mod repair;
mod scripts;
mod tls;

pub use adapter::RedisReconciliation;
pub use cleanup::NodeRemoval;
pub use config::{
    Keys, MIN_STREAM_MAX_LEN, RedisConfig, RedisPassword, RedisSecurity, ValidatedConfig,
};
pub use error::{ConfigError, Error, SecurityFile, UrlList};
pub use membership::{
    MembershipWritten, begin_membership_change, commit_membership_change, init_membership,
    set_membership,
};
pub use node::node_client;
pub use poa_quorum::Quorum;
pub use scripts::{LuaScript, SCRIPTS, Scripts};

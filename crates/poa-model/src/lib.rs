//! An exhaustive, bounded model of the protocol in docs/protocol.md (leader lease, fencing epoch,
//! fenced quorum publish, publish-then-commit and the commit pipeline, reconciliation with the
//! walk and repair, trimmed streams), checked with stateright. It runs the code's own rules:
//! every node's state is `poa_quorum::script::NodeState` and changes only through
//! `script::promote` and `script::write_block`; acquisition, publish and repair decide with
//! `poa_quorum`'s tallies; reconciliation walks a `poa_quorum::LogView` with `decide` and repairs
//! with `plan_repair`. The model itself owns only what the code leaves to the world: which nodes
//! a step reaches, message delay and loss, lease expiry, process crashes, failed local commits
//! and node data loss, and states `poa-core`'s commit sequencing as its own steps. See the crate
//! README for what is modelled, the bounds and the results.

mod commit;
mod config;
mod error;
mod membership;
mod model;
mod mutation;
mod progress;
mod properties;
mod reconcile;
mod rules;
mod start;
mod state;

pub use config::{MembershipChange, ModelConfig, Start};
pub use error::ModelError;
pub use model::{ProtocolModel, stored_on};
pub use mutation::Mutation;
pub use progress::progress_possible;
pub use properties::{
    chains_are_prefixes_of_the_quorum_chain, no_fork, single_quorum_block_per_height,
};
pub use state::{
    Action, Block, BlockRef, Committed, Producer, Publish, Record, RedisNode, Role, Source, State,
    StreamEntry, Token, WriteMsg,
};
pub use stateright;

//! An exhaustive, bounded model of the protocol in PROTOCOL.md (leader lease, fencing epoch,
//! fenced quorum publish, publish-then-commit, reconciliation with votes and repair), checked
//! with stateright. It models the protocol; it runs none of the real code and depends on no other
//! workspace crate. See the crate README for what is modelled, what is abstracted and the results.

mod error;
mod model;
mod progress;
mod protocol;
mod state;

pub use error::ModelError;
pub use model::{ModelConfig, ProtocolModel, no_fork, single_quorum_block_per_height, stored_on};
pub use progress::progress_possible;
pub use protocol::{Mutation, WriteOutcome, holders, promote, vote, write_block};
pub use state::{
    Action, BlockId, Committed, Entry, Producer, Publish, RedisNode, State, Token, WriteMsg,
};
pub use stateright;

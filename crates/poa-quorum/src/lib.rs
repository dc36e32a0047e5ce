//! The rules of the quorum log as pure functions, shared by the Redis adapter that runs them
//! and the model that checks them.
//!
//! Everything here is a value or a pure function: callers gather per-node replies and hand them
//! in, and get decisions out. No I/O, no async, no clock (elapsed times are arguments). Because
//! `adapter-redis` and `poa-model` call the same functions, the model checks the code's own
//! rules rather than a copy of them.
//!
//! # Layout
//!
//! - [`quorum`]: how many nodes make a quorum.
//! - [`lease`]: Redlock validity and drift, the epoch fold, the promote and ownership tallies.
//! - [`write`](mod@write): the tally of a write fan-out (publish and repair).
//! - [`membership`]: which membership record a process joins, when a fleet bootstraps one,
//!   and which nodes a leader re-admits.
//! - [`latest`]: the cheap "anything above the local chain?" check.
//! - [`votes`]: candidates per height over distinct nodes, the winner and the repair plan.
//! - [`walk`]: what a reconciliation decides at each height, from verified blocks only.
//! - [`anti_entropy`]: which heights below a leader's head lost copies, and which of their
//!   blocks are proven committed so they may be copied back.
//! - [`window`]: how many entries each reconciliation read asks of a node.
//! - [`script`]: what `write_block` accepts on one node, as a pure function of the node's state.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        reason = "test arithmetic on small generated values"
    )
)]

pub mod anti_entropy;
#[cfg(test)]
mod fixtures;
pub mod latest;
pub mod lease;
pub mod membership;
pub mod quorum;
pub mod script;
pub mod votes;
pub mod walk;
pub mod window;
pub mod write;

pub use anti_entropy::{
    IndexClaims, WindowDecision, WindowWalk, sweep_window, verified_range, walk_window_down,
    window_bottom,
};
pub use latest::{LatestDecision, LatestTally};
pub use lease::{
    AcquireDecision, OwnerReply, OwnershipDecision, OwnershipTally, PromoteReply, PromoteTally,
    drift, fold_epoch, remaining_validity,
};
pub use membership::{
    ChangeRefusal, JointSides, MembershipDecision, MembershipMismatch, MembershipRecord,
    MembershipView, NodeMembership, Readmission, ServerId, WindowClaims, decide_membership,
    heights_short_before_commit, holds_joint_quorum, missing_members_allowed, plan_change_begin,
    plan_change_commit, plan_readmission, short_on_new_set,
};
pub use quorum::{NodeIndex, Quorum, majority};
pub use votes::{Candidate, HeightVotes, RepairPlan, may_replace_after, plan_repair};
pub use walk::{Coverage, HeightDecision, LogView};
pub use window::{ReadTiming, next_read_window};
pub use write::{WriteCounts, WriteDecision, WriteReply, WriteTally};

//! The domain service of the block producer: when to produce, whether this process may, and
//! the publish-then-commit path.
//!
//! The service runs one loop. Each wake-up (a trigger, a retry period, a manual request) runs
//! one **cycle**: ask the reconciliation port for this cycle's [`LeaderState`], then either
//! stay a follower, import committed blocks the local chain lacks, or produce the next block
//! (produce, seal, verify, publish to a quorum, and only then commit locally). A block's commit
//! runs while the next cycle produces and publishes the block above it, one commit at a time.
//!
//! # Layout
//!
//! - [`config`]: the validated service configuration and the production trigger.
//! - [`service`]: the loop, the cycle, and the handle other tasks use to observe and drive it.
//! - [`status`]: the status snapshot published after every cycle.
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`error`]: errors of the service's own API.
//!
//! The service is generic over the embedder's [`poa_ports::Chain`]: it carries the embedder's
//! blocks from port to port and reads them only through [`poa_ports::HeaderView`] and
//! [`poa_ports::SealedBlockView`] (height, id, date, transaction count).
//!
//! Architecture invariant: this crate depends on `poa-ports` only; it knows nothing of Redis,
//! storage, signatures or any particular block, and it takes time from the
//! [`poa_ports::Clock`] port and tokio's clock, so its tests run with paused time.
//!
//! [`LeaderState`]: poa_ports::LeaderState

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

pub mod config;
pub mod error;
pub mod metrics;
pub mod service;
pub mod status;

pub use config::{ServiceConfig, Trigger};
pub use error::{ServiceError, ServiceSetting};
pub use service::{CycleOutcome, LONGEST_HOLD_OFF, Ports, ProductionService, ServiceHandle};
pub use status::{Role, ServiceStatus};

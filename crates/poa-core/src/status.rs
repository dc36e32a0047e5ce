//! The status snapshot the service publishes after every cycle, for health checks, `/status`
//! and `/leader`.

use poa_ports::{BlockHeight, BlockId};

/// What this process did in its last cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No cycle has completed yet.
    Starting,
    /// The last cycle held the lease and was reconciled: this process produces.
    Leader,
    /// The last cycle found another process holding the lease.
    Follower,
    /// The last cycle imported committed blocks the local chain lacked.
    Syncing,
    /// The last cycle failed (coordination unreachable, publish failed, ...).
    Degraded,
    /// The service has shut down.
    Stopped,
}

impl Role {
    /// The role's name as status pages show it: lowercase.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Syncing => "syncing",
            Self::Degraded => "degraded",
            Self::Stopped => "stopped",
        }
    }
}

/// A snapshot of the service's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The role of the last cycle.
    pub role: Role,
    /// Height of the local head.
    pub height: BlockHeight,
    /// Id of the local head.
    pub head_id: BlockId,
    /// Blocks this process produced since it started.
    pub blocks_produced: u64,
    /// Blocks this process imported from the shared log since it started.
    pub blocks_imported: u64,
    /// The last cycle's failure, if the last cycle failed.
    pub last_error: Option<String>,
    /// Why this process does not compete for the lease, while it cannot keep its chain current
    /// (a gap no source fills, local storage failing, a block it refuses); cleared once it has
    /// caught up with the shared log.
    pub standing_aside: Option<String>,
}

impl ServiceStatus {
    /// The status before the first cycle.
    pub fn starting(height: BlockHeight, head_id: BlockId) -> Self {
        Self {
            role: Role::Starting,
            height,
            head_id,
            blocks_produced: 0,
            blocks_imported: 0,
            last_error: None,
            standing_aside: None,
        }
    }

    /// Whether this process produced, or may produce, in its last cycle.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

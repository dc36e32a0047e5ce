//! What the server-side scripts `promote` and `write_block` do on one node, as pure functions
//! of that node's state. `adapter-redis/lua/*.lua` implement exactly these rules (a test runs
//! both on the same operations and compares every answer); `poa-model` applies them to its
//! modelled nodes, so the model checks the scripts the code runs.

use std::collections::BTreeMap;

use poa_ports::{BlockHeight, BlockId, Epoch};

/// One node's state as the scripts see it. `T` is the owner token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeState<T> {
    /// The lease key: the owner's token, `None` when absent or expired.
    pub owner: Option<T>,
    /// The node's fencing epoch: never lowered by a script.
    pub epoch: Epoch,
    /// The heights index: which block each kept height holds.
    pub heights: BTreeMap<BlockHeight, BlockId>,
    /// The highest height ever trimmed from the index: no write at or below it is accepted.
    pub trim_floor: Option<BlockHeight>,
}

impl<T> Default for NodeState<T> {
    fn default() -> Self {
        Self {
            owner: None,
            epoch: Epoch::default(),
            heights: BTreeMap::new(),
            trim_floor: None,
        }
    }
}

/// What `promote` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteAnswer {
    /// The lease is the caller's on this node, at this epoch.
    Granted(Epoch),
    /// Another owner holds the lease here.
    LockHeld,
}

/// `promote(token, floor)`: take the lease if it is free, or continue a leadership of the same
/// token. `floor` is the highest epoch the caller used before this leadership.
///
/// - Another token holds the lease: `LockHeld`.
/// - This token holds it at an epoch above `floor` (a retry of this leadership's own promote,
///   or an expansion to a node it already holds): re-arm, same epoch, no increment.
/// - Otherwise (free, or this token's key lingering from an earlier leadership at an epoch not
///   above `floor`): take it, and raise the epoch to `max(epoch, floor) + 1`. A new leadership
///   therefore always gets an epoch above every epoch the caller used before, even on a node
///   that lost its data.
pub fn promote<T: PartialEq + Clone>(
    node: &mut NodeState<T>,
    token: &T,
    floor: Epoch,
) -> PromoteAnswer {
    match &node.owner {
        Some(owner) if owner != token => return PromoteAnswer::LockHeld,
        Some(_) if node.epoch > floor => return PromoteAnswer::Granted(node.epoch),
        _ => {}
    }
    node.owner = Some(token.clone());
    node.epoch = Epoch::new(node.epoch.max(floor).get().saturating_add(1));
    PromoteAnswer::Granted(node.epoch)
}

/// What `write_block` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAnswer {
    /// Appended and indexed.
    Written,
    /// The same block is already at that height (counts toward a quorum).
    AlreadyStored,
    /// Another block holds that height.
    HeightExists,
    /// The height is at or below the highest height this node trimmed from its index: it can
    /// no longer tell what it held there, so it takes nothing.
    HeightTrimmed,
    /// The caller does not hold the lease here.
    NotOwner,
    /// The caller's epoch is below the node's.
    StaleEpoch,
}

impl WriteAnswer {
    /// Whether the answer counts toward a quorum.
    pub fn stored(self) -> bool {
        matches!(self, Self::Written | Self::AlreadyStored)
    }
}

/// One `write_block` call: who writes what, and how many heights the node keeps indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWrite<'a, T> {
    /// The writer's owner token.
    pub token: &'a T,
    /// The writer's fencing epoch.
    pub epoch: Epoch,
    /// The height written.
    pub height: BlockHeight,
    /// The block written.
    pub id: BlockId,
    /// How many heights the index keeps (the lowest are trimmed beyond it).
    pub kept_heights: usize,
    /// The block this write may replace at the height, when the writer proved that no block
    /// there can be committed (a repair's `replacing`); `None` for an ordinary write.
    pub replaces: Option<BlockId>,
}

/// `write_block`, its checks in order: the owner, a stale epoch, the epoch healed upward (kept
/// even when a later check refuses), the height already held (the same block; the block the
/// write replaces, which is removed; or another), the trim floor, then the append with the
/// index trimmed to `kept_heights`.
pub fn write_block<T: PartialEq>(node: &mut NodeState<T>, write: BlockWrite<'_, T>) -> WriteAnswer {
    if node.owner.as_ref() != Some(write.token) {
        return WriteAnswer::NotOwner;
    }
    if write.epoch < node.epoch {
        return WriteAnswer::StaleEpoch;
    }
    node.epoch = write.epoch;
    if let Some(stored) = node.heights.get(&write.height).copied() {
        if stored == write.id {
            return WriteAnswer::AlreadyStored;
        }
        if write.replaces != Some(stored) {
            return WriteAnswer::HeightExists;
        }
        node.heights.remove(&write.height);
    }
    if node.trim_floor.is_some_and(|floor| write.height <= floor) {
        return WriteAnswer::HeightTrimmed;
    }
    node.heights.insert(write.height, write.id);
    while node.heights.len() > write.kept_heights {
        let Some((trimmed, _)) = node.heights.pop_first() else {
            break;
        };
        node.trim_floor = Some(node.trim_floor.map_or(trimmed, |floor| floor.max(trimmed)));
    }
    WriteAnswer::Written
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;

//! The protocol rules as pure functions over model data: the server-side scripts (`promote`,
//! `write_block`) and the reconciliation vote. Mutations switch individual checks off; nothing here
//! chooses what happens next (that is `model.rs`).

use crate::state::{BlockId, Entry, RedisNode, Token};

/// A protocol variant with one safety mechanism removed (or weakened), to show that it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// `write_block` step 4 refuses nothing: a different block at a stored height is appended.
    NoHeightCheck,
    /// `write_block` step 1 is skipped: any token may write if its epoch is not stale.
    NoOwnerCheck,
    /// Reconciliation skips sub-quorum blocks instead of repairing them, and the leader produces
    /// at that height.
    NoRepair,
    /// Reconciliation accepts one successful read instead of a quorum (the fuel-core fork).
    ReadAnyOneNode,
}

/// Outcome of `write_block` on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Appended and indexed, lease renewed.
    Written,
    /// The same block is already at that height (counts toward quorum).
    AlreadyStored,
    /// `HEIGHT_EXISTS`: another block holds that height.
    HeightTaken,
    /// `FENCING_ERROR`: not the owner, or a stale epoch.
    Fenced,
}

impl WriteOutcome {
    /// Whether the reply counts toward quorum.
    pub fn stored(self) -> bool {
        matches!(self, Self::Written | Self::AlreadyStored)
    }
}

/// `promote` on one node: `SET NX` + `INCR`, re-entrant for the same token. Returns the node's
/// epoch when granted, `None` for `LOCK_HELD` (or when the epoch bound forbids the `INCR`).
pub fn promote(node: &mut RedisNode, token: Token, max_epoch: u8) -> Option<u8> {
    match node.owner {
        Some(owner) if owner == token => Some(node.epoch),
        Some(_) => None,
        None if node.epoch >= max_epoch => None,
        None => {
            node.owner = Some(token);
            node.epoch += 1;
            Some(node.epoch)
        }
    }
}

/// `write_block` on one node, checks in the order of PROTOCOL.md section 3.
pub fn write_block(
    node: &mut RedisNode,
    token: Token,
    epoch: u8,
    id: BlockId,
    mutation: Option<Mutation>,
) -> WriteOutcome {
    if mutation != Some(Mutation::NoOwnerCheck) && node.owner != Some(token) {
        return WriteOutcome::Fenced;
    }
    if epoch < node.epoch {
        return WriteOutcome::Fenced;
    }
    // Heal upward before the height check, exactly as the script does.
    node.epoch = epoch;
    if node.entries.iter().any(|e| e.id == id) {
        return WriteOutcome::AlreadyStored;
    }
    if mutation != Some(Mutation::NoHeightCheck)
        && node.entries.iter().any(|e| e.id.height == id.height)
    {
        return WriteOutcome::HeightTaken;
    }
    node.entries.push(Entry { id, epoch });
    WriteOutcome::Written
}

/// Nodes (bit mask) among `read` that hold `id`.
pub fn holders(nodes: &[RedisNode], read: u8, id: BlockId) -> u8 {
    nodes
        .iter()
        .enumerate()
        .filter(|(n, node)| read & (1 << n) != 0 && node.entries.iter().any(|e| e.id == id))
        .fold(0, |mask, (n, _)| mask | (1 << n))
}

/// The vote at one height over the nodes in `read`: candidates grouped by block id over distinct
/// nodes; the one on a quorum wins, else the highest epoch, ties to the smallest id. `None` when
/// no read node has the height.
pub fn vote(nodes: &[RedisNode], read: u8, height: u8, quorum: u8) -> Option<BlockId> {
    let mut candidates: Vec<(BlockId, u8)> = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        if read & (1 << n) == 0 {
            continue;
        }
        for entry in node.entries.iter().filter(|e| e.id.height == height) {
            match candidates.iter_mut().find(|(id, _)| *id == entry.id) {
                Some((_, epoch)) => *epoch = (*epoch).max(entry.epoch),
                None => candidates.push((entry.id, entry.epoch)),
            }
        }
    }
    let on_quorum = candidates
        .iter()
        .find(|(id, _)| holders(nodes, read, *id).count_ones() >= u32::from(quorum));
    on_quorum
        .or_else(|| {
            candidates
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        })
        .map(|(id, _)| *id)
}

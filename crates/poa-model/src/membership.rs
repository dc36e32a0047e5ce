//! The membership records a check runs under, built by `poa_quorum`'s own rules: the old
//! record over the first `nodes` servers, and for a membership change the joint record
//! (`plan_change_begin`) and the new one (`plan_change_commit`). Their quorums are the records'
//! own (`MembershipRecord::quorum`), the commit's preconditions are `holds_joint_quorum` and
//! `heights_short_before_commit`. A node's record and a process's view are a [`Record`] naming
//! one of the three; comparing them is comparing the digests, which are checked to differ once
//! here, so the model compares a byte instead of hashing on every call.

use std::collections::BTreeSet;

use poa_ports::BlockHeight;
use poa_quorum::{
    MembershipRecord, Quorum, ServerId, WindowClaims, heights_short_before_commit,
    holds_joint_quorum, plan_change_begin, plan_change_commit,
};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::mutation::Mutation;
use crate::rules;
use crate::state::{Block, Record, RedisNode, Role};

/// The three records of a run (without a change, the joint and new ones are never installed).
#[derive(Clone, Debug)]
pub(crate) struct Records {
    /// Old, joint and new, by [`Record::index`].
    records: [MembershipRecord; 3],
    /// Each record's quorum, as its processes count.
    quorums: [Quorum; 3],
    /// Each record's members as model node indices, ascending: a process's node list.
    members: [Vec<u8>; 3],
    /// The same as bit masks.
    masks: [u8; 3],
}

/// The server id of model node `index`: fixed, since a wipe keeps the node's identity in the
/// model (see the crate README, "Membership change").
fn server_id(index: u8) -> ServerId {
    ServerId::from_random(u128::from(index) + 1)
}

impl Records {
    /// The records of `config`: the old set is nodes `0..nodes`; a change replaces the last
    /// `replaced` of them with the fresh nodes `nodes..nodes + replaced`.
    ///
    /// # Errors
    ///
    /// [`ModelError::Change`] when `poa_quorum` refuses to plan the change, or two records
    /// share a digest.
    pub(crate) fn of(config: &ModelConfig) -> Result<Self, ModelError> {
        let budget = usize::from(config.disruption_budget);
        let nodes = usize::from(config.nodes);
        let old = MembershipRecord::new(1, (0..config.nodes).map(server_id), nodes, budget);
        let (joint, new) = match config.change {
            None => (old.clone(), old.clone()),
            Some(change) => {
                let kept = config.nodes.saturating_sub(change.replaced);
                let new_ids = (0..kept)
                    .chain(config.nodes..config.servers())
                    .map(server_id);
                let joint =
                    plan_change_begin(&old, new_ids).map_err(|refused| ModelError::Change {
                        reason: refused.to_string(),
                    })?;
                let new = plan_change_commit(&joint).map_err(|refused| ModelError::Change {
                    reason: refused.to_string(),
                })?;
                let digests = [old.digest(), joint.digest(), new.digest()];
                if digests[0] == digests[1] || digests[1] == digests[2] || digests[0] == digests[2]
                {
                    return Err(ModelError::Change {
                        reason: "two records share a digest".to_owned(),
                    });
                }
                (joint, new)
            }
        };
        let records = [old, joint, new];
        let members = records.clone().map(|record| {
            (0..config.servers())
                .filter(|index| record.is_member(&server_id(*index)))
                .collect::<Vec<u8>>()
        });
        let masks = members
            .clone()
            .map(|members| members.iter().fold(0u8, |mask, index| mask | 1 << index));
        let quorums = records.clone().map(|record| record.quorum());
        Ok(Self {
            records,
            quorums,
            members,
            masks,
        })
    }

    /// The quorum a process of `view` counts.
    pub(crate) fn quorum(&self, view: Record) -> Quorum {
        self.quorums[view.index()]
    }

    /// The nodes a process of `view` is configured with.
    pub(crate) fn members(&self, view: Record) -> &[u8] {
        &self.members[view.index()]
    }

    /// The same as a bit mask.
    pub(crate) fn mask(&self, view: Record) -> u8 {
        self.masks[view.index()]
    }

    /// Whether `block` is on a quorum under some record: its copies written under that record
    /// make a quorum of it (what the properties call committed). A copy counts only under the
    /// record it was written under: a joint leader's late write that lands on an old node alone
    /// is on no quorum, though that node alone might once have made one of the old set.
    pub(crate) fn on_a_quorum(&self, nodes: &[RedisNode], block: Block) -> bool {
        [Record::Old, Record::Joint, Record::New]
            .into_iter()
            .any(|record| {
                let held = self
                    .members(record)
                    .iter()
                    .filter(|index| nodes[usize::from(**index)].holds_under(block, record))
                    .count();
                self.records[record.index()].quorum().reached(held)
            })
    }

    /// The commit command's checks on what it reads from every node: (a) the nodes holding the
    /// joint or the new record include a quorum of each set (skipped under
    /// [`Mutation::CommitWithoutJointQuorum`]), and (b) no height of the window up to the log's
    /// top is short on the new set, as the nodes holding the joint record claim it.
    pub(crate) fn commit_allowed(&self, nodes: &[RedisNode], mutation: Option<Mutation>) -> bool {
        let joint = &self.records[Record::Joint.index()];
        let holding_any = |records: &[Record]| -> BTreeSet<ServerId> {
            (0u8..)
                .zip(nodes)
                .filter(|(_, node)| node.record.is_some_and(|held| records.contains(&held)))
                .map(|(index, _)| server_id(index))
                .collect()
        };
        if holding_any(&[Record::Joint]).is_empty() {
            return false;
        }
        if mutation != Some(Mutation::CommitWithoutJointQuorum)
            && !holds_joint_quorum(joint, &holding_any(&[Record::Joint, Record::New]))
        {
            return false;
        }
        let mut claims = WindowClaims::new();
        for (index, node) in (0u8..).zip(nodes) {
            if node.record != Some(Record::Joint) {
                continue;
            }
            for entry in &node.stream {
                claims
                    .entry(rules::height_of(entry.block.height))
                    .or_default()
                    .entry(rules::id_of(entry.block))
                    .or_default()
                    .insert(server_id(index));
            }
        }
        heights_short_before_commit(joint, &claims, BlockHeight::new(1)).is_empty()
    }

    /// The role of model node `index` in the change.
    pub(crate) fn role(&self, index: u8) -> Role {
        let bit = 1 << index;
        match (
            self.mask(Record::Old) & bit != 0,
            self.mask(Record::New) & bit != 0,
        ) {
            (true, false) => Role::Retired,
            (false, true) => Role::Added,
            _ => Role::Kept,
        }
    }
}

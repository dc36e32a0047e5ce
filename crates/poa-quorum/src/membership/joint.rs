//! The joint phase of a membership change without downtime, as pure rules: the joint record
//! that names the old set and the new one, its quorum, when the operator may begin and commit
//! the change, and which heights the new set does not hold yet.
//!
//! The change moves the nodes' records forward through three generations: the old record, the
//! joint record (over the old one on the old set's nodes, onto the new nodes), the new record
//! (over the joint one only, and only once the joint record holds a quorum of each set and the
//! new set holds the log). A node accepts a script only from a caller that joined the record it
//! holds, so a process of the old set and one of the new set are never both served by a
//! quorum: every old quorum that still holds the old record is gone once the joint record holds
//! a quorum of the old set, before any node takes the new record (docs/protocol.md,
//! "Membership change").

use std::collections::{BTreeMap, BTreeSet};

use poa_ports::{BlockHeight, BlockId};
use sha2::{Digest, Sha256};

use super::{MembershipRecord, ServerId};
use crate::quorum::Quorum;

/// The two sets of a joint record, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointSides {
    /// The set the fleet leaves.
    pub old: Vec<ServerId>,
    /// The set the fleet moves to.
    pub new: Vec<ServerId>,
}

impl JointSides {
    /// The two sets (each sorted and deduplicated here).
    pub fn new(
        old: impl IntoIterator<Item = ServerId>,
        new: impl IntoIterator<Item = ServerId>,
    ) -> Self {
        let old: BTreeSet<ServerId> = old.into_iter().collect();
        let new: BTreeSet<ServerId> = new.into_iter().collect();
        Self {
            old: old.into_iter().collect(),
            new: new.into_iter().collect(),
        }
    }

    /// How many servers both sets name.
    pub fn shared(&self) -> usize {
        self.old
            .iter()
            .filter(|id| self.new.binary_search(id).is_ok())
            .count()
    }

    /// The count over the union that holds a quorum of each set ([`Quorum::joint`]).
    pub fn quorum(&self, budget: usize) -> Quorum {
        Quorum::joint(self.old.len(), self.new.len(), self.shared(), budget)
    }

    /// The old set's own record (generation 0: only its digest and quorum are used).
    pub fn old_record(&self, budget: usize) -> MembershipRecord {
        MembershipRecord::new(0, self.old.iter().cloned(), self.old.len(), budget)
    }

    /// The new set's own record (generation 0: only its digest and quorum are used).
    pub fn new_record(&self, budget: usize) -> MembershipRecord {
        MembershipRecord::new(0, self.new.iter().cloned(), self.new.len(), budget)
    }
}

/// A joint record's digest: SHA-256 over a tag and the digests of both sets.
pub(super) fn joint_digest(sides: &JointSides, budget: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"poa-membership-joint-v1\n");
    hasher.update(sides.old_record(budget).digest().as_bytes());
    hasher.update(b"\n");
    hasher.update(sides.new_record(budget).digest().as_bytes());
    hasher.update(b"\n");
    super::lowercase_hex(&hasher.finalize())
}

/// Why a step of a membership change may not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// `begin` found a joint record: a change is in progress.
    ChangeInProgress,
    /// `commit` found no joint record: no change was begun.
    NoChangeBegun,
    /// The current record has member slots without a server: fill them first.
    Vacancies {
        /// How many.
        vacancies: usize,
    },
    /// The new set is the old one, or empty.
    NothingToChange,
}

impl std::fmt::Display for ChangeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ChangeInProgress => f.write_str(
                "a membership change is in progress (the nodes hold a joint record): commit it first",
            ),
            Self::NoChangeBegun => f.write_str(
                "the nodes hold no joint record: run membership begin first (a commit without the joint phase could fork)",
            ),
            Self::Vacancies { vacancies } => write!(
                f,
                "the current record has {vacancies} member slot(s) without a server: let the leader fill them first"
            ),
            Self::NothingToChange => f.write_str("the new node list names the same servers as the current record"),
        }
    }
}

/// The joint record that begins a change from `current` (a plain record with no vacancies) to
/// the servers `new`, one generation above it.
///
/// # Errors
///
/// [`ChangeRefusal`] when `current` is joint, has vacancies, or names the same servers.
pub fn plan_change_begin(
    current: &MembershipRecord,
    new: impl IntoIterator<Item = ServerId>,
) -> Result<MembershipRecord, ChangeRefusal> {
    if current.joint.is_some() {
        return Err(ChangeRefusal::ChangeInProgress);
    }
    if current.vacancies() > 0 {
        return Err(ChangeRefusal::Vacancies {
            vacancies: current.vacancies(),
        });
    }
    let sides = JointSides::new(current.members.iter().cloned(), new);
    if sides.new.is_empty() || sides.new == sides.old {
        return Err(ChangeRefusal::NothingToChange);
    }
    let union: BTreeSet<ServerId> = sides.old.iter().chain(&sides.new).cloned().collect();
    let mut record = MembershipRecord::new(
        current.generation.saturating_add(1),
        union.iter().cloned(),
        union.len(),
        current.budget,
    );
    record.joint = Some(sides);
    Ok(record)
}

/// The record that commits the change `joint` names: the new set alone, one generation above.
///
/// # Errors
///
/// [`ChangeRefusal::NoChangeBegun`] when `joint` is not a joint record.
pub fn plan_change_commit(joint: &MembershipRecord) -> Result<MembershipRecord, ChangeRefusal> {
    let sides = joint.joint.as_ref().ok_or(ChangeRefusal::NoChangeBegun)?;
    Ok(MembershipRecord::new(
        joint.generation.saturating_add(1),
        sides.new.iter().cloned(),
        sides.new.len(),
        joint.budget,
    ))
}

/// Whether the servers `holding` (those that hold `joint`) make a quorum of the old set and a
/// quorum of the new set: from then on no quorum of the old set holds the old record, so the
/// new record may be installed.
pub fn holds_joint_quorum(joint: &MembershipRecord, holding: &BTreeSet<ServerId>) -> bool {
    let Some(sides) = &joint.joint else {
        return false;
    };
    let count = |set: &[ServerId]| set.iter().filter(|id| holding.contains(*id)).count();
    let old = sides.old_record(joint.budget).quorum();
    let new = sides.new_record(joint.budget).quorum();
    old.reached(count(&sides.old)) && new.reached(count(&sides.new))
}

/// Of `heights` (each height with the servers whose log holds the block the fleet committed
/// there), those that fewer than a quorum of the new set of `joint` hold: the log the new set
/// must hold before the commit drops the old one.
pub fn short_on_new_set(
    joint: &MembershipRecord,
    heights: &[(BlockHeight, BTreeSet<ServerId>)],
) -> Vec<BlockHeight> {
    let Some(sides) = &joint.joint else {
        return heights.iter().map(|(height, _)| *height).collect();
    };
    let quorum = sides.new_record(joint.budget).quorum();
    heights
        .iter()
        .filter(|(_, holders)| {
            !quorum.reached(sides.new.iter().filter(|id| holders.contains(*id)).count())
        })
        .map(|(height, _)| *height)
        .collect()
}

/// What the nodes holding a joint record claim in the window: per height, per block, the
/// servers whose log holds that block there.
pub type WindowClaims = BTreeMap<BlockHeight, BTreeMap<BlockId, BTreeSet<ServerId>>>;

/// The heights of the window from `lowest` up to the log's top that the new set of `joint` does
/// not hold yet, from what the nodes holding `joint` claim (`claims`): the commit waits until
/// there are none. The top is the highest height whose most-held block a quorum of the old set
/// holds (a block above it was not committed: every block committed under the joint record is on
/// a quorum of each set); at each height up to it, the most-held block must be on a quorum of the
/// new set, and a height no node names is short too.
pub fn heights_short_before_commit(
    joint: &MembershipRecord,
    claims: &WindowClaims,
    lowest: BlockHeight,
) -> Vec<BlockHeight> {
    let Some(sides) = &joint.joint else {
        return Vec::new();
    };
    let old_quorum = sides.old_record(joint.budget).quorum();
    let most_held: Vec<(BlockHeight, BTreeSet<ServerId>)> = claims
        .iter()
        .filter(|(height, _)| **height >= lowest)
        .filter_map(|(height, blocks)| {
            blocks
                .values()
                .max_by_key(|holders| holders.len())
                .map(|holders| (*height, holders.clone()))
        })
        .collect();
    let top = most_held
        .iter()
        .rev()
        .find(|(_, holders)| {
            old_quorum.reached(sides.old.iter().filter(|id| holders.contains(*id)).count())
        })
        .map(|(height, _)| *height);
    let Some(top) = top else {
        return Vec::new();
    };
    let below_top: Vec<(BlockHeight, BTreeSet<ServerId>)> = most_held
        .into_iter()
        .filter(|(height, _)| *height <= top)
        .collect();
    let mut short = short_on_new_set(joint, &below_top);
    let named: BTreeSet<BlockHeight> = below_top.iter().map(|(height, _)| *height).collect();
    short.extend(
        (lowest.get()..=top.get())
            .map(BlockHeight::new)
            .filter(|height| !named.contains(height)),
    );
    short.sort();
    short
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;

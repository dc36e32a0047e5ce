//! The membership identity of the node set, as pure decisions: which membership record a
//! process joins from what its nodes answered, when a fleet may bootstrap one by itself, and
//! which of its nodes a leader re-admits after they lost their identity.
//!
//! A server is known by the id written on it once (`{prefix}:server_id`), never by the text of
//! its URL; a record names the member ids, the number of nodes and the disruption budget, and
//! its digest is what every script compares with its caller's. Two processes can only have
//! their writes accepted on servers whose id and record match theirs, so quorums counted under
//! one record are quorums of one set of servers (docs/protocol.md, "Membership").
//!
//! A change of the set without downtime goes through a joint record (`joint`): it names the old
//! set and the new one, and every quorum counted under it is a quorum of both.

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::quorum::{NodeIndex, Quorum};

mod joint;

pub use joint::{
    ChangeRefusal, JointSides, WindowClaims, heights_short_before_commit, holds_joint_quorum,
    plan_change_begin, plan_change_commit, short_on_new_set,
};

/// A server's identity: 32 lowercase hex digits written once on the server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(String);

impl ServerId {
    /// The id as written on the server; `None` unless it is 32 lowercase hex digits (anything
    /// else was not written by a producer).
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == 32
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        valid.then(|| Self(text.to_owned()))
    }

    /// A new id from 128 random bits.
    pub fn from_random(bits: u128) -> Self {
        Self(format!("{bits:032x}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 8 digits name a server well enough in logs and the status page.
        f.write_str(self.0.get(..8).unwrap_or(&self.0))
    }
}

/// A membership record: the set of servers a fleet's quorums are counted over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    /// Raised by every change; a node takes a record only above the generation it holds.
    pub generation: u64,
    /// The member servers, sorted; at most `size` (fewer leave vacancies a leader fills).
    pub members: Vec<ServerId>,
    /// How many nodes the fleet has (`N`).
    pub size: usize,
    /// The disruption budget its quorums carry.
    pub budget: usize,
    /// During a membership change, the old set and the new one (`members` is then their union
    /// and `size` its count): every quorum counted under this record is a quorum of both.
    pub joint: Option<JointSides>,
}

impl MembershipRecord {
    /// A record over `members` (sorted and deduplicated here).
    pub fn new(
        generation: u64,
        members: impl IntoIterator<Item = ServerId>,
        size: usize,
        budget: usize,
    ) -> Self {
        let members: BTreeSet<ServerId> = members.into_iter().collect();
        Self {
            generation,
            members: members.into_iter().collect(),
            size,
            budget,
            joint: None,
        }
    }

    /// The digest scripts compare: SHA-256 over the sorted member ids, `N` and the budget, in
    /// lowercase hex. The generation is not in it: it orders records, the digest names a set.
    /// A joint record's digest names the digests of both its sets, so it is neither's: a
    /// process that joined only the old set or only the new one is refused where it is held.
    pub fn digest(&self) -> String {
        if let Some(sides) = &self.joint {
            return joint::joint_digest(sides, self.budget);
        }
        let mut hasher = Sha256::new();
        hasher.update(b"poa-membership-v1\n");
        hasher.update(format!("size={}\nbudget={}\n", self.size, self.budget).as_bytes());
        for member in &self.members {
            hasher.update(member.as_str().as_bytes());
            hasher.update(b"\n");
        }
        lowercase_hex(&hasher.finalize())
    }

    /// The quorum every decision under this record needs: a quorum of `size` with the budget,
    /// or under a joint record a count of its union that holds a quorum of each set.
    pub fn quorum(&self) -> Quorum {
        match &self.joint {
            None => Quorum::new(self.size, self.budget),
            Some(sides) => sides.quorum(self.budget),
        }
    }

    /// Whether `id` is a member.
    pub fn is_member(&self, id: &ServerId) -> bool {
        self.members.binary_search(id).is_ok()
    }

    /// How many member slots have no server yet.
    pub fn vacancies(&self) -> usize {
        self.size.saturating_sub(self.members.len())
    }

    /// The next generation's record: `replaced` ids swapped for new ones, `added` ids filling
    /// vacancies.
    pub fn successor(&self, replaced: &[(ServerId, ServerId)], added: &[ServerId]) -> Self {
        let members = self
            .members
            .iter()
            .map(|member| {
                replaced
                    .iter()
                    .find(|(old, _)| old == member)
                    .map_or_else(|| member.clone(), |(_, new)| new.clone())
            })
            .chain(added.iter().cloned());
        Self::new(
            self.generation.saturating_add(1),
            members,
            self.size,
            self.budget,
        )
    }
}

/// A digest as the records carry it: lowercase hex.
fn lowercase_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl fmt::Display for MembershipRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = self.digest();
        write!(
            f,
            "generation {} ({})",
            self.generation,
            digest.get(..12).unwrap_or(&digest)
        )?;
        match &self.joint {
            Some(sides) => write!(
                f,
                ", joint: {} old and {} new servers",
                sides.old.len(),
                sides.new.len()
            ),
            None => Ok(()),
        }
    }
}

/// What one node answered when its identity and record were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeMembership {
    /// No answer: nothing is known about the server there.
    Unreachable,
    /// The node answered.
    Answered {
        /// Its server id, if it has one.
        server_id: Option<ServerId>,
        /// Its membership record, if it holds one.
        record: Option<MembershipRecord>,
    },
}

impl NodeMembership {
    /// Answered without a record (an id alone is what a bootstrap cut short leaves).
    fn holds_no_record(&self) -> bool {
        matches!(self, Self::Answered { record: None, .. })
    }
}

/// A process's view of the membership: the record it joined and, per URL, the member id it
/// expects there (`None`: none known; the node has no vote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    /// The record joined.
    pub record: MembershipRecord,
    /// Per configured URL, the member id read there.
    pub expected: Vec<Option<ServerId>>,
}

/// What a process does with what its nodes answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipDecision {
    /// Join this view.
    Join(MembershipView),
    /// Every node answered and none holds a record (a fresh fleet, or one from before
    /// membership records): write ids and the first record.
    Bootstrap,
    /// Neither: do not lead, do not count votes, say why, and read again later.
    FailClosed(MembershipMismatch),
}

/// Why a process's node list matches no record it may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipMismatch {
    /// No node holds a record that names its own id.
    NoRecord {
        /// What each node holds, as the status page says it.
        nodes: Vec<String>,
    },
    /// The current record does not fit this process: another node count or budget, too few
    /// answers, a server that is not a member, one server at two URLs, a conflicting record at
    /// a member, or more nodes without a member id than the budget allows.
    Conflict {
        /// The record held by a quorum.
        record: String,
        /// What does not fit.
        reason: String,
        /// What each node holds.
        nodes: Vec<String>,
    },
}

impl fmt::Display for MembershipMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRecord { nodes } => write!(
                f,
                "no configured node holds a membership record that names it (blank or foreign nodes: run poa-node membership init when the node list is right): {}",
                nodes.join("; ")
            ),
            Self::Conflict {
                record,
                reason,
                nodes,
            } => write!(
                f,
                "the membership record {record} does not match the configured nodes: {reason}: {}",
                nodes.join("; ")
            ),
        }
    }
}

/// Says what node `index` answered, for a mismatch.
fn describe_node(index: NodeIndex, node: &NodeMembership) -> String {
    match node {
        NodeMembership::Unreachable => format!("node {index}: no answer"),
        NodeMembership::Answered { server_id, record } => {
            let id = server_id
                .as_ref()
                .map_or_else(|| "no server id".to_owned(), |id| format!("server {id}"));
            let record = record.as_ref().map_or_else(
                || "no record".to_owned(),
                |record| format!("record {record}"),
            );
            format!("node {index}: {id}, {record}")
        }
    }
}

/// Decides what a process does with what its nodes answered (in configuration order), for a
/// fleet of `quorum.nodes()` nodes with disruption budget `budget`:
///
/// - every node answered and none holds a record (a fresh fleet, an upgrade from before
///   records, or a bootstrap cut short after it wrote ids): [`MembershipDecision::Bootstrap`];
/// - else the record of the highest generation that a node whose id is one of its members
///   holds, when it is for this `N` and budget, at least a quorum of nodes answered, every
///   other node that answered is a member (holding it, or an older record: it lags), has no
///   id, or holds an id an older record names (retired), no server answers at two URLs, no
///   member holds another record of the same or a later generation, and at most
///   [`missing_members_allowed`] plus the record's vacancies answered without a member id:
///   [`MembershipDecision::Join`];
/// - anything else fails closed, naming what each node holds.
///
/// Joining grants nothing: a node accepts a script only from a caller whose expected id and
/// digest are its own, so a view only decides which nodes this process asks.
pub fn decide_membership(
    nodes: &[NodeMembership],
    quorum: Quorum,
    budget: usize,
) -> MembershipDecision {
    if !nodes.is_empty() && nodes.iter().all(NodeMembership::holds_no_record) {
        return MembershipDecision::Bootstrap;
    }
    let described = || {
        nodes
            .iter()
            .enumerate()
            .map(|(index, node)| describe_node(index, node))
            .collect::<Vec<_>>()
    };
    let mut current: Option<&MembershipRecord> = None;
    for node in nodes {
        if let NodeMembership::Answered {
            server_id: Some(id),
            record: Some(record),
        } = node
            && record.is_member(id)
            && current.is_none_or(|chosen| record.generation > chosen.generation)
        {
            current = Some(record);
        }
    }
    let Some(record) = current else {
        return MembershipDecision::FailClosed(MembershipMismatch::NoRecord { nodes: described() });
    };
    let conflict = |reason: String| {
        MembershipDecision::FailClosed(MembershipMismatch::Conflict {
            record: record.to_string(),
            reason,
            nodes: described(),
        })
    };
    if let Some(sides) = &record.joint
        && (record.quorum() != quorum || record.budget != budget)
    {
        return conflict(format!(
            "a membership change is in progress from {} to {} nodes: start this process with the old list as --redis-url and the new one as --next-redis-url, with budget {}",
            sides.old.len(),
            sides.new.len(),
            record.budget
        ));
    }
    if record.quorum() != quorum || record.budget != budget {
        return conflict(format!(
            "it is for {} nodes with budget {}, this process has {} with budget {}",
            record.size,
            record.budget,
            quorum.nodes(),
            budget
        ));
    }
    let answered = nodes
        .iter()
        .filter(|node| matches!(node, NodeMembership::Answered { .. }))
        .count();
    if !quorum.reached(answered) {
        return conflict(format!(
            "only {answered} nodes answered, fewer than the quorum of {}",
            quorum.size()
        ));
    }
    let mut expected = Vec::with_capacity(nodes.len());
    let mut without_member_id = 0usize;
    for (index, node) in nodes.iter().enumerate() {
        let NodeMembership::Answered {
            server_id,
            record: held,
        } = node
        else {
            expected.push(None);
            continue;
        };
        match server_id {
            Some(id) if record.is_member(id) => {
                if expected.contains(&Some(id.clone())) {
                    return conflict(format!("server {id} answers at two urls (node {index})"));
                }
                if let Some(held) = held
                    && held != record
                    && held.generation >= record.generation
                {
                    return conflict(format!("member node {index} holds another record, {held}"));
                }
                expected.push(Some(id.clone()));
            }
            Some(id) => {
                // A server whose id a later record replaced (restored from an older snapshot)
                // lags, and one with an id but no record was emptied and given a new id by a
                // re-admission that installed nothing there yet; any other server (holding a
                // record of its own) is not one of this set.
                if !awaits_readmission(held.as_ref(), record) {
                    return conflict(format!("node {index} is server {id}, not a member"));
                }
                without_member_id = without_member_id.saturating_add(1);
                expected.push(None);
            }
            None => {
                without_member_id = without_member_id.saturating_add(1);
                expected.push(None);
            }
        }
    }
    let may_miss = missing_members_allowed(quorum, budget).saturating_add(record.vacancies());
    if without_member_id > may_miss {
        return conflict(format!(
            "{without_member_id} nodes answer without a member id, more than the {may_miss} this fleet may miss"
        ));
    }
    MembershipDecision::Join(MembershipView {
        record: record.clone(),
        expected,
    })
}

/// How many members may answer without their id (wiped, or restored from before their
/// re-admission) while a process still joins the record: the disruption budget, or the nodes a
/// quorum can do without when that is more. Beyond it too much of the log may be gone with them
/// for a leader to put it back by itself: the process fails closed and an operator decides.
pub fn missing_members_allowed(quorum: Quorum, budget: usize) -> usize {
    budget.max(quorum.nodes().saturating_sub(quorum.size()))
}

/// Whether a node answering with a server id that `record` does not name waits to be
/// re-admitted rather than belonging elsewhere: it holds an older record (restored from before
/// the record that retired its id), or none at all (emptied, then given a new id by a
/// re-admission that installed no record there yet). A node holding a record of the same or a
/// later generation that does not name it is another fleet's, or another change's.
fn awaits_readmission(held: Option<&MembershipRecord>, record: &MembershipRecord) -> bool {
    held.is_none_or(|held| held.generation < record.generation)
}

/// One node a leader re-admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readmission {
    /// The URL's position.
    pub node: NodeIndex,
    /// The member id this process read there before, which the new id replaces (`None`: the
    /// node fills a vacancy).
    pub replaces: Option<ServerId>,
    /// The retired id the node holds now, which the new id overwrites (`None`: the node holds
    /// no id, or a new one that no record names yet, which the claim keeps).
    pub found: Option<ServerId>,
}

/// Which nodes a leader re-admits, given the view it joined (`view`, under which it holds the
/// lease on a quorum), the member id it read at each URL before (`known`) and what each node
/// answers now (`now`): a node that answers without a member id (none at all, or one a later
/// record retired) where this process read a member id before, and, while the record has
/// vacancies, such nodes where it read none. A node that did not answer, or whose id is a
/// member, is never re-admitted.
pub fn plan_readmission(
    view: &MembershipView,
    known: &[Option<ServerId>],
    now: &[NodeMembership],
) -> Vec<Readmission> {
    // A joint record is short-lived and names both sets: a member lost during the change
    // stays missing until the change is committed, and the new record's leader re-admits it.
    if view.record.joint.is_some() {
        return Vec::new();
    }
    let mut vacancies = view.record.vacancies();
    let mut plan = Vec::new();
    for (index, node) in now.iter().enumerate() {
        let NodeMembership::Answered { server_id, record } = node else {
            continue;
        };
        let found = match server_id {
            None => None,
            Some(id) if view.record.is_member(id) => continue,
            Some(id) => {
                if !awaits_readmission(record.as_ref(), &view.record) {
                    continue;
                }
                // A retired id is overwritten; a new id another process gave an emptied node
                // is kept (the claim returns it), so every process re-admits the node alike.
                record.as_ref().map(|_| id.clone())
            }
        };
        let replaces =
            known.get(index).cloned().flatten().filter(|id| {
                view.record.is_member(id) && !view.expected.contains(&Some(id.clone()))
            });
        if replaces.is_none() {
            if vacancies == 0 {
                continue;
            }
            vacancies = vacancies.saturating_sub(1);
        }
        if let Some(replaced) = &replaces
            && plan
                .iter()
                .any(|earlier: &Readmission| earlier.replaces.as_ref() == Some(replaced))
        {
            continue;
        }
        plan.push(Readmission {
            node: index,
            replaces,
            found,
        });
    }
    plan
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;

//! The operator's membership commands: `init` writes server ids and a first record on nodes
//! that hold none (a fresh fleet started while a node was down, which no process bootstraps by
//! itself), and `set` writes the next generation over the current record for a stop-the-world
//! change of the node list. Both refuse while any node holds a lease, and say what they wrote.

use super::join::{Installer, install_everywhere, read_all_with_leases};
use crate::config::RedisConfig;
use crate::error::Error;
use crate::node::DetachedFleet;
use crate::scripts::InstallOutcome;
use poa_quorum::{MembershipRecord, NodeMembership, ServerId};

/// What an operator's membership command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipWritten {
    /// The record's generation.
    pub generation: u64,
    /// The record's digest.
    pub digest: String,
    /// How many member ids it names (fewer than the nodes: the others are vacancies a leader
    /// fills when they answer).
    pub members: usize,
    /// Per node, in configuration order, what it answered.
    pub nodes: Vec<String>,
}

/// Writes server ids on the nodes that answer without one and a first membership record over
/// them, on every node that holds no record yet. For a fleet whose nodes hold no record and that
/// no process bootstrapped because a node was down: the nodes that do not answer now become
/// vacancies, filled by the leader once they answer blank.
///
/// # Errors
///
/// [`Error::Membership`] when a node already holds a record (use [`set_membership`]), fewer
/// than a quorum of nodes answer, or the record reached fewer than a quorum; as
/// [`crate::RedisReconciliation::connect`] otherwise.
pub async fn init_membership(config: RedisConfig) -> Result<MembershipWritten, Error> {
    let fleet = OperatorNodes::connect(config).await?;
    let answers = fleet.read().await;
    if answers.iter().any(|answer| {
        matches!(
            answer,
            NodeMembership::Answered {
                record: Some(_),
                ..
            }
        )
    }) {
        return Err(refusal(
            "a node already holds a membership record: use `membership set` to change it",
            &answers,
        ));
    }
    let answered: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| matches!(answer, NodeMembership::Answered { .. }))
        .map(|(index, _)| index)
        .collect();
    if !fleet.quorum().reached(answered.len()) {
        return Err(refusal(
            "fewer than a quorum of the nodes answer: start them and run it again",
            &answers,
        ));
    }
    let ids = fleet.claim_ids(&answered, &answers).await?;
    let record = fleet.record(1, ids);
    fleet.install(record, |_| String::new(), &answers).await
}

/// Writes the next generation's record over the current one, naming the server of every
/// configured node (each gets an id if it has none): the stop-the-world change of the node list
/// (docs/operations.md). Every configured node must answer and no node may hold a lease (stop
/// every producer first). Nodes of the old list that are not configured here keep the old
/// record, which no longer names a quorum of servers that hold it.
///
/// # Errors
///
/// [`Error::Membership`] when a node does not answer, holds a lease, or refuses the record; as
/// [`crate::RedisReconciliation::connect`] otherwise.
pub async fn set_membership(config: RedisConfig) -> Result<MembershipWritten, Error> {
    let fleet = OperatorNodes::connect(config).await?;
    let answers = fleet.read_without_leases().await?;
    if answers.contains(&NodeMembership::Unreachable) {
        return Err(refusal(
            "every configured node must answer for a change of the node list",
            &answers,
        ));
    }
    let all: Vec<usize> = (0..answers.len()).collect();
    let ids = fleet.claim_ids(&all, &answers).await?;
    let generation = answers
        .iter()
        .filter_map(|answer| match answer {
            NodeMembership::Answered {
                record: Some(record),
                ..
            } => Some(record.generation),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let held: Vec<String> = answers
        .iter()
        .map(|answer| match answer {
            NodeMembership::Answered {
                record: Some(record),
                ..
            } => record.digest(),
            _ => String::new(),
        })
        .collect();
    let record = fleet.record(generation, ids);
    fleet
        .install(
            record,
            |index| held.get(index).cloned().unwrap_or_default(),
            &answers,
        )
        .await
}

pub(super) fn refusal(reason: &str, answers: &[NodeMembership]) -> Error {
    Error::Membership {
        reason: format!("{reason}: {}", describe(answers).join("; ")),
    }
}

fn describe(answers: &[NodeMembership]) -> Vec<String> {
    answers
        .iter()
        .enumerate()
        .map(|(index, answer)| match answer {
            NodeMembership::Unreachable => format!("node {index}: no answer"),
            NodeMembership::Answered { server_id, record } => format!(
                "node {index}: {}, {}",
                server_id
                    .as_ref()
                    .map_or_else(|| "no server id".to_owned(), |id| format!("server {id}")),
                record.as_ref().map_or_else(
                    || "no record".to_owned(),
                    |record| format!("record {record}")
                )
            ),
        })
        .collect()
}

/// The configured nodes, connected as the adapter connects them, for one command. An operator
/// holds no lease: its token is empty and never written.
pub(super) struct OperatorNodes {
    pub(super) fleet: DetachedFleet,
}

impl OperatorNodes {
    pub(super) async fn connect(config: RedisConfig) -> Result<Self, Error> {
        Ok(Self {
            fleet: DetachedFleet::connect(config, String::new()).await?,
        })
    }

    /// What every node holds.
    pub(super) async fn read(&self) -> Vec<NodeMembership> {
        read_all_with_leases(
            &self.fleet.nodes,
            &self.fleet.tracker,
            self.quorum(),
            self.fleet.membership.read_grace(),
        )
        .await
        .into_iter()
        .map(|(answer, _)| answer)
        .collect()
    }

    /// What every node holds; refuses while any node holds a lease (a producer runs).
    async fn read_without_leases(&self) -> Result<Vec<NodeMembership>, Error> {
        let read = read_all_with_leases(
            &self.fleet.nodes,
            &self.fleet.tracker,
            self.quorum(),
            self.fleet.membership.read_grace(),
        )
        .await;
        let leased: Vec<String> = read
            .iter()
            .enumerate()
            .filter(|(_, (_, lease_held))| *lease_held)
            .map(|(index, _)| index.to_string())
            .collect();
        let answers: Vec<NodeMembership> = read.into_iter().map(|(answer, _)| answer).collect();
        if !leased.is_empty() {
            return Err(refusal(
                &format!(
                    "a lease is held on node(s) {}: stop every producer (and wait one lease ttl) first",
                    leased.join(", ")
                ),
                &answers,
            ));
        }
        Ok(answers)
    }

    pub(super) fn quorum(&self) -> poa_quorum::Quorum {
        self.fleet.membership.quorum()
    }

    /// A record of this fleet's size and budget over `ids`.
    fn record(&self, generation: u64, ids: Vec<ServerId>) -> MembershipRecord {
        let membership = &self.fleet.membership;
        MembershipRecord::new(
            generation,
            ids,
            membership.quorum().nodes(),
            membership.budget(),
        )
    }

    /// The server id of each node in `indices`, giving one to those without.
    pub(super) async fn claim_ids(
        &self,
        indices: &[usize],
        answers: &[NodeMembership],
    ) -> Result<Vec<ServerId>, Error> {
        let mut ids = Vec::with_capacity(indices.len());
        for &index in indices {
            let (Some(node), Some(answer)) = (self.fleet.nodes.get(index), answers.get(index))
            else {
                continue;
            };
            if let NodeMembership::Answered {
                server_id: Some(id),
                ..
            } = answer
            {
                ids.push(id.clone());
                continue;
            }
            let id = node
                .claim_server_id(&ServerId::from_random(rand::random()), None)
                .await
                .map_err(|error| {
                    refusal(
                        &format!("node {index} did not take a server id ({error})"),
                        answers,
                    )
                })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Installs `record` on every node over `previous(node)`, as an operator (only where no
    /// lease is held), and requires a quorum of its members to hold it.
    async fn install(
        &self,
        record: MembershipRecord,
        previous: impl Fn(usize) -> String,
        answers: &[NodeMembership],
    ) -> Result<MembershipWritten, Error> {
        let mut outcomes = install_everywhere(
            &self.fleet.nodes,
            &self.fleet.tracker,
            &record,
            previous,
            Installer::Operator,
        )
        .await;
        outcomes.sort_by_key(|(index, _)| *index);
        let holding = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == InstallOutcome::Holds)
            .count();
        let nodes: Vec<String> = outcomes
            .iter()
            .map(|(index, outcome)| match outcome {
                InstallOutcome::Holds => format!("node {index}: holds it"),
                InstallOutcome::Refused { reason } => format!("node {index}: refused: {reason}"),
                InstallOutcome::Failed(error) => format!("node {index}: no answer: {error}"),
            })
            .collect();
        if !self.quorum().reached(holding) {
            return Err(refusal(
                &format!(
                    "the record {record} reached {holding} nodes, fewer than a quorum ({})",
                    nodes.join("; ")
                ),
                answers,
            ));
        }
        tracing::info!(membership = %record, holding, "membership written by the operator");
        Ok(MembershipWritten {
            generation: record.generation,
            digest: record.digest(),
            members: record.members.len(),
            nodes,
        })
    }
}

//! The operator's membership change without downtime: `begin` writes the joint record that
//! names the old node list and the new one, `commit` writes the new list's record over it once
//! the new nodes hold the log. Both run while the producers run; the rules (which record,
//! when a step may be taken, which heights the new set lacks) are
//! `poa_quorum::membership`'s, and docs/operations.md 7.14 is the procedure.

use std::collections::BTreeSet;

use poa_ports::BlockHeight;
use poa_quorum::{
    MembershipRecord, MembershipView, NodeIndex, NodeMembership, ServerId, WindowClaims,
    heights_short_before_commit, holds_joint_quorum, plan_change_begin, plan_change_commit,
    sweep_window, window_bottom,
};

use super::join::{Installer, install_everywhere};
use super::operator::{MembershipWritten, OperatorNodes, refusal};
use crate::config::{ChangeLists, RedisConfig};
use crate::error::Error;
use crate::fanout::FanOut;
use crate::node::NodeHandle;
use crate::scripts::InstallOutcome;

/// Begins the change from the record the `--redis-url` nodes hold to the `--next-redis-url`
/// list: gives the new nodes server ids and writes the joint record over the old one (onto the
/// new nodes), also where a producer holds the lease. From then on a process of the old list
/// alone is refused and one started with both lists leads. Run again, it completes a begin cut
/// short.
///
/// # Errors
///
/// [`Error::Membership`] without `--next-redis-url`, when a node of the new list does not
/// answer or holds another fleet's record, the current record has vacancies or is another
/// change's, or the joint record reached no quorum of each list; as
/// [`crate::RedisReconciliation::connect`] otherwise.
pub async fn begin_membership_change(config: RedisConfig) -> Result<MembershipWritten, Error> {
    let fleet = OperatorNodes::connect(config).await?;
    let lists = change_lists(&fleet)?;
    let answers = fleet.read().await;
    let current = current_record(&answers).ok_or_else(|| {
        refusal(
            "no node of the old list holds a membership record",
            &answers,
        )
    })?;
    for &position in &lists.new {
        match answers.get(position) {
            Some(NodeMembership::Answered { record: None, .. }) => {}
            Some(NodeMembership::Answered {
                server_id: Some(id),
                record: Some(_),
            }) if current.is_member(id) => {}
            _ => {
                return Err(refusal(
                    &format!(
                        "node {position} of the new list must answer, and hold no record unless it is a current member (flush a reused server)"
                    ),
                    &answers,
                ));
            }
        }
    }
    let new_ids = fleet.claim_ids(&lists.new, &answers).await?;
    let joint = match &current.joint {
        Some(sides) if sides.new == sorted(&new_ids) => current.clone(),
        _ => plan_change_begin(&current, new_ids)
            .map_err(|refused| refusal(&refused.to_string(), &answers))?,
    };
    let previous: Vec<String> = answers
        .iter()
        .map(|answer| match answer {
            NodeMembership::Answered {
                record: Some(held), ..
            } if held.generation < joint.generation => held.digest(),
            _ => String::new(),
        })
        .collect();
    install_step_record(
        &fleet,
        &fleet.fleet.nodes,
        &joint,
        |index| previous.get(index).cloned().unwrap_or_default(),
        &answers,
        ChangeStep::Begin,
    )
    .await
}

/// Commits the change `begin` started: checks that the joint record holds a quorum of each
/// list and that a quorum of the new list holds every height of the window below the log's
/// top (the joint leader copies it there), then writes the new list's record over the joint
/// one on the new nodes. From then on a process started with both lists is refused and one of
/// the new list alone leads.
///
/// # Errors
///
/// [`Error::Membership`] without `--next-redis-url`, when the nodes hold no joint record or it
/// holds no quorum of each list, when heights of the window are short on the new list (run it
/// again once the leader copied them), or the new record reached no quorum of the new list; as
/// [`crate::RedisReconciliation::connect`] otherwise.
pub async fn commit_membership_change(config: RedisConfig) -> Result<MembershipWritten, Error> {
    let fleet = OperatorNodes::connect(config).await?;
    let lists = change_lists(&fleet)?;
    let answers = fleet.read().await;
    let joint = answers
        .iter()
        .filter_map(|answer| match answer {
            NodeMembership::Answered {
                record: Some(record),
                ..
            } if record.joint.is_some() => Some(record),
            _ => None,
        })
        .max_by_key(|record| record.generation)
        .cloned()
        .ok_or_else(|| {
            refusal(
                "the nodes hold no joint record: run membership begin first",
                &answers,
            )
        })?;
    let new =
        plan_change_commit(&joint).map_err(|refused| refusal(&refused.to_string(), &answers))?;
    let moved_on: BTreeSet<ServerId> = ids_holding(&answers, |held| held == &new || held == &joint);
    if !holds_joint_quorum(&joint, &moved_on) {
        return Err(refusal(
            "the joint record holds no quorum of each list: run membership begin again",
            &answers,
        ));
    }
    if !ids_holding(&answers, |held| held == &new).is_empty() {
        tracing::info!(membership = %new, "membership commit resumed: a node holds the new record");
    } else {
        let short = heights_short_on_new(&fleet, &joint, &answers).await?;
        if let (Some(first), Some(last)) = (short.first(), short.last()) {
            return Err(refusal(
                &format!(
                    "{} height(s) from {first} to {last} are on fewer than a quorum of the new list: the leader copies them (anti-entropy); run membership commit again in a few seconds",
                    short.len()
                ),
                &answers,
            ));
        }
    }
    let joint_digest = joint.digest();
    let new_nodes: Vec<_> = lists
        .new
        .iter()
        .filter_map(|position| fleet.fleet.nodes.get(*position).cloned())
        .collect();
    install_step_record(
        &fleet,
        &new_nodes,
        &new,
        |_| joint_digest.clone(),
        &answers,
        ChangeStep::Commit,
    )
    .await
}

/// The step of a change an install writes: its record and the quorum that record must reach.
#[derive(Debug, Clone, Copy)]
enum ChangeStep {
    /// The joint record, which must reach a quorum of each list.
    Begin,
    /// The new list's record, which must reach a quorum of the new list.
    Commit,
}

/// Installs a change step's `record` on `nodes`, each over the digest `previous(node)`, and
/// refuses unless the nodes that hold it afterwards make the quorum the step needs.
async fn install_step_record(
    fleet: &OperatorNodes,
    nodes: &[NodeHandle],
    record: &MembershipRecord,
    previous: impl Fn(NodeIndex) -> String,
    answers: &[NodeMembership],
    step: ChangeStep,
) -> Result<MembershipWritten, Error> {
    let outcomes = install_everywhere(
        nodes,
        &fleet.fleet.tracker,
        record,
        previous,
        Installer::ChangeStep,
    )
    .await;
    let holding = holders(&outcomes, answers, fleet, record).await;
    let reached = match step {
        ChangeStep::Begin => holds_joint_quorum(record, &holding),
        ChangeStep::Commit => record.quorum().reached(holding.len()),
    };
    if !reached {
        let reason = match step {
            ChangeStep::Begin => format!(
                "the joint record {record} reached {} servers, not a quorum of each list: run membership begin again",
                holding.len()
            ),
            ChangeStep::Commit => format!(
                "the new record {record} reached {} servers, fewer than a quorum of the new list: run membership commit again",
                holding.len()
            ),
        };
        return Err(refusal(&reason, answers));
    }
    match step {
        ChangeStep::Begin => {
            tracing::info!(membership = %record, holding = holding.len(), "membership change begun");
        }
        ChangeStep::Commit => {
            tracing::info!(membership = %record, holding = holding.len(), "membership change committed");
        }
    }
    Ok(written(record, &outcomes))
}

/// The two lists, or a refusal when the command was given no `--next-redis-url`.
fn change_lists(fleet: &OperatorNodes) -> Result<ChangeLists, Error> {
    fleet.fleet.config.change.clone().ok_or_else(|| Error::Membership {
        reason: "a membership change needs the new node list: give it as --next-redis-url, the current one as --redis-url".to_owned(),
    })
}

/// The record of the highest generation a node holds whose id it names.
fn current_record(answers: &[NodeMembership]) -> Option<MembershipRecord> {
    answers
        .iter()
        .filter_map(|answer| match answer {
            NodeMembership::Answered {
                server_id: Some(id),
                record: Some(record),
            } if record.is_member(id) => Some(record),
            _ => None,
        })
        .max_by_key(|record| record.generation)
        .cloned()
}

fn sorted(ids: &[ServerId]) -> Vec<ServerId> {
    ids.iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The ids of the nodes that answered holding a record `holds` accepts.
fn ids_holding(
    answers: &[NodeMembership],
    holds: impl Fn(&MembershipRecord) -> bool,
) -> BTreeSet<ServerId> {
    answers
        .iter()
        .filter_map(|answer| match answer {
            NodeMembership::Answered {
                server_id: Some(id),
                record: Some(record),
            } if holds(record) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// The member ids of `record` at the nodes that hold it after an install, read again where a
/// node had no id before the command claimed one.
async fn holders(
    outcomes: &[(usize, InstallOutcome)],
    answers: &[NodeMembership],
    fleet: &OperatorNodes,
    record: &MembershipRecord,
) -> BTreeSet<ServerId> {
    let mut holding = BTreeSet::new();
    for (index, outcome) in outcomes {
        if *outcome != InstallOutcome::Holds {
            continue;
        }
        let known = match answers.get(*index) {
            Some(NodeMembership::Answered {
                server_id: Some(id),
                ..
            }) => Some(id.clone()),
            _ => None,
        };
        let id = match known {
            Some(id) => Some(id),
            None => match fleet.fleet.nodes.get(*index) {
                Some(node) => node
                    .read_membership()
                    .await
                    .ok()
                    .and_then(|held| held.server_id),
                None => None,
            },
        };
        if let Some(id) = id.filter(|id| record.is_member(id)) {
            holding.insert(id);
        }
    }
    holding
}

/// The heights of the window below the log's top that fewer than a quorum of the new list
/// hold. The top is the highest height whose most-held block a quorum of the old list holds:
/// a block above it was not committed (every joint block is on a quorum of each list).
async fn heights_short_on_new(
    fleet: &OperatorNodes,
    joint: &MembershipRecord,
    answers: &[NodeMembership],
) -> Result<Vec<BlockHeight>, Error> {
    // Read the logs as a process of the joint record does: its scripts check the record.
    let expected: Vec<Option<ServerId>> = answers
        .iter()
        .map(|answer| match answer {
            NodeMembership::Answered {
                server_id: Some(id),
                record: Some(record),
            } if record == joint => Some(id.clone()),
            _ => None,
        })
        .collect();
    fleet.fleet.membership.join(
        MembershipView {
            record: joint.clone(),
            expected: expected.clone(),
        },
        Vec::new(),
        Vec::new(),
    );
    let latest = FanOut::spawn(
        &fleet.fleet.tracker,
        fleet.fleet.nodes.iter(),
        None,
        |node| async move { node.read_latest().await },
    )
    .all()
    .await;
    let Some(highest) = latest
        .iter()
        .filter_map(|(_, read)| read.as_ref().ok().copied().flatten())
        .max()
    else {
        return Ok(Vec::new());
    };
    let Some(lowest) = window_bottom(highest, sweep_window(fleet.fleet.config.stream_max_len))
    else {
        return Ok(Vec::new());
    };
    let examine = highest
        .get()
        .saturating_sub(lowest.get())
        .saturating_add(1)
        .saturating_mul(4);
    let reads = FanOut::spawn(
        &fleet.fleet.tracker,
        fleet.fleet.nodes.iter(),
        None,
        |node| async move { node.read_heights(lowest, highest, examine).await },
    )
    .all()
    .await;
    let mut claims = WindowClaims::new();
    for (index, read) in reads {
        let (Ok(read), Some(Some(id))) = (read, expected.get(index)) else {
            continue;
        };
        for (height, block) in read.claims {
            claims
                .entry(height)
                .or_default()
                .entry(block)
                .or_default()
                .insert(id.clone());
        }
    }
    Ok(heights_short_before_commit(joint, &claims, lowest))
}

/// What a change step wrote, for the operator.
fn written(record: &MembershipRecord, outcomes: &[(usize, InstallOutcome)]) -> MembershipWritten {
    let mut outcomes: Vec<&(usize, InstallOutcome)> = outcomes.iter().collect();
    outcomes.sort_by_key(|(index, _)| *index);
    MembershipWritten {
        generation: record.generation,
        digest: record.digest(),
        members: record.members.len(),
        nodes: outcomes
            .iter()
            .map(|(index, outcome)| match outcome {
                InstallOutcome::Holds => format!("node {index}: holds it"),
                InstallOutcome::Refused { reason } => format!("node {index}: refused: {reason}"),
                InstallOutcome::Failed(error) => format!("node {index}: no answer: {error}"),
            })
            .collect(),
    }
}

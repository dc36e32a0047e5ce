//! Reading every node's server id and record and joining what `poa_quorum::decide_membership`
//! says, bootstrapping a fleet whose nodes are all blank.

use std::time::Duration;

use poa_quorum::{
    MembershipDecision, MembershipRecord, NodeIndex, NodeMembership, Quorum, ServerId,
    decide_membership, plan_readmission,
};
use tokio_util::task::TaskTracker;

use super::MembershipState;
use crate::fanout::FanOut;
use crate::node::NodeHandle;
use crate::scripts::InstallOutcome;

/// Reads every node's membership (concurrently, each call bounded by the node timeout) and joins
/// the record a quorum holds, bootstraps a blank fleet, or fails closed.
pub(crate) async fn read_and_join(
    nodes: &[NodeHandle],
    tracker: &TaskTracker,
    state: &MembershipState,
) {
    let answers = read_all(nodes, tracker, state).await;
    match decide_membership(&answers, state.quorum(), state.budget()) {
        MembershipDecision::Bootstrap => {
            bootstrap(nodes, tracker, state).await;
            let answers = read_all(nodes, tracker, state).await;
            match decide_membership(&answers, state.quorum(), state.budget()) {
                MembershipDecision::Join(view) => join(state, view, &answers),
                MembershipDecision::Bootstrap => state.fail_closed(
                    "the bootstrap of the membership wrote nothing: the nodes are still blank"
                        .to_owned(),
                ),
                MembershipDecision::FailClosed(mismatch) => {
                    state.fail_closed(format!("after the bootstrap of the membership, {mismatch}"))
                }
            }
        }
        MembershipDecision::Join(view) => join(state, view, &answers),
        MembershipDecision::FailClosed(mismatch) => state.fail_closed(mismatch.to_string()),
    }
}

/// Joins `view`, with what a leader would re-admit and bring forward.
fn join(state: &MembershipState, view: poa_quorum::MembershipView, answers: &[NodeMembership]) {
    let readmissions = plan_readmission(&view, &state.known(), answers);
    let lagging = lagging_members(&view.record, answers);
    state.join(view, readmissions, lagging);
}

/// Members holding an older record than `record` (with that record's digest) or none (an
/// empty digest: a bootstrap or re-admission that did not reach them).
fn lagging_members(
    record: &MembershipRecord,
    answers: &[NodeMembership],
) -> Vec<(NodeIndex, String)> {
    answers
        .iter()
        .enumerate()
        .filter_map(|(index, answer)| match answer {
            NodeMembership::Answered {
                server_id: Some(id),
                record: Some(held),
            } if record.is_member(id) && held.generation < record.generation => {
                Some((index, held.digest()))
            }
            NodeMembership::Answered {
                server_id: Some(id),
                record: None,
            } if record.is_member(id) => Some((index, String::new())),
            _ => None,
        })
        .collect()
}

/// What every node holds, in configuration order (`Unreachable` for no usable answer, or none
/// within the grace after a quorum answered).
pub(super) async fn read_all(
    nodes: &[NodeHandle],
    tracker: &TaskTracker,
    state: &MembershipState,
) -> Vec<NodeMembership> {
    read_all_with_leases(nodes, tracker, state.quorum(), state.read_grace())
        .await
        .into_iter()
        .map(|(answer, _)| answer)
        .collect()
}

/// What every node holds, and whether a lease is held there. Once a quorum of nodes answered
/// (usable or not), the others get `grace` more (`Unreachable` after it).
pub(super) async fn read_all_with_leases(
    nodes: &[NodeHandle],
    tracker: &TaskTracker,
    quorum: Quorum,
    grace: Duration,
) -> Vec<(NodeMembership, bool)> {
    let mut answers = vec![(NodeMembership::Unreachable, false); nodes.len()];
    let mut reads = FanOut::spawn(tracker, nodes, None, |node| async move {
        node.read_membership().await
    });
    let mut answered = 0usize;
    let mut grace_ends = None;
    loop {
        let next = match grace_ends {
            None => reads.next().await,
            // Once a quorum answered, a node that is down or half-alive costs only the grace,
            // not a node timeout per reading.
            Some(deadline) => match tokio::time::timeout_at(deadline, reads.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((index, read)) = next else {
            break;
        };
        answered = answered.saturating_add(1);
        if grace_ends.is_none() && quorum.reached(answered) {
            grace_ends = Some(tokio::time::Instant::now() + grace);
        }
        if let (Some(slot), Ok(held)) = (answers.get_mut(index), read) {
            *slot = (
                NodeMembership::Answered {
                    server_id: held.server_id,
                    record: held.record,
                },
                held.lease_held,
            );
        }
    }
    answers
}

/// Gives every node an id (or takes the one another process gave it first) and installs the
/// first record over them on every node without a record. Writes nothing unless every node
/// answered with an id.
async fn bootstrap(nodes: &[NodeHandle], tracker: &TaskTracker, state: &MembershipState) {
    let claims = FanOut::spawn(tracker, nodes, None, |node| async move {
        node.claim_server_id(&ServerId::from_random(rand::random()), None)
            .await
    })
    .all()
    .await;
    let ids: Vec<ServerId> = claims.into_iter().filter_map(|(_, id)| id.ok()).collect();
    if ids.len() != nodes.len() {
        tracing::warn!(
            claimed = ids.len(),
            nodes = nodes.len(),
            "membership bootstrap stopped: not every node took a server id"
        );
        return;
    }
    let record = MembershipRecord::new(1, ids, state.quorum().nodes(), state.budget());
    let installs = install_everywhere(
        nodes,
        tracker,
        &record,
        |_| String::new(),
        Installer::Operator,
    )
    .await;
    let holding = installs
        .iter()
        .filter(|(_, outcome)| *outcome == InstallOutcome::Holds)
        .count();
    tracing::info!(
        membership = %record,
        holding,
        nodes = nodes.len(),
        "membership bootstrapped on a blank fleet"
    );
}

/// Who installs a record, which decides where a held lease lets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Installer {
    /// The leader, with its lease token: taken where the lease is free or its own.
    Leader(String),
    /// An operator's `init` or `set`, or a bootstrap: taken only where no lease is held.
    Operator,
    /// An operator's step of a membership change: taken over a held lease, which the new
    /// record fences there.
    ChangeStep,
}

/// Installs `record` on every node, each over the digest `previous(node)`, as `installer`.
pub(crate) async fn install_everywhere(
    nodes: &[NodeHandle],
    tracker: &TaskTracker,
    record: &MembershipRecord,
    previous: impl Fn(NodeIndex) -> String,
    installer: Installer,
) -> Vec<(NodeIndex, InstallOutcome)> {
    let (token, change_step) = match installer {
        Installer::Leader(token) => (token, false),
        Installer::Operator => (String::new(), false),
        Installer::ChangeStep => (String::new(), true),
    };
    FanOut::spawn(tracker, nodes, None, |node| {
        let record = record.clone();
        let previous = previous(node.index());
        let token = token.clone();
        async move {
            node.install_membership(&record, &previous, &token, change_step)
                .await
        }
    })
    .all()
    .await
}

//! The leader's re-admission of members that lost their server id (restarted empty, or
//! restored from before a change), and its catching up of members that hold an older record.
//!
//! Only a process that holds the lease under the current record runs it; every record it
//! installs is taken by a node only over the record the node holds now and only while this
//! process holds the lease there (`install_membership.lua`), so one generation never has two
//! records on one node (docs/protocol.md, "Membership", for why quorums still intersect).

use poa_quorum::{MembershipView, ServerId};
use tokio_util::task::TaskTracker;

use super::MembershipState;
use super::join::{Installer, install_everywhere};
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use crate::scripts::InstallOutcome;

/// Re-admits the nodes the last reading found without a member id where this process read one
/// before (or that fill a vacancy): a new server id on each, then the next generation's record
/// on every node. Members holding an older record get the current one. The new record is joined
/// once a quorum of its members hold it; otherwise the next cycle reads the membership again.
pub(crate) async fn readmit_members(
    nodes: &[NodeHandle],
    tracker: &TaskTracker,
    state: &MembershipState,
    token: &str,
    metrics: &Metrics,
) {
    let Some(view) = state.view() else {
        return;
    };
    let (plan, lagging) = state.pending();
    let mut replaced = Vec::new();
    let mut added = Vec::new();
    let mut expected = view.expected.clone();
    for readmission in &plan {
        let Some(node) = nodes.get(readmission.node) else {
            continue;
        };
        let new = ServerId::from_random(rand::random());
        let Ok(id) = node.claim_server_id(&new, readmission.found.as_ref()).await else {
            continue;
        };
        if view.record.is_member(&id) || expected.contains(&Some(id.clone())) {
            continue;
        }
        match &readmission.replaces {
            Some(old) => replaced.push((old.clone(), id.clone())),
            None => added.push(id.clone()),
        }
        if let Some(slot) = expected.get_mut(readmission.node) {
            *slot = Some(id);
        }
    }
    let readmitted = replaced.len().saturating_add(added.len());
    if readmitted == 0 && lagging.is_empty() {
        return;
    }
    let record = if readmitted == 0 {
        view.record.clone()
    } else {
        view.record.successor(&replaced, &added)
    };
    let current = view.record.digest();
    let installs = install_everywhere(
        nodes,
        tracker,
        &record,
        |index| {
            lagging
                .iter()
                .find(|(node, _)| *node == index)
                .map_or_else(|| current.clone(), |(_, held)| held.clone())
        },
        Installer::Leader(token.to_owned()),
    )
    .await;
    let holding = installs
        .iter()
        .filter(|(index, outcome)| {
            *outcome == InstallOutcome::Holds
                && expected
                    .get(*index)
                    .cloned()
                    .flatten()
                    .is_some_and(|id| record.is_member(&id))
        })
        .count();
    if readmitted == 0 {
        tracing::info!(membership = %record, caught_up = lagging.len(), "membership brought members forward");
        // Read again: the members brought forward count once the reading sees them.
        state.refused();
        return;
    }
    if state.quorum().reached(holding) {
        metrics
            .membership_readmissions
            .inc_by(u64::try_from(readmitted).unwrap_or(u64::MAX));
        tracing::info!(membership = %record, readmitted, holding, "membership re-admitted nodes");
        let expected = expected
            .into_iter()
            .map(|id| id.filter(|id| record.is_member(id)))
            .collect();
        state.join(MembershipView { record, expected }, Vec::new(), Vec::new());
        // The nodes that did not take it yet are found by the next reading.
        state.refused();
    } else {
        tracing::warn!(membership = %record, readmitted, holding, "membership re-admission reached too few nodes");
        state.refused();
    }
}

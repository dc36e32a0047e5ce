//! The JSON of `/status` for the values the libraries report without a wire format of their
//! own (the trigger, the lease and its nodes): the libraries stay free of serde, and the field
//! names here are the API's.

use poa_core::Trigger;
use poa_ports::{LeaseStatus, NodeStatus};
use serde_json::{Value, json};

/// `{"kind": "interval", "block_time_ms": N}`, `{"kind": "instant"}` or `{"kind": "manual"}`.
pub(crate) fn trigger_json(trigger: Trigger) -> Value {
    match trigger {
        Trigger::Interval { block_time } => json!({
            "kind": trigger.kind(),
            "block_time_ms": u64::try_from(block_time.as_millis()).unwrap_or(u64::MAX),
        }),
        Trigger::Instant | Trigger::Manual => json!({ "kind": trigger.kind() }),
    }
}

/// The lease as `/status` shows it: `epoch`, `valid_for_ms`, `nodes`, `waiting_for`,
/// `membership`.
pub(crate) fn lease_json(lease: &LeaseStatus) -> Value {
    json!({
        "epoch": lease.epoch.map(|epoch| epoch.get()),
        "valid_for_ms": lease
            .valid_for
            .map(|valid_for| u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX)),
        "nodes": lease.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "waiting_for": lease.waiting_for,
        "membership": lease.membership,
    })
}

fn node_json(node: &NodeStatus) -> Value {
    json!({
        "node": node.node,
        "state": node.state.label(),
        "state_reason": node.state_reason,
        "last_outcome": node.last_outcome.as_str(),
        "last_error": node.last_error,
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use poa_ports::{Epoch, NodeOutcome, NodeState};

    use super::*;

    #[test]
    fn lease_json__when_leading_with_one_node_timing_out__then_names_every_field() {
        // given
        let lease = LeaseStatus {
            epoch: Some(Epoch::new(4)),
            valid_for: Some(Duration::from_millis(1_500)),
            nodes: vec![NodeStatus {
                node: "redis://127.0.0.1:6379".to_owned(),
                state: NodeState::TimedOut,
                state_reason: Some("no reply within 100ms".to_owned()),
                last_outcome: NodeOutcome::TimedOut,
                last_error: None,
            }],
            waiting_for: None,
            membership: None,
        };

        // when
        let json = lease_json(&lease);

        // then
        assert_eq!(
            json,
            json!({
                "epoch": 4,
                "valid_for_ms": 1_500,
                "nodes": [{
                    "node": "redis://127.0.0.1:6379",
                    "state": "timed_out",
                    "state_reason": "no reply within 100ms",
                    "last_outcome": "timed_out",
                    "last_error": null,
                }],
                "waiting_for": null,
                "membership": null,
            })
        );
    }

    #[test]
    fn trigger_json__when_interval__then_carries_the_block_time_in_milliseconds() {
        // given
        let trigger = Trigger::Interval {
            block_time: Duration::from_secs(2),
        };

        // when
        let json = trigger_json(trigger);

        // then
        assert_eq!(json, json!({"kind": "interval", "block_time_ms": 2_000}));
        assert_eq!(trigger_json(Trigger::Manual), json!({"kind": "manual"}));
    }
}

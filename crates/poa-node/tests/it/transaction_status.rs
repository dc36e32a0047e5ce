//! `GET /transactions/{id}` on every process of a fleet: what a submitter asks to learn whether
//! an accepted transaction is still pending, included at a height, or unknown to the process
//! asked. Each process answers from its own chain and pool.

use std::time::Duration;

use poa_test_support::RedisServer;
use serde_json::Value;

use crate::support::{Node, eventually, fleet_flags_with_trigger, start_peered_pair};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(30);

/// Two manual producers on three redis-servers, each the other's `--peer`, so nothing is
/// included until the test asks the leader to produce. The first returned leads.
fn manual_fleet(redis: &[RedisServer], dirs: &[tempfile::TempDir; 2]) -> (Node, Node) {
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    start_peered_pair(
        dirs,
        &fleet_flags_with_trigger(&urls, &["--manual"], "1s", &[]),
    )
}

/// The status and body of `GET /transactions/{id}` on `node`.
fn transaction(node: &Node, id: &str) -> (u16, Value) {
    node.get(&format!("/transactions/{id}"))
}

#[test]
fn transaction_status__when_submitted_to_a_follower_then_produced__then_every_node_answers_pending_then_included_at_the_height()
 {
    // given
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (leader, follower) = manual_fleet(&redis, &dirs);
    let (status, accepted) = follower.post("/transactions", b"pay bob 5");
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();

    // when: the transaction waits, relayed to the leader
    let pending_on_both = eventually(HANG, || {
        [&leader, &follower]
            .iter()
            .all(|node| transaction(node, &id).1["status"] == "pending")
    });

    // then: both answer pending, with when the fleet drops it
    assert!(pending_on_both, "{:?}", transaction(&leader, &id));
    for node in [&leader, &follower] {
        let (status, answer) = transaction(node, &id);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["id"], id.as_str(), "{answer}");
        assert!(answer["expires_at"].as_u64().unwrap() > 0, "{answer}");
        assert!(answer.get("height").is_none(), "{answer}");
    }

    // when: the leader produces
    let (status, produced) = leader.post_admin("/admin/produce");
    assert_eq!(status, 200, "{produced}");
    let height = produced["height"].as_u64().unwrap();

    // then: the leader answers included at that height at once, the follower once it imported
    let (status, on_leader) = transaction(&leader, &id);
    assert_eq!(status, 200, "{on_leader}");
    assert_eq!(on_leader["status"], "included", "{on_leader}");
    assert_eq!(on_leader["height"], height, "{on_leader}");
    assert_eq!(on_leader["block_id"], produced["id"], "{on_leader}");
    assert!(
        eventually(HANG, || transaction(&follower, &id).1["status"]
            == "included"),
        "{:?}",
        transaction(&follower, &id)
    );
    assert_eq!(transaction(&follower, &id), (200, on_leader));
}

#[test]
fn transaction_status__when_the_id_was_never_submitted__then_every_node_answers_unknown() {
    // given
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (leader, follower) = manual_fleet(&redis, &dirs);
    let never = "ab".repeat(32);

    // when / then: the API's one error shape, nothing beside `error`, the id in the message
    for node in [&leader, &follower] {
        let (status, answer) = transaction(node, &never);
        assert_eq!(status, 404, "{answer}");
        let fields: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["error"], "{answer}");
        assert_eq!(answer["error"]["code"], "transaction_unknown", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(&never), "{answer}");
    }
}

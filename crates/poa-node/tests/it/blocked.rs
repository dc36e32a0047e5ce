//! Garbage in the shared Redis keys: a height held by entries that do not belong, on too many
//! nodes for any block to reach a quorum there, stops production without handing the lease
//! around, says so in `/status`, and resumes once the operator's admin call removed what is
//! proven invalid.

use std::time::Duration;

use poa_test_support::{LogEntry, RedisServer};

use crate::support::{Node, eventually, fleet_flags};

/// The default key prefix of every fleet in these tests.
const KEY: &str = "poa:leader:lock";

/// Writes an entry that decodes to nothing at `height` into `server`'s stream and index, the
/// way `write_block` indexes an entry.
fn write_garbage(server: &RedisServer, height: u64) {
    server.append_log_entry(
        KEY,
        LogEntry {
            height,
            id: &"ab".repeat(32),
            epoch: 1,
            data: b"not a block",
        },
    );
}

#[test]
fn fleet__when_garbage_holds_a_coming_height_on_a_quorum__then_stops_without_churn_says_so_and_resumes_after_the_admin_removal()
 {
    // given: one producer on three Redis nodes, and garbage 20 blocks ahead on two of them
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let args = fleet_flags(&urls, "100ms", "1s", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &args);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 3));
    let blocked = node.height() + 20;
    for server in &redis[..2] {
        write_garbage(server, blocked);
    }

    // when: the chain reaches the height
    assert!(eventually(Duration::from_secs(20), || node.height() == blocked - 1));
    std::thread::sleep(Duration::from_secs(2));
    let (_, status) = node.get("/status");

    // then: it stopped just below it, kept one leadership, and says why
    assert_eq!(node.height(), blocked - 1, "{status}");
    let error = status["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains(&format!("height {blocked} is blocked")),
        "{error}"
    );
    let epoch = status["epoch"].as_u64();
    assert!(epoch.is_some());

    // when: the operator removes what is proven invalid there
    let (code, removal) =
        node.post_admin(&format!("/admin/remove-invalid-entries?height={blocked}"));

    // then: both entries went, and production resumed under the same leadership
    assert_eq!(code, 200, "{removal}");
    let removed: Vec<u64> = removal["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["removed"].as_u64().unwrap())
        .collect();
    assert_eq!(removed, vec![2, 2, 0]);
    assert!(eventually(Duration::from_secs(10), || node.height() > blocked));
    assert_eq!(node.get("/status").1["epoch"].as_u64(), epoch);
}

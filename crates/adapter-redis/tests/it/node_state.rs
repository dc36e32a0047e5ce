//! Each node's state over the life of the process (`ok`, `timed_out`, `refused`, `unreachable`)
//! against real `redis-server`s: a password changed after startup that bites at the next
//! reconnect, an ACL that denies a command, a half-alive listener, a stopped server; in the
//! lease status and in the `poa_node_state` gauge.

use std::time::Duration;

use adapter_redis::{RedisPassword, RedisSecurity};
use poa_ports::{BlockReconciliationPort, LeaderState, NodeOutcome, NodeState, NodeStatus};
use poa_test_support::{HalfAliveListener, RedisServer, resp, wait_for_async};

use crate::security::RECOMMENDED_ACL;
use crate::support::*;

const KEY: &str = "poa:leader:lock";
const USER: &str = "poa";
const PASSWORD: &str = "correct-horse-battery-staple";
/// The ACL rule that sets [`PASSWORD`].
const PASSWORD_RULE: &str = ">correct-horse-battery-staple";

/// Long enough for a reconnect and a few cycles on a starved machine; a bound on a hang only.
const SETTLES_WITHIN: Duration = Duration::from_secs(15);

fn acl_user_servers(n: usize, acl: &str) -> Vec<RedisServer> {
    (0..n)
        .map(|_| {
            RedisServer::builder()
                .acl_user(format!("{USER} >{PASSWORD} {acl}"))
                .start()
        })
        .collect()
}

fn as_user(password: &str) -> RedisSecurity {
    RedisSecurity {
        username: Some(USER.to_owned()),
        password: Some(RedisPassword::new(password)),
        ..RedisSecurity::default()
    }
}

async fn producer_on(urls: Vec<String>, security: RedisSecurity) -> Producer {
    producer_with(adapter_redis::RedisConfig {
        security,
        ..config(urls, KEY)
    })
    .await
}

fn node_status(producer: &Producer, node: usize) -> NodeStatus {
    producer.adapter.lease_status().nodes[node].clone()
}

/// `poa_node_state{node, state}` as encoded: 1 for the node's state, 0 for the others.
fn state_gauge(producer: &Producer, node: &str, state: &str) -> f64 {
    producer.metric(&format!(
        "poa_node_state{{node=\"{node}\",state=\"{state}\"}}"
    ))
}

/// Runs leader cycles until `node`'s status satisfies `wanted` (a bound on a hang only).
async fn cycle_until(
    producer: &Producer,
    node: usize,
    wanted: impl Fn(&NodeStatus) -> bool,
) -> bool {
    wait_for_async(SETTLES_WITHIN, || async {
        let _ = producer.adapter.leader_state(below(1)).await;
        wanted(&node_status(producer, node))
    })
    .await
}

fn is_refused_with(status: &NodeStatus, marker: &str) -> bool {
    status.state == NodeState::Refused
        && status
            .state_reason
            .as_deref()
            .is_some_and(|reason| reason.contains(marker))
}

/// Replaces the ACL user's passwords on `servers` with `rule` (`>password`); open connections
/// stay authenticated.
fn set_password(servers: &[RedisServer], rule: &str) {
    for server in servers {
        server.command(&[
            b"ACL",
            b"SETUSER",
            USER.as_bytes(),
            b"resetpass",
            rule.as_bytes(),
        ]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_the_password_changes_on_two_nodes_and_they_reconnect__then_refused_with_wrongpass_and_back_once_restored()
 {
    // given: a leader on three nodes whose ACL user then gets another password on two of them;
    // Redis keeps the open connections, so nothing changes until they reconnect
    let servers = acl_user_servers(3, RECOMMENDED_ACL);
    let producer = producer_on(urls(&servers), as_user(PASSWORD)).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    set_password(&servers[..2], ">rotated");

    // when: the connections drop and the client reconnects with the old password
    for server in &servers[..2] {
        server.command(&[b"CLIENT", b"KILL", b"USER", USER.as_bytes()]);
    }
    let both_refused = wait_for_async(SETTLES_WITHIN, || async {
        let _ = producer.adapter.leader_state(below(1)).await;
        (0..2).all(|node| is_refused_with(&node_status(&producer, node), "WRONGPASS"))
    })
    .await;

    // and: a publish whose writes to them queue behind the refused reconnects
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then: refused and why, never a timeout; the writes queued behind the refused reconnect
    // are not counted as timeouts either
    let statuses = producer.adapter.lease_status().nodes;
    assert!(both_refused, "{statuses:?}");
    assert!(published.is_err());
    for status in &statuses[..2] {
        assert!(is_refused_with(status, "WRONGPASS"), "{status:?}");
        assert_eq!(status.last_outcome, NodeOutcome::Failed, "{status:?}");
        assert_eq!(state_gauge(&producer, &status.node, "refused"), 1.0);
        assert_eq!(state_gauge(&producer, &status.node, "ok"), 0.0);
        assert_eq!(state_gauge(&producer, &status.node, "timed_out"), 0.0);
    }
    assert_eq!(statuses[2].state, NodeState::Ok, "{statuses:?}");
    assert_eq!(state_gauge(&producer, &statuses[2].node, "ok"), 1.0);
    let write_timeouts = |node: &str| {
        producer.metric(&format!(
            "poa_node_operations_total{{node=\"{node}\",operation=\"write_block\",outcome=\"timeout\"}}"
        ))
    };
    for status in &statuses[..2] {
        assert_eq!(
            write_timeouts(&status.node),
            0.0,
            "{}",
            producer.encoded_metrics()
        );
    }

    // when: the operator restores the password
    set_password(&servers[..2], PASSWORD_RULE);

    // then: the nodes answer again without a restart; the block the refused publish left on
    // one node comes back as the log's (repaired), and production resumes above it
    let recovered = wait_for_async(SETTLES_WITHIN, || async {
        matches!(
            producer.adapter.leader_state(below(1)).await,
            Ok(LeaderState::UnreconciledBlocks(blocks)) if blocks == [block(1, 0)]
        ) && producer
            .adapter
            .lease_status()
            .nodes
            .iter()
            .all(|status| status.state == NodeState::Ok)
    })
    .await;
    assert!(recovered, "{:?}", producer.adapter.lease_status().nodes);
    assert_eq!(
        producer.adapter.leader_state(below(2)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    producer
        .adapter
        .publish_produced_block(&block(2, 0))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_requirepass_changes_and_the_node_reconnects__then_refused_with_wrongpass()
{
    // given: nodes that protect their default user with `requirepass`, one of which changes it
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    for server in &servers {
        server.command(&[b"CONFIG", b"SET", b"requirepass", PASSWORD.as_bytes()]);
    }
    let security = RedisSecurity {
        password: Some(RedisPassword::new(PASSWORD)),
        ..RedisSecurity::default()
    };
    let producer = producer_on(urls(&servers), security).await;
    assert!(cycle_until(&producer, 0, |status| status.state == NodeState::Ok).await);
    let as_default = Some(("default", PASSWORD));
    let admin = |args: &[&[u8]]| {
        resp::request_as(servers[0].addr(), as_default, args, Duration::from_secs(5)).unwrap()
    };
    admin(&[b"CONFIG", b"SET", b"requirepass", b"rotated"]);

    // when
    resp::request_as(
        servers[0].addr(),
        Some(("default", "rotated")),
        &[b"CLIENT", b"KILL", b"TYPE", b"normal"],
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = cycle_until(&producer, 0, |status| is_refused_with(status, "WRONGPASS")).await;

    // then
    assert!(refused, "{:?}", node_status(&producer, 0));
    assert_ne!(
        node_status(&producer, 0).last_outcome,
        NodeOutcome::TimedOut
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_the_acl_denies_a_command__then_refused_naming_the_command_or_its_script()
{
    // given: node 0 denies XADD (called inside the write script, where Redis 7.0 does not name
    // it), node 1 denies EVALSHA (named in the reply), node 2 allows everything
    let servers = vec![
        acl_user_servers(1, &RECOMMENDED_ACL.replace(" +xadd", "")).remove(0),
        acl_user_servers(1, &RECOMMENDED_ACL.replace(" +evalsha", "")).remove(0),
        acl_user_servers(1, RECOMMENDED_ACL).remove(0),
    ];
    let producer = producer_on(urls(&servers), as_user(PASSWORD)).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when: a publish, then more leader cycles whose reads and renewals node 0 still allows
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    for _ in 0..3 {
        let _ = producer.adapter.leader_state(below(1)).await;
    }

    // then: both refuse and say why, even while node 0 answers the calls its ACL allows
    assert!(published.is_err());
    let nodes = producer.adapter.lease_status().nodes;
    assert!(is_refused_with(&nodes[0], "write_block"), "{nodes:?}");
    assert!(
        is_refused_with(&nodes[0], "can't run this command"),
        "{nodes:?}"
    );
    assert!(is_refused_with(&nodes[1], "'evalsha'"), "{nodes:?}");
    assert_eq!(nodes[2].state, NodeState::Ok, "{nodes:?}");
    assert_eq!(state_gauge(&producer, &nodes[0].node, "refused"), 1.0);
    assert_eq!(state_gauge(&producer, &nodes[1].node, "refused"), 1.0);
}

/// A producer on two fresh servers and a third node at `url`.
async fn two_servers_and(url: String) -> (Vec<RedisServer>, Producer) {
    let servers = servers(2);
    let mut nodes = urls(&servers);
    nodes.push(url);
    let producer = producer(nodes, KEY).await;
    (servers, producer)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_a_node_is_half_alive__then_timed_out_and_never_refused() {
    // given
    let silent = HalfAliveListener::start();
    let (_servers, producer) = two_servers_and(silent.url()).await;

    // when
    let timed_out = cycle_until(&producer, 2, |status| status.state == NodeState::TimedOut).await;

    // then
    let status = node_status(&producer, 2);
    assert!(timed_out, "{status:?}");
    assert_eq!(state_gauge(&producer, &status.node, "timed_out"), 1.0);
    assert_eq!(state_gauge(&producer, &status.node, "refused"), 0.0);
    assert_eq!(node_status(&producer, 0).state, NodeState::Ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_a_server_is_stopped__then_unreachable_not_timed_out() {
    // given: node 2 never started, node 1 stopped after the producer connected
    let never_started = RedisServer::new_stopped();
    let (servers, producer) = two_servers_and(never_started.url()).await;
    assert!(cycle_until(&producer, 1, |status| status.state == NodeState::Ok).await);

    // when
    servers[1].stop();
    let unreachable = wait_for_async(SETTLES_WITHIN, || async {
        let _ = producer.adapter.leader_state(below(1)).await;
        [1, 2]
            .iter()
            .all(|node| node_status(&producer, *node).state == NodeState::Unreachable)
    })
    .await;

    // then
    let nodes = producer.adapter.lease_status().nodes;
    assert!(unreachable, "{nodes:?}");
    for status in &nodes[1..] {
        assert!(status.state_reason.is_some(), "{status:?}");
        assert_eq!(state_gauge(&producer, &status.node, "unreachable"), 1.0);
    }
}

/// The state of a fresh producer's only node at `url`, once its connection attempts failed.
/// The state the node at `url` settles in once its reason names a scheme (`use redis` or
/// `use rediss`), or where it stands when that does not come within the bound. A call may
/// time out before the server drops the connection it cannot read, on a loaded machine
/// above all; the connection's failure, and with it the hint, follows at the reconnection.
async fn state_at(url: String, security: RedisSecurity) -> NodeStatus {
    let producer = producer_on(vec![url], security).await;
    let _ = cycle_until(&producer, 0, |status| {
        status.state != NodeState::Unknown
            && status
                .state_reason
                .as_deref()
                .is_some_and(|reason| reason.contains("use redis"))
    })
    .await;
    node_status(&producer, 0)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_state__when_the_url_scheme_does_not_match_the_port__then_the_reason_names_the_other_scheme()
 {
    // given: a server with a plain port and a TLS-only port
    let dir = tempfile::TempDir::new().unwrap();
    let certificates = poa_test_support::TestCertificates::generate(dir.path(), "redis");
    let server = RedisServer::builder()
        .tls(certificates.server_files(false))
        .start();
    let trusting = RedisSecurity {
        ca_file: Some(certificates.ca.clone()),
        ..RedisSecurity::default()
    };

    // when
    let plain_to_tls = state_at(
        format!("redis://127.0.0.1:{}", server.tls_port()),
        RedisSecurity::default(),
    )
    .await;
    let tls_to_plain = state_at(format!("rediss://127.0.0.1:{}", server.port()), trusting).await;

    // then
    let names = |status: &NodeStatus, scheme: &str| {
        status
            .state_reason
            .as_deref()
            .is_some_and(|reason| reason.contains(scheme))
    };
    assert!(names(&plain_to_tls, "use rediss://"), "{plain_to_tls:?}");
    assert!(names(&tls_to_plain, "use redis://"), "{tls_to_plain:?}");
    assert_ne!(plain_to_tls.state, NodeState::Ok);
    assert_ne!(tls_to_plain.state, NodeState::Ok);
}

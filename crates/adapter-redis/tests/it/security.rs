//! TLS (`rediss://`) and ACL connections against real `redis-server`s configured for them: the
//! recommended least-privilege ACL user of `docs/operations.md` with the `default` user off,
//! a refused certificate authority and a wrong password, each failing within a bound.

use std::time::{Duration, Instant};

use adapter_chain::SealedBlock;
use adapter_redis::{RedisPassword, RedisSecurity};
use poa_ports::{BlockReconciliationPort, LeaderState, ReconciliationError};
use poa_test_support::{RedisServer, RespValue, TestCertificates, resp, wait_for_async};
use tempfile::TempDir;

use crate::support::*;

const KEY: &str = "poa:leader:lock";
const USER: &str = "poa";
const PASSWORD: &str = "correct-horse-battery-staple";

/// The ACL rules `docs/operations.md` recommends, for the default key prefix: the keys of
/// `docs/protocol.md` ("Keys on every node"), the commands the Lua scripts call, `SCRIPT LOAD` and `EVALSHA`, and
/// `INFO` and `CLIENT ID` (fred reads the server version and its connection's id on connect,
/// and carries on when refused, but each refusal lands in the server's ACL log; nothing else
/// is needed: with a password the handshake is `AUTH`, which every user may run).
pub(crate) const RECOMMENDED_ACL: &str = "on ~poa:leader:lock ~poa:leader:lock:* resetchannels \
     -@all +evalsha +script|load +info +client|id \
     +get +set +del +incr +pexpire +time +xadd +xrange +xtrim \
     +zadd +zrem +xdel +zrangebyscore +zrevrangebyscore +zremrangebyrank \
     +exists +hget +hmget +hset";

/// Three TLS servers whose only enabled user is `poa` with the recommended rules.
fn secured_servers(certificates: &TestCertificates) -> Vec<RedisServer> {
    (0..3)
        .map(|_| {
            RedisServer::builder()
                .tls(certificates.server_files(false))
                .acl_user(format!("{USER} >{PASSWORD} {RECOMMENDED_ACL}"))
                .disable_default_user()
                .start()
        })
        .collect()
}

fn tls_urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::tls_url).collect()
}

fn security(ca: &TestCertificates, password: &str) -> RedisSecurity {
    RedisSecurity {
        username: Some(USER.to_owned()),
        password: Some(RedisPassword::new(password)),
        ca_file: Some(ca.ca.clone()),
        ..RedisSecurity::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter__when_nodes_need_tls_and_the_least_privilege_acl_user__then_leads_publishes_and_reconciles()
 {
    // given
    let dir = TempDir::new().unwrap();
    let certificates = TestCertificates::generate(dir.path(), "redis");
    let servers = secured_servers(&certificates);
    let config = adapter_redis::RedisConfig {
        security: security(&certificates, PASSWORD),
        ..config(tls_urls(&servers), KEY)
    };
    let leader = producer_with(config.clone()).await;

    // when
    let role = leader.adapter.leader_state(below(1)).await.unwrap();
    leader
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    leader.adapter.release().await.unwrap();
    let successor = producer_with(config).await;
    let backlog = successor.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(role, LeaderState::ReconciledLeader);
    assert_eq!(backlog, LeaderState::UnreconciledBlocks(vec![block(1, 0)]));
    assert!(streams_reach(&servers, KEY, 1).await);
    assert_eq!(leader.metric("poa_undecodable_entries_total"), 0.0);
    // Nothing the producers sent was refused: a denial the client shrugs off still fills the
    // server's ACL log and pushes out the ones an operator looks for.
    for server in &servers {
        let denials = server.command_async(&[b"ACL", b"LOG"]).await;
        assert!(
            matches!(&denials, RespValue::Array(entries) if entries.is_empty()),
            "the recommended acl refused something the producer sends: {denials:?}"
        );
    }
    for forbidden in [
        &[&b"FLUSHALL"[..]][..],
        &[b"GET", b"another:key"],
        &[b"EVAL", b"return 1", b"0"],
    ] {
        let reply = resp::request_as(
            servers[0].addr(),
            Some((USER, PASSWORD)),
            forbidden,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(
            matches!(&reply, RespValue::Error(error) if error.starts_with("NOPERM")),
            "the recommended acl allowed {forbidden:?}: {reply:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_status__when_the_acl_refuses_a_command_a_script_calls__then_each_node_names_the_refusal()
 {
    // given: the recommended ACL without XADD on every node, so every publish is refused inside
    // the write script while the lease itself works
    let dir = TempDir::new().unwrap();
    let certificates = TestCertificates::generate(dir.path(), "redis");
    let without_xadd = RECOMMENDED_ACL.replace(" +xadd", "");
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::builder()
                .tls(certificates.server_files(false))
                .acl_user(format!("{USER} >{PASSWORD} {without_xadd}"))
                .disable_default_user()
                .start()
        })
        .collect();
    let config = adapter_redis::RedisConfig {
        security: security(&certificates, PASSWORD),
        ..config(tls_urls(&servers), KEY)
    };
    let producer = producer_with(config).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then: refused as denied (the same at every retry, so the service keeps the lease rather
    // than taking a new epoch per cycle), and the status says what each node answered (inside
    // a script Redis 7.0 words the ACL's refusal as an ERR, outside it as NOPERM); the last
    // node's reply may land after the publish returned at an impossible quorum
    assert!(
        matches!(
            published,
            Err(ReconciliationError::Denied {
                operation: "publish"
            })
        ),
        "{published:?}"
    );
    let names_the_refusal =
        |error: &str| error.contains("NOPERM") || error.contains("can't run this command");
    let every_node_says = wait_for_async(Duration::from_secs(5), || async {
        producer
            .adapter
            .lease_status()
            .nodes
            .iter()
            .all(|node| node.last_error.as_deref().is_some_and(names_the_refusal))
    })
    .await;
    assert!(
        every_node_says,
        "{:?}",
        producer.adapter.lease_status().nodes
    );
}

/// One lead attempt of a fresh adapter: its outcome and how long connecting and trying took.
async fn lead_attempt(
    servers: &[RedisServer],
    security: RedisSecurity,
) -> (
    Result<LeaderState<SealedBlock>, ReconciliationError>,
    Duration,
) {
    let config = adapter_redis::RedisConfig {
        security,
        ..config(tls_urls(servers), KEY)
    };
    let started = Instant::now();
    let producer = producer_with(config).await;
    let role = producer.adapter.leader_state(below(1)).await;
    (role, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter__when_the_ca_or_the_password_is_wrong__then_never_leads_and_fails_within_bound() {
    // given
    let dir = TempDir::new().unwrap();
    let served = TestCertificates::generate(dir.path(), "served");
    let other = TestCertificates::generate(dir.path(), "other");
    let servers = secured_servers(&served);

    for (case, security) in [
        ("another ca", security(&other, PASSWORD)),
        ("wrong password", security(&served, "wrong")),
    ] {
        // when
        let (role, elapsed) = lead_attempt(&servers, security).await;

        // then
        assert!(role.is_err(), "{case}: {role:?}");
        assert!(elapsed < Duration::from_secs(3), "{case}: {elapsed:?}");
        assert!(
            servers.iter().all(|server| owner(server, KEY).is_none()),
            "{case}"
        );
    }
}

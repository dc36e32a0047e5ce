//! The scripts and the node client against real `redis-server` processes.

use std::time::{Duration, Instant};

use poa_test_support::{HalfAliveListener, RedisServer, RespValue};
use prometheus_client::registry::Registry;

use super::*;
use crate::config::RedisConfig;

const TIMEOUT: Duration = Duration::from_millis(150);

fn context(token: &str, stream_max_len: u64) -> Arc<NodeContext> {
    let config = RedisConfig {
        urls: vec!["redis://127.0.0.1:1".into()],
        lease_key: "poa:test:node".into(),
        lease_ttl: Duration::from_secs(2),
        node_timeout: TIMEOUT,
        stream_max_len,
        ..RedisConfig::default()
    }
    .validate()
    .unwrap();
    context_of(&config, token)
}

/// A context whose membership is joined by the first node that connects with it.
fn context_of(config: &crate::config::ValidatedConfig, token: &str) -> Arc<NodeContext> {
    let metrics = Arc::new(Metrics::register(&mut Registry::default()));
    let membership = Arc::new(MembershipState::new(
        config.quorum,
        config.budget,
        config.node_timeout,
        metrics,
    ));
    Arc::new(NodeContext::new(config, token.into(), membership))
}

async fn node_with(url: &str, context: Arc<NodeContext>) -> RedisNode {
    let metrics = Arc::new(Metrics::register(&mut Registry::default()));
    let node = RedisNode::build(0, url, context, metrics, TaskTracker::new()).unwrap();
    node.connect_within(Duration::from_secs(2)).await;
    join_alone(&node).await;
    node
}

/// Gives the node's server an id and a one-node record (or reads those it holds) and joins
/// them, as a bootstrap of a one-node fleet does; a node that does not answer joins nothing.
async fn join_alone(node: &RedisNode) {
    let new = poa_quorum::ServerId::from_random(rand::random());
    let Ok(id) = node.claim_server_id(&new, None).await else {
        return;
    };
    let record = poa_quorum::MembershipRecord::new(1, [id], 1, 0);
    node.install_membership(&record, "", "", false).await;
    if let Ok(crate::scripts::HeldMembership {
        server_id: Some(id),
        record: Some(record),
        ..
    }) = node.read_membership().await
    {
        node.context.membership.join(
            poa_quorum::MembershipView {
                record,
                expected: vec![Some(id)],
            },
            Vec::new(),
            Vec::new(),
        );
    }
}

async fn node(url: &str, token: &str) -> RedisNode {
    node_with(url, context(token, 1000)).await
}

fn block(epoch: u64, height: u64, byte: u8) -> BlockWrite {
    BlockWrite::new(
        Epoch::new(epoch),
        BlockHeight::new(height),
        BlockId::from_bytes([byte; 32]),
        Bytes::from(vec![byte; 16]),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn promote__when_free_then_repeated_then_contested__then_grants_once_and_refuses_others() {
    // given
    let redis = RedisServer::start();
    let mine = node(&redis.url(), "mine").await;
    let theirs = node(&redis.url(), "theirs").await;

    // when
    let first = mine.promote(Epoch::new(0)).await;
    let again = mine.promote(Epoch::new(0)).await;
    let contested = theirs.promote(Epoch::new(0)).await;

    // then
    assert_eq!(first, PromoteOutcome::Granted(Epoch::new(1)));
    assert_eq!(again, PromoteOutcome::Granted(Epoch::new(1)));
    assert_eq!(contested, PromoteOutcome::HeldByAnother);
    assert_eq!(mine.renew_lease().await, OwnerOutcome::Owner);
    assert_eq!(theirs.renew_lease().await, OwnerOutcome::NotOwner);
    assert_eq!(theirs.release().await, ReleaseOutcome::NotOwner);
    assert_eq!(mine.release().await, ReleaseOutcome::Released);
    assert_eq!(
        theirs.promote(Epoch::new(0)).await,
        PromoteOutcome::Granted(Epoch::new(2))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn write_block__when_replayed_contested_or_fenced__then_answers_each_typed_outcome() {
    // given
    let redis = RedisServer::start();
    let leader = node(&redis.url(), "leader").await;
    let PromoteOutcome::Granted(epoch) = leader.promote(Epoch::new(0)).await else {
        panic!("promote refused");
    };

    // when / then: written, then the same block is already stored, another block is refused
    assert_eq!(
        leader.write_block(&block(epoch.get(), 1, 1)).await,
        WriteOutcome::Written
    );
    assert_eq!(
        leader.write_block(&block(epoch.get(), 1, 1)).await,
        WriteOutcome::AlreadyStored
    );
    assert_eq!(
        leader.write_block(&block(epoch.get(), 1, 2)).await,
        WriteOutcome::HeightTaken
    );
    assert_eq!(
        redis.command(&[b"XLEN", b"poa:test:node:block:stream"]),
        RespValue::Integer(1)
    );

    // a stale epoch is fenced
    redis.command(&[b"SET", b"poa:test:node:epoch:token", b"9"]);
    assert!(matches!(
        leader.write_block(&block(epoch.get(), 2, 3)).await,
        WriteOutcome::Fenced { reason } if reason.contains("stale")
    ));

    // a higher epoch heals the node upward
    assert_eq!(
        leader.write_block(&block(12, 2, 3)).await,
        WriteOutcome::Written
    );
    assert_eq!(
        redis.command(&[b"GET", b"poa:test:node:epoch:token"]),
        RespValue::bulk("12")
    );

    // a lost lease is fenced
    redis.command(&[b"DEL", b"poa:test:node"]);
    assert!(matches!(
        leader.write_block(&block(12, 3, 4)).await,
        WriteOutcome::Fenced { reason } if reason.contains("lock lost")
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn write_block__when_many_heights_are_written__then_heights_index_stays_bounded() {
    // given: stream_max_len 5 keeps 2 * 5 + 256 heights in the index
    let redis = RedisServer::start();
    let leader = node_with(&redis.url(), context("leader", 5)).await;
    let PromoteOutcome::Granted(epoch) = leader.promote(Epoch::new(0)).await else {
        panic!("promote refused");
    };

    // when
    for height in 1..=321 {
        let outcome = leader.write_block(&block(epoch.get(), height, 7)).await;
        assert_eq!(outcome, WriteOutcome::Written);
    }

    // then
    let RespValue::Integer(indexed) = redis.command(&[b"ZCARD", b"poa:test:node:heights:index"])
    else {
        panic!("ZCARD did not answer an integer");
    };
    assert_eq!(indexed, 266);
    let RespValue::Integer(streamed) = redis.command(&[b"XLEN", b"poa:test:node:block:stream"])
    else {
        panic!("XLEN did not answer an integer");
    };
    assert!(streamed < 266, "stream kept {streamed} entries");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_from__when_a_lower_height_was_appended_last__then_sorts_by_height_and_caps() {
    // given: heights 1, 3, 2 in append order (2 came from a repair)
    let redis = RedisServer::start();
    let leader = node(&redis.url(), "leader").await;
    leader.promote(Epoch::new(0)).await;
    for height in [1, 3, 2] {
        leader.write_block(&block(1, height, height as u8)).await;
    }

    // when
    let first_page = leader.read_from(BlockHeight::new(1), 2).await.unwrap();
    let from_three = leader.read_from(BlockHeight::new(3), 10).await.unwrap();
    let latest = leader.read_latest().await.unwrap();

    // then
    let heights: Vec<u64> = first_page.entries.iter().map(|e| e.height.get()).collect();
    assert_eq!(heights, vec![1, 2]);
    assert_eq!(first_page.entries[1].id, BlockId::from_bytes([2; 32]));
    assert_eq!(first_page.entries[1].data, Bytes::from(vec![2u8; 16]));
    assert_eq!(from_three.entries.len(), 1);
    assert_eq!(latest, Some(BlockHeight::new(3)));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_heights__when_the_index_holds_members_that_do_not_parse__then_skips_and_counts_them_and_names_the_rest()
 {
    // given: heights 1 to 4 written, and two hand-written members in the range
    let redis = RedisServer::start();
    let leader = node(&redis.url(), "leader").await;
    leader.promote(Epoch::new(0)).await;
    for height in 1..=4 {
        leader.write_block(&block(1, height, height as u8)).await;
    }
    let index = "poa:test:node:heights:index";
    redis.command(&[b"ZADD", index.as_bytes(), b"2", b"garbage"]);
    redis.command(&[b"ZADD", index.as_bytes(), b"3", b"3:not-hex:1-0"]);

    // when
    let read = leader
        .read_heights(BlockHeight::new(2), BlockHeight::new(3), 100)
        .await
        .unwrap();
    let bounded = leader
        .read_heights(BlockHeight::new(1), BlockHeight::new(4), 2)
        .await
        .unwrap();

    // then
    assert_eq!(
        read.claims,
        vec![
            (BlockHeight::new(2), BlockId::from_bytes([2; 32])),
            (BlockHeight::new(3), BlockId::from_bytes([3; 32]))
        ]
    );
    assert_eq!(read.malformed, 2);
    assert_eq!(bounded.claims.len() + bounded.malformed, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_identity__when_the_server_restarts__then_reports_another_identity_after_the_reconnection()
 {
    // given
    let redis = RedisServer::start();
    let reader = node(&redis.url(), "reader").await;
    let first = reader.run_id();
    assert!(
        reader.connected_since_last_asked(),
        "the first connection counts"
    );
    assert_eq!(reader.check_identity().await, IdentityCheck::Unchanged);
    assert!(!reader.connected_since_last_asked());

    // when: the server restarts empty and the client reconnects
    redis.restart();
    let reconnected = poa_test_support::wait_for_async(Duration::from_secs(5), || async {
        let _ = reader.read_latest().await;
        reader.connected_since_last_asked()
    })
    .await;
    let check = reader.check_identity().await;

    // then
    assert!(reconnected);
    assert!(
        matches!(&check, IdentityCheck::Changed { previous, current } if Some(previous) == first.as_ref() && Some(current) != first.as_ref()),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_latest__when_node_is_empty__then_none() {
    // given
    let redis = RedisServer::start();
    let reader = node(&redis.url(), "reader").await;

    // when
    let latest = reader.read_latest().await;

    // then
    assert_eq!(latest, Ok(None));
}

#[tokio::test(flavor = "multi_thread")]
async fn call__when_node_lost_its_scripts__then_reloads_and_answers() {
    // given
    let redis = RedisServer::start();
    let leader = node(&redis.url(), "leader").await;
    leader.promote(Epoch::new(0)).await;
    redis.command(&[b"SCRIPT", b"FLUSH"]);

    // when
    let outcome = leader.renew_lease().await;

    // then
    assert_eq!(outcome, OwnerOutcome::Owner);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_within__when_node_is_half_alive__then_returns_within_the_bound() {
    // given
    let listener = HalfAliveListener::start();
    let started = Instant::now();

    // when
    let node = node_with(&listener.url(), context("x", 10)).await;
    let outcome = node.promote(Epoch::new(0)).await;

    // then
    assert!(
        matches!(outcome, PromoteOutcome::Unavailable(_)),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn call__when_node_freezes_then_thaws__then_times_out_within_bound_and_recovers() {
    // given
    let redis = RedisServer::start();
    let leader = node(&redis.url(), "leader").await;
    leader.promote(Epoch::new(0)).await;
    redis.freeze();

    // when
    let started = Instant::now();
    let frozen = leader.renew_lease().await;
    let elapsed = started.elapsed();
    redis.thaw();

    // then
    assert!(
        matches!(
            frozen,
            OwnerOutcome::Unavailable(NodeError::TimedOut { .. })
        ),
        "{frozen:?}"
    );
    assert!(elapsed < TIMEOUT * 3, "took {elapsed:?}");
    assert_eq!(leader.last_outcome(), NodeOutcome::TimedOut);
    let recovered = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        leader.renew_lease().await == OwnerOutcome::Owner
    })
    .await;
    assert!(recovered, "node did not answer again after thawing");
}

fn secured_context(ca: &std::path::Path, password: &str) -> Arc<NodeContext> {
    let config = RedisConfig {
        urls: vec!["rediss://127.0.0.1:1".into()],
        lease_key: "poa:test:node".into(),
        lease_ttl: Duration::from_secs(2),
        node_timeout: TIMEOUT,
        security: crate::config::RedisSecurity {
            username: Some("poa".into()),
            password: Some(crate::config::RedisPassword::new(password)),
            ca_file: Some(ca.to_owned()),
            ..Default::default()
        },
        ..RedisConfig::default()
    }
    .validate()
    .unwrap();
    context_of(&config, "x")
}

fn secured_server(certificates: &poa_test_support::TestCertificates) -> RedisServer {
    RedisServer::builder()
        .tls(certificates.server_files(false))
        .acl_user("poa on >right ~* +@all")
        .disable_default_user()
        .start()
}

async fn first_connection_to(url: &str, context: Arc<NodeContext>) -> (FirstConnection, Duration) {
    let metrics = Arc::new(Metrics::register(&mut Registry::default()));
    let node = RedisNode::build(0, url, context, metrics, TaskTracker::new()).unwrap();
    let started = Instant::now();
    let outcome = node.first_connection(Duration::from_secs(2)).await;
    (outcome, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn first_connection__when_the_server_certificate_is_from_another_ca__then_is_refused_naming_the_certificate()
 {
    // given
    let dir = tempfile::TempDir::new().unwrap();
    let served = poa_test_support::TestCertificates::generate(dir.path(), "served");
    let trusted = poa_test_support::TestCertificates::generate(dir.path(), "trusted");
    let redis = secured_server(&served);

    // when
    let (outcome, elapsed) =
        first_connection_to(&redis.tls_url(), secured_context(&trusted.ca, "right")).await;

    // then
    let FirstConnection::Refused(error) = outcome else {
        panic!("expected a refusal, got {outcome:?}");
    };
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "unclear error: {error}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_connection__when_the_password_is_wrong__then_is_refused_naming_the_credentials() {
    // given
    let dir = tempfile::TempDir::new().unwrap();
    let certificates = poa_test_support::TestCertificates::generate(dir.path(), "redis");
    let redis = secured_server(&certificates);

    // when
    let (wrong, elapsed) =
        first_connection_to(&redis.tls_url(), secured_context(&certificates.ca, "wrong")).await;
    let (right, _) =
        first_connection_to(&redis.tls_url(), secured_context(&certificates.ca, "right")).await;

    // then
    let FirstConnection::Refused(error) = wrong else {
        panic!("expected a refusal, got {wrong:?}");
    };
    assert!(
        error.to_string().contains("WRONGPASS"),
        "unclear error: {error}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(matches!(right, FirstConnection::Connected), "{right:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_connection__when_the_server_requires_a_client_certificate__then_connects_only_with_one_and_refuses_clearly_without()
 {
    // given
    let dir = tempfile::TempDir::new().unwrap();
    let certificates = poa_test_support::TestCertificates::generate(dir.path(), "mutual");
    let redis = RedisServer::builder()
        .tls(certificates.server_files(true))
        .start();
    let with_identity = |client: bool| {
        let config = RedisConfig {
            urls: vec![redis.tls_url()],
            node_timeout: TIMEOUT,
            security: crate::config::RedisSecurity {
                ca_file: Some(certificates.ca.clone()),
                client_cert: client.then(|| certificates.client_cert.clone()),
                client_key: client.then(|| certificates.client_key.clone()),
                ..Default::default()
            },
            ..RedisConfig::default()
        }
        .validate()
        .unwrap();
        context_of(&config, "x")
    };

    // when
    let (with_certificate, _) = first_connection_to(&redis.tls_url(), with_identity(true)).await;
    let (without, elapsed) = first_connection_to(&redis.tls_url(), with_identity(false)).await;

    // then
    assert!(
        matches!(with_certificate, FirstConnection::Connected),
        "{with_certificate:?}"
    );
    let FirstConnection::Refused(error) = without else {
        panic!("expected a refusal, got {without:?}");
    };
    assert!(
        error.to_string().contains("CertificateRequired"),
        "unclear error: {error}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

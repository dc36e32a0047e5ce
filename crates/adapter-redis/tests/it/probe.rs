//! The probes: `PING`, the raw fenced write on one node, and lease acquisition outside the
//! port, against real redis-servers and a half-alive listener.

use std::time::{Duration, Instant};

use adapter_chain::ReferenceChain;
use adapter_redis::ProbeError;
use adapter_redis::probe::{LeaseProbe, NodeProbe};

use crate::support::{block, config, epoch_of, servers, stream_len, urls, with_half_alive};

#[tokio::test]
async fn node_probe__when_lease_taken__then_raw_write_lands_once_per_height() {
    // given
    let servers = servers(1);
    let key = "probe:write";
    let probe = NodeProbe::connect(config(urls(&servers), key))
        .await
        .unwrap();
    probe.ping(0).await.unwrap();
    let epoch = probe.take_lease(0).await.unwrap();

    // when
    probe
        .write_block::<ReferenceChain>(0, epoch, &block(1, 0))
        .await
        .unwrap();
    probe
        .write_block::<ReferenceChain>(0, epoch, &block(1, 0))
        .await
        .unwrap();
    let other = probe
        .write_block::<ReferenceChain>(0, epoch, &block(1, 1))
        .await;

    // then
    assert_eq!(
        stream_len(&servers[0], key),
        1,
        "the same block twice is stored once"
    );
    assert!(
        matches!(
            other,
            Err(ProbeError::Refused {
                operation: "write_block",
                ..
            })
        ),
        "{other:?}"
    );
    assert_eq!(epoch_of(&servers[0], key), epoch.get());
}

#[tokio::test]
async fn node_probe__when_lease_not_taken__then_write_is_fenced() {
    // given
    let servers = servers(1);
    let key = "probe:fenced";
    let holder = NodeProbe::connect(config(urls(&servers), key))
        .await
        .unwrap();
    let epoch = holder.take_lease(0).await.unwrap();
    let intruder = NodeProbe::connect(config(urls(&servers), key))
        .await
        .unwrap();

    // when
    let promote = intruder.take_lease(0).await;
    let write = intruder
        .write_block::<ReferenceChain>(0, epoch, &block(1, 0))
        .await;

    // then
    assert!(
        matches!(promote, Err(ProbeError::Refused { .. })),
        "{promote:?}"
    );
    assert!(
        matches!(write, Err(ProbeError::Refused { .. })),
        "{write:?}"
    );
    assert_eq!(stream_len(&servers[0], key), 0);
}

#[tokio::test]
async fn node_probe__when_node_half_alive__then_ping_fails_within_the_timeout_guard() {
    // given
    let (_listener, all) = with_half_alive(&[]);
    let probe = NodeProbe::connect(config(all, "probe:half")).await.unwrap();
    let started = Instant::now();

    // when
    let ping = probe.ping(0).await;

    // then
    let Err(ProbeError::Unavailable {
        operation: "ping",
        reason,
        ..
    }) = ping
    else {
        panic!("a half-alive node does not answer: {ping:?}");
    };
    // fred's command timeout (the node timeout) or the outer guard just above it, never 0
    assert!(
        reason.contains("no reply within") && !reason.contains("within 0ns"),
        "the error names the bound: {reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a ping must be bounded"
    );
    assert!(
        probe.ping(1).await.is_err(),
        "an index out of range is an error"
    );
}

#[tokio::test]
async fn lease_probe__when_acquired_and_released__then_another_probe_takes_a_higher_epoch() {
    // given
    let servers = servers(3);
    let key = "probe:lease";
    let first = LeaseProbe::connect(config(urls(&servers), key))
        .await
        .unwrap();
    let second = LeaseProbe::connect(config(urls(&servers), key))
        .await
        .unwrap();

    // when
    let first_epoch = first.acquire().await.expect("a free lease is acquired");
    let refused = second.acquire().await;
    first.release().await;
    let second_epoch = second
        .acquire()
        .await
        .expect("a released lease is acquired");

    // then
    assert_eq!(refused, None, "a held lease is not acquired");
    assert!(
        second_epoch > first_epoch,
        "{second_epoch:?} after {first_epoch:?}"
    );
}

#[tokio::test]
async fn lease_probe__when_one_node_half_alive__then_acquired_on_the_healthy_quorum() {
    // given
    let servers = servers(2);
    let (_listener, all) = with_half_alive(&servers);
    // the fleet's membership, written while the third node was already half-alive
    adapter_redis::init_membership(config(all.clone(), "probe:lease-half"))
        .await
        .unwrap();
    let probe = LeaseProbe::connect(config(all, "probe:lease-half"))
        .await
        .unwrap();

    // when
    let epoch = probe.acquire().await;

    // then
    assert!(epoch.is_some(), "two healthy nodes of three are a quorum");
}

//! The fault proxy against a real redis-server: pass, hold, reset, latency, connection counts.

#![allow(non_snake_case)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use poa_test_support::{FaultProxy, ProxyMode, RedisServer, RespError, RespValue, resp, wait_for};

use crate::{HANG_GUARD, PONG, SILENCE, connect, is_timeout, read_line, send_ping};

/// Reads until the connection ends; returns what arrived and the error that ended it (a clean
/// close is `UnexpectedEof`).
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, io::Error) {
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (received, ErrorKind::UnexpectedEof.into()),
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(err) => return (received, err),
        }
    }
}

fn redis_behind_proxy() -> (RedisServer, FaultProxy) {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.addr());
    (redis, proxy)
}

#[test]
fn pass__when_client_writes_through_the_proxy__then_upstream_applies_and_answers() {
    // given
    let (redis, proxy) = redis_behind_proxy();

    // when
    let reply = resp::request(proxy.addr(), &[b"SET", b"key", b"via-proxy"], HANG_GUARD);

    // then
    assert_eq!(reply.unwrap(), RespValue::Simple("OK".to_owned()));
    assert_eq!(
        redis.command(&[b"GET", b"key"]),
        RespValue::bulk("via-proxy")
    );
    assert_eq!(proxy.mode(), ProxyMode::Pass);
    assert_eq!(proxy.upstream(), redis.addr());
    assert_eq!(proxy.url(), format!("redis://{}", proxy.addr()));
}

#[test]
fn hold__when_ping_is_sent_on_an_open_connection__then_reply_arrives_only_after_pass() {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    let mut client = connect(proxy.addr());
    send_ping(&mut client);
    assert_eq!(read_line(&mut client, HANG_GUARD).unwrap(), PONG);
    proxy.set_mode(ProxyMode::Hold);

    // when
    send_ping(&mut client);
    let while_held = read_line(&mut client, SILENCE);
    proxy.set_mode(ProxyMode::Pass);
    let after_pass = read_line(&mut client, HANG_GUARD);

    // then
    assert!(
        while_held.as_ref().is_err_and(is_timeout),
        "got {while_held:?}"
    );
    assert_eq!(after_pass.unwrap(), PONG);
}

#[test]
fn hold__when_connection_opens_during_hold__then_request_completes_after_pass() {
    // given
    let (redis, proxy) = redis_behind_proxy();
    proxy.set_mode(ProxyMode::Hold);

    // when
    let held = std::thread::spawn({
        let addr = proxy.addr();
        move || resp::request(addr, &[b"SET", b"key", b"held"], HANG_GUARD)
    });
    std::thread::sleep(SILENCE);
    let applied_while_held = redis.command(&[b"GET", b"key"]);
    proxy.set_mode(ProxyMode::Pass);

    // then
    assert_eq!(applied_while_held, RespValue::Null);
    assert_eq!(
        held.join().unwrap().unwrap(),
        RespValue::Simple("OK".to_owned())
    );
    assert_eq!(redis.command(&[b"GET", b"key"]), RespValue::bulk("held"));
}

#[test]
fn reset__when_set__then_open_and_new_connections_see_a_reset_until_pass() {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    let mut open = connect(proxy.addr());
    send_ping(&mut open);
    assert_eq!(read_line(&mut open, HANG_GUARD).unwrap(), PONG);

    // when
    proxy.set_mode(ProxyMode::Reset);
    let on_open = read_line(&mut open, HANG_GUARD);
    let on_new = resp::request(proxy.addr(), &[b"PING"], HANG_GUARD);
    proxy.set_mode(ProxyMode::Pass);
    let after_pass = resp::request(proxy.addr(), &[b"PING"], HANG_GUARD);

    // then
    assert_eq!(on_open.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let reset_kind = on_new.as_ref().map_err(RespError::io_kind);
    assert!(
        matches!(
            reset_kind,
            Err(Some(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe))
        ),
        "got {on_new:?}"
    );
    assert_eq!(after_pass.unwrap(), RespValue::Simple("PONG".to_owned()));
}

#[test]
fn latency__when_set__then_round_trip_takes_at_least_the_latency_and_still_answers() {
    // given
    let latency = Duration::from_millis(150);
    let (_redis, proxy) = redis_behind_proxy();
    proxy.set_mode(ProxyMode::Latency(latency));
    let started = Instant::now();

    // when
    let reply = resp::request(proxy.addr(), &[b"PING"], HANG_GUARD);

    // then
    assert!(started.elapsed() >= latency, "took {:?}", started.elapsed());
    assert_eq!(reply.unwrap(), RespValue::Simple("PONG".to_owned()));
}

#[test]
fn latency__when_commands_are_pipelined__then_replies_keep_their_order() {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    proxy.set_mode(ProxyMode::Latency(Duration::from_millis(20)));
    let mut client = connect(proxy.addr());

    // when
    for value in 1..=5_u8 {
        let value = [b'0' + value];
        std::io::Write::write_all(
            &mut client,
            &resp::encode_command(&[b"RPUSH", b"list", &value]),
        )
        .unwrap();
    }
    let expected: Vec<u8> = (1..=5)
        .flat_map(|count| format!(":{count}\r\n").into_bytes())
        .collect();
    let mut replies = vec![0_u8; expected.len()];
    client.set_read_timeout(Some(HANG_GUARD)).unwrap();
    std::io::Read::read_exact(&mut client, &mut replies).unwrap();

    // then
    assert_eq!(
        String::from_utf8_lossy(&replies),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn blackhole__when_set__then_requests_are_neither_answered_nor_forwarded() {
    // given
    let (redis, proxy) = redis_behind_proxy();
    proxy.set_mode(ProxyMode::Blackhole);

    // when
    let reply = resp::request(proxy.addr(), &[b"SET", b"key", b"lost"], SILENCE);

    // then
    assert!(
        matches!(reply, Err(RespError::TimedOut { .. })),
        "got {reply:?}"
    );
    assert_eq!(redis.command(&[b"GET", b"key"]), RespValue::Null);
}

#[test]
fn accepted_connections__when_many_requests_share_one_connection__then_counts_one() {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    let mut client = connect(proxy.addr());

    // when
    for _ in 0..200 {
        send_ping(&mut client);
        assert_eq!(read_line(&mut client, HANG_GUARD).unwrap(), PONG);
    }
    let after_one_connection = proxy.accepted_connections();
    resp::request(proxy.addr(), &[b"PING"], HANG_GUARD).unwrap();
    resp::request(proxy.addr(), &[b"PING"], HANG_GUARD).unwrap();

    // then
    assert_eq!(after_one_connection, 1);
    assert!(wait_for(HANG_GUARD, || proxy.accepted_connections() == 3));
}

#[tokio::test]
async fn fault_proxy__when_used_from_a_current_thread_runtime__then_serves_blocking_and_async_clients()
 {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    proxy.set_mode(ProxyMode::Latency(Duration::from_millis(10)));

    // when
    let blocking = resp::request(proxy.addr(), &[b"PING"], HANG_GUARD);
    let nonblocking = resp::request_async(proxy.addr(), &[b"PING"], HANG_GUARD).await;

    // then
    assert_eq!(blocking.unwrap(), RespValue::Simple("PONG".to_owned()));
    assert_eq!(nonblocking.unwrap(), RespValue::Simple("PONG".to_owned()));
}

#[test]
fn drop__when_proxy_is_dropped__then_client_sees_its_connection_closed() {
    // given
    let (_redis, proxy) = redis_behind_proxy();
    let mut client = connect(proxy.addr());
    send_ping(&mut client);
    assert_eq!(read_line(&mut client, HANG_GUARD).unwrap(), PONG);

    // when
    drop(proxy);

    // then
    let closed = read_line(&mut client, HANG_GUARD).unwrap_err();
    assert!(
        !is_timeout(&closed),
        "connection should be closed, not silent: {closed:?}"
    );
}

#[test]
fn close_after__when_a_reply_exceeds_the_allowance__then_the_connection_is_reset_mid_reply() {
    // given
    let (redis, proxy) = redis_behind_proxy();
    let value = vec![b'x'; 4096];
    redis.command(&[b"SET", b"big", &value]);
    proxy.set_mode(ProxyMode::CloseAfter(100));

    // when
    let cut = resp::request(proxy.addr(), &[b"GET", b"big"], HANG_GUARD);

    // then the 4 KiB reply never arrives whole
    assert!(cut.is_err(), "{cut:?}");
    // and an exchange within the allowance still completes on a new connection
    let small = resp::request(proxy.addr(), &[b"PING"], HANG_GUARD);
    assert_eq!(small.unwrap(), RespValue::Simple("PONG".to_owned()));
}

#[test]
fn close_after__when_a_reply_is_longer_than_the_allowance__then_exactly_the_allowance_arrives_before_the_reset()
 {
    // given a connection that already exchanged bytes, and a reply far longer than the allowance
    let (redis, proxy) = redis_behind_proxy();
    let value = vec![b'x'; 64 * 1024];
    redis.command(&[b"SET", b"big", &value]);
    let mut client = connect(proxy.addr());
    send_ping(&mut client);
    assert_eq!(read_line(&mut client, HANG_GUARD).unwrap(), PONG);
    proxy.set_mode(ProxyMode::CloseAfter(1000));

    // when
    client
        .write_all(&resp::encode_command(&[b"GET", b"big"]))
        .unwrap();
    let (received, ending) = read_until_closed(&mut client);

    // then the reply stops in its middle, at the allowance, and the connection is reset (not
    // closed cleanly), as a link dying mid-reply
    assert_eq!(received.len(), 1000);
    assert!(received.starts_with(b"$65536\r\nxxx"));
    assert_eq!(ending.kind(), ErrorKind::ConnectionReset, "{ending:?}");
}

//! The redis-server fixture: start, stop, restart empty or with its append-only file, freeze and
//! thaw, stream trimming settings, no orphans.

#![allow(non_snake_case)]

use std::thread;
use std::time::{Duration, Instant};

use poa_test_support::{RedisServer, RespError, RespValue};

use crate::{SILENCE, process_exists};

fn pong() -> RespValue {
    RespValue::Simple("PONG".to_owned())
}

fn server_pid_reported_by_info(server: &RedisServer) -> u32 {
    let info = server.command(&[b"INFO", b"server"]);
    let text = String::from_utf8(info.as_bytes().expect("INFO is a bulk string").to_vec()).unwrap();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .unwrap();
    line.trim().parse().unwrap()
}

#[test]
fn start__when_redis_server_is_installed__then_answers_ping_on_its_url() {
    // given
    let server = RedisServer::start();

    // when
    let reply = server.command(&[b"PING"]);

    // then
    assert_eq!(reply, pong());
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.addr().port(), server.port());
    assert_eq!(server.pid(), Some(server_pid_reported_by_info(&server)));
}

#[test]
fn command__when_keys_are_written__then_replies_of_every_type_round_trip() {
    // given
    let server = RedisServer::start();

    // when
    let set = server.command(&[b"SET", b"key", b"value\r\nwith crlf"]);
    let get = server.command(&[b"GET", b"key"]);
    let missing = server.command(&[b"GET", b"missing"]);
    let pushed = server.command(&[b"RPUSH", b"list", b"a", b"b"]);
    let range = server.command(&[b"LRANGE", b"list", b"0", b"-1"]);
    let wrong_type = server.command(&[b"GET", b"list"]);
    server.command(&[b"XADD", b"stream", b"1-1", b"height", b"1"]);
    let stream = server.command(&[b"XRANGE", b"stream", b"-", b"+"]);

    // then
    assert_eq!(set, RespValue::Simple("OK".to_owned()));
    assert_eq!(get, RespValue::bulk("value\r\nwith crlf"));
    assert_eq!(missing, RespValue::Null);
    assert_eq!(pushed, RespValue::Integer(2));
    assert_eq!(
        range,
        RespValue::Array(vec![RespValue::bulk("a"), RespValue::bulk("b")])
    );
    assert!(matches!(wrong_type, RespValue::Error(message) if message.starts_with("WRONGTYPE")));
    let entry = RespValue::Array(vec![
        RespValue::bulk("1-1"),
        RespValue::Array(vec![RespValue::bulk("height"), RespValue::bulk("1")]),
    ]);
    assert_eq!(stream, RespValue::Array(vec![entry]));
}

#[test]
fn restart__when_server_held_keys__then_comes_back_empty_on_the_same_port() {
    // given
    let server = RedisServer::start();
    server.command(&[b"SET", b"key", b"value"]);
    let (port, url, pid) = (server.port(), server.url(), server.pid());

    // when
    server.restart();

    // then
    assert_eq!((server.port(), server.url()), (port, url));
    assert_ne!(server.pid(), pid);
    assert_eq!(server.command(&[b"GET", b"key"]), RespValue::Null);
    assert_eq!(server.command(&[b"DBSIZE"]), RespValue::Integer(0));
}

#[test]
fn restart_keeping_data__when_append_only_server_was_killed__then_every_acknowledged_write_is_back()
{
    // given
    let server = RedisServer::builder().append_only().start();
    server.command(&[b"SET", b"key", b"value"]);
    server.command(&[b"XADD", b"stream", b"*", b"height", b"1"]);
    let pid = server.pid();

    // when
    server.restart_keeping_data();

    // then
    assert_ne!(server.pid(), pid);
    assert_eq!(server.command(&[b"GET", b"key"]), RespValue::bulk("value"));
    assert_eq!(server.command(&[b"XLEN", b"stream"]), RespValue::Integer(1));
}

#[test]
fn restart__when_append_only_server_held_keys__then_comes_back_empty_and_stays_persistent() {
    // given
    let server = RedisServer::builder().append_only().start();
    server.command(&[b"SET", b"key", b"value"]);

    // when
    server.restart();
    server.command(&[b"SET", b"after", b"empty"]);
    server.restart_keeping_data();

    // then the empty restart lost the old key, and writes after it persist again
    assert_eq!(server.command(&[b"GET", b"key"]), RespValue::Null);
    assert_eq!(
        server.command(&[b"GET", b"after"]),
        RespValue::bulk("empty")
    );
}

#[test]
fn restore__when_writes_followed_the_snapshot__then_holds_exactly_the_snapshot_and_a_later_restart_is_empty()
 {
    for server in [
        RedisServer::start(),
        RedisServer::builder().append_only().start(),
    ] {
        // given
        server.command(&[b"SET", b"before", b"1"]);
        let snapshot = server.snapshot();
        server.command(&[b"SET", b"after", b"2"]);
        server.command(&[b"SET", b"before", b"changed"]);

        // when
        server.restore(&snapshot);

        // then
        assert_eq!(server.command(&[b"GET", b"before"]), RespValue::bulk("1"));
        assert_eq!(server.command(&[b"GET", b"after"]), RespValue::Null);
        server.restart();
        assert_eq!(server.command(&[b"DBSIZE"]), RespValue::Integer(0));
    }
}

#[test]
fn stream_node_max_entries__when_set__then_approximate_trimming_keeps_at_most_that_many_extra() {
    // given
    let server = RedisServer::builder().stream_node_max_entries(4).start();

    // when
    for _ in 0..40 {
        server.command(&[b"XADD", b"stream", b"MAXLEN", b"~", b"10", b"*", b"f", b"v"]);
    }

    // then
    let RespValue::Integer(length) = server.command(&[b"XLEN", b"stream"]) else {
        panic!("XLEN is an integer");
    };
    assert!((10..14).contains(&length), "{length} entries");
}

#[test]
fn freeze__when_server_is_frozen__then_ping_times_out_until_thawed() {
    // given
    let server = RedisServer::start();
    server.freeze();

    // when
    let while_frozen = server.try_command(&[b"PING"], SILENCE);
    server.thaw();
    let after_thaw = server.command(&[b"PING"]);

    // then
    assert!(
        matches!(while_frozen, Err(RespError::TimedOut { .. })),
        "got {while_frozen:?}"
    );
    assert_eq!(after_thaw, pong());
}

#[test]
fn stop__when_server_runs__then_process_is_gone_and_connections_are_refused() {
    // given
    let server = RedisServer::start();
    let pid = server.pid().unwrap();

    // when
    server.stop();

    // then
    assert!(!process_exists(pid));
    assert_eq!(server.pid(), None);
    let refused = server.try_command(&[b"PING"], SILENCE).unwrap_err();
    assert_eq!(
        refused.io_kind(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
}

#[test]
fn stop__when_server_is_frozen__then_process_is_gone() {
    // given
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    server.freeze();

    // when
    server.stop();

    // then
    assert!(!process_exists(pid));
}

#[test]
fn drop__when_server_goes_out_of_scope__then_process_is_gone() {
    // given
    let server = RedisServer::start();
    let pid = server.pid().unwrap();

    // when
    drop(server);

    // then
    assert!(!process_exists(pid));
}

#[test]
fn drop__when_test_panics__then_process_is_gone() {
    // given
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();

    // when
    let outcome = std::panic::catch_unwind(move || {
        let server = RedisServer::start();
        pid_tx.send(server.pid().unwrap()).unwrap();
        panic!("simulated test failure while the server runs");
    });

    // then
    assert!(outcome.is_err());
    assert!(!process_exists(pid_rx.recv().unwrap()));
}

#[test]
fn new_stopped__when_restarted__then_starts_on_its_reserved_port() {
    // given
    let server = RedisServer::new_stopped();
    let before_start = server.try_command(&[b"PING"], SILENCE);

    // when
    server.restart();

    // then
    assert!(before_start.is_err());
    assert_eq!(server.command(&[b"PING"]), pong());
}

#[test]
fn start__when_servers_start_concurrently__then_each_owns_a_distinct_port() {
    // given
    let starters: Vec<_> = (0..4).map(|_| thread::spawn(RedisServer::start)).collect();

    // when
    let servers: Vec<_> = starters
        .into_iter()
        .map(|starter| starter.join().unwrap())
        .collect();

    // then
    let mut ports: Vec<_> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(server.pid(), Some(server_pid_reported_by_info(server)));
    }
}

#[tokio::test]
async fn command_async__when_called_on_a_current_thread_runtime__then_round_trips() {
    // given
    let server = RedisServer::start();

    // when
    server.command_async(&[b"SET", b"key", b"value"]).await;
    let reply = server.command_async(&[b"GET", b"key"]).await;

    // then
    assert_eq!(reply, RespValue::bulk("value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn try_command_async__when_server_is_frozen__then_times_out_without_hanging() {
    // given
    let server = RedisServer::start();
    server.freeze();
    let started = Instant::now();

    // when
    let reply = server.try_command_async(&[b"PING"], SILENCE).await;

    // then
    assert!(
        matches!(reply, Err(RespError::TimedOut { .. })),
        "got {reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

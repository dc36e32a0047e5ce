//! The public HTTP listener against idle and slow clients, with real sockets against a real
//! process: it closes connections that send no request, caps how many it holds (closing the
//! one that waited longest for a request to make room), and keeps `/health` answering.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Node, allow_descriptors, binary, eventually, hold_connections};

/// Bound of one probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe may keep trying: generous, it only catches a listener that never answers.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// `count` connections to `address`: even ones send nothing, odd ones the start of a request
/// and then nothing (a slow client).
fn idle_and_slow(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    hold_connections(address, count, |index| {
        if index % 2 == 1 {
            &b"GET /status HTTP/1.1
Host: slow
"[..]
        } else {
            &[][..]
        }
    })
}

/// Whether the server closed `stream` (end of file or reset) within `deadline`.
fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    stream.set_read_timeout(Some(deadline)).unwrap();
    let mut buffer = [0_u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // An answer (a timeout's 408, say) is fine: keep reading to the close.
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn http__when_more_idle_and_slow_clients_than_the_soft_descriptor_limit_hold_connections__then_health_and_status_still_answer()
 {
    // given: a node started with the usual soft limit of 1,024 descriptors
    allow_descriptors(4_096);
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with_descriptor_limit(dir.path(), &["--block-time", "100ms"], 1_024);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 1));

    // when 1,100 clients hold connections without finishing a request
    let held = idle_and_slow(node.http.parse().unwrap(), 1_100);

    // then the API still answers, and the chain can be read
    assert!(
        held.len() > 1_000,
        "only {} connections were taken",
        held.len()
    );
    assert_eq!(
        node.get_within("/health", PROBE_TIMEOUT, PROBE_DEADLINE),
        Some(200)
    );
    assert_eq!(
        node.get_within("/status", PROBE_TIMEOUT, PROBE_DEADLINE),
        Some(200)
    );
    drop(held);
}

#[test]
fn http__when_connections_send_no_complete_request__then_the_server_closes_them_after_the_header_timeout()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &["--block-time", "100ms", "--http-header-timeout", "1s"],
    );

    // when
    let mut held = idle_and_slow(node.http.parse().unwrap(), 20);

    // then every one of them is closed, well before this generous bound
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_by_server(stream, left.max(Duration::from_millis(10))),
            "a connection without a request stayed open for {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn http__when_clients_exceed_the_connection_cap__then_the_longest_waiting_are_closed_and_requests_are_served()
 {
    // given: a cap of 64 connections and a header timeout far beyond this test
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &[
            "--block-time",
            "100ms",
            "--http-max-connections",
            "64",
            "--http-header-timeout",
            "10m",
        ],
    );

    // when 200 clients hold connections without a request
    let mut held = idle_and_slow(node.http.parse().unwrap(), 200);

    // then requests are still served, and the server closed the connections beyond its cap,
    // the oldest first
    assert_eq!(
        node.get_within("/health", PROBE_TIMEOUT, PROBE_DEADLINE),
        Some(200)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = held
        .iter_mut()
        .take(100)
        .filter_map(|stream| {
            let left = deadline.saturating_duration_since(Instant::now());
            closed_by_server(stream, left.max(Duration::from_millis(10))).then_some(())
        })
        .count();
    assert!(
        closed >= 100,
        "only {closed} of the 100 oldest connections were closed"
    );
}

#[test]
fn http__when_the_connection_cap_needs_more_descriptors_than_the_hard_limit__then_refuses_to_start_naming_the_flag()
 {
    // given: a hard limit of 512 descriptors
    let dir = tempfile::tempdir().unwrap();

    // when
    let output = Command::new("sh")
        .args(["-c", r#"ulimit -n 512 && exec "$@""#, "sh", binary()])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--admin-http", "127.0.0.1:0"])
        .args(["--http-max-connections", "1000"])
        .output()
        .unwrap();

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--http-max-connections"), "{stderr}");
    assert!(stderr.contains("512"), "{stderr}");
}

#[test]
fn http__when_a_limit_setting_is_zero__then_refuses_to_start_naming_the_flag() {
    for flag in [
        "--http-max-connections",
        "--http-header-timeout",
        "--http-idle-timeout",
    ] {
        // when
        let value = if flag == "--http-max-connections" {
            "0"
        } else {
            "0s"
        };
        let output = Command::new(binary()).args([flag, value]).output().unwrap();

        // then
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

//! Large transfers under clients that do not keep up, with real sockets against a real process:
//! range answers of raw blocks that nobody reads, and relay batches and transactions uploaded
//! slowly. What the process holds for them stays bounded, and `/health` keeps answering.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Node, allow_descriptors, eventually, hold_connections};

/// Bytes of each filler transaction: 16 of them fill a block's 1 MiB.
const FILLER_BYTES: usize = 60 * 1024;

/// The resident memory of a process, in MiB.
fn rss_mib(node: &Node) -> u64 {
    node.proc_status("VmRSS") / 1024
}

/// A single node whose chain holds about `mib` MiB of transactions, all committed.
fn node_with_a_large_chain(dir: &std::path::Path, mib: usize) -> Node {
    let node = Node::start(dir, &["--block-time", "100ms"]);
    for index in 0..mib * 1024 * 1024 / FILLER_BYTES {
        let mut body = vec![u8::try_from(index % 251).unwrap(); FILLER_BYTES];
        body[..8].copy_from_slice(&u64::try_from(index).unwrap().to_be_bytes());
        let (status, answer) = node.post("/transactions", &body);
        assert_eq!(status, 202, "{answer}");
    }
    assert!(
        eventually(
            Duration::from_secs(60),
            || node.get("/status").1["pending_transactions"] == 0
        ),
        "the filler transactions were not all included"
    );
    node
}

#[test]
fn raw_blocks__when_clients_never_read_their_range_answers__then_past_the_bound_answers_503_and_memory_stays_bounded()
 {
    // given: a chain of about 12 MiB, so every range answer carries its full 8 MiB
    allow_descriptors(1_024);
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_a_large_chain(dir.path(), 12);
    let address: SocketAddr = node.http.parse().unwrap();
    let before = rss_mib(&node);

    // when 150 clients ask for a range and never read the answer
    let request = b"GET /blocks/raw?from=1&limit=256 HTTP/1.1\r\nHost: slow\r\n\r\n";
    let held = hold_connections(address, 150, |_| &request[..]);
    std::thread::sleep(Duration::from_secs(2));

    // then the next range request is refused for now, the API answers, and the process holds
    // far less than 150 answers of 8 MiB
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(&node.url("/blocks/raw?from=1&limit=256"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(node.get("/health").0, 200);
    let grown = rss_mib(&node).saturating_sub(before);
    assert!(
        grown < 300,
        "150 unread range answers grew the process by {grown} MiB"
    );
    drop(held);
}

#[test]
fn relay__when_clients_upload_relay_batches_slowly__then_past_the_bound_answers_503_and_memory_stays_bounded()
 {
    // given
    allow_descriptors(1_024);
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    let address: SocketAddr = node.http.parse().unwrap();
    let before = rss_mib(&node);

    // when 100 clients each send most of a 2 MiB relay batch and then stall
    let length = 2 * 1024 * 1024 - 1;
    let head = format!(
        "POST /transactions/relay HTTP/1.1\r\nHost: slow\r\ncontent-length: {length}\r\n\r\n"
    );
    let mut request = head.into_bytes();
    request.push(1);
    request.extend(std::iter::repeat_n(0_u8, length - 1 - 4096));
    let held = hold_connections(address, 100, |_| &request[..]);
    std::thread::sleep(Duration::from_secs(2));

    // then the process did not take in 100 batches, and the API answers
    assert_eq!(node.get("/health").0, 200);
    let grown = rss_mib(&node).saturating_sub(before);
    assert!(
        grown < 100,
        "100 stalled relay uploads grew the process by {grown} MiB"
    );
    drop(held);
}

#[test]
fn transactions__when_more_clients_upload_slowly_than_the_connection_cap__then_memory_stays_bounded_and_health_answers()
 {
    // given
    allow_descriptors(4_096);
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    let address: SocketAddr = node.http.parse().unwrap();
    let before = rss_mib(&node);

    // when 1,500 clients each send all but the last bytes of a 64 KiB transaction and stall
    let length = 64 * 1024;
    let mut request =
        format!("POST /transactions HTTP/1.1\r\nHost: slow\r\ncontent-length: {length}\r\n\r\n")
            .into_bytes();
    request.extend(std::iter::repeat_n(7_u8, length - 16));
    let held = hold_connections(address, 1_500, |_| &request[..]);
    std::thread::sleep(Duration::from_secs(2));

    // then at most the connection cap's worth of bodies is held, and the API answers
    assert_eq!(
        node.get_within("/health", Duration::from_secs(2), Duration::from_secs(30)),
        Some(200)
    );
    let grown = rss_mib(&node).saturating_sub(before);
    eprintln!(
        "{} stalled uploads of 64 KiB held, the process grew by {grown} MiB",
        held.len()
    );
    assert!(
        grown < 256,
        "stalled uploads grew the process by {grown} MiB"
    );
    drop(held);
}

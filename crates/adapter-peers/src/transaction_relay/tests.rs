//! Behaviour of the relay against a frozen listener and a small keep-alive HTTP server that
//! decodes every batch it receives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poa_ports::Transaction;
use poa_ports::{Clock, Timestamp};
use poa_test_support::{HalfAliveListener, wait_for_async};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::PeerTransactionRelay;
use crate::config::{PeerConfig, RelayBounds};
use crate::relay_batch::{RelayedTransaction, decode_relay_batch};
use crate::resend::PendingTransactions;

/// A local pool as the relay reads it.
#[derive(Debug, Default)]
struct Pool(Mutex<Vec<RelayedTransaction>>);

impl PendingTransactions for Pool {
    fn first_seen_by(&self, cutoff: Timestamp, max: usize) -> Vec<RelayedTransaction> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|entry| entry.first_seen <= cutoff)
            .take(max)
            .cloned()
            .collect()
    }
}

/// A wall clock standing still at [`NOW`].
struct StillClock;

/// The time the tests' clock shows.
const NOW: u64 = 1_700_000_000_000;

impl Clock for StillClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(NOW)
    }
}

fn start(config: &PeerConfig, pool: &Arc<Pool>, registry: &mut Registry) -> PeerTransactionRelay {
    PeerTransactionRelay::start(
        config,
        Arc::clone(pool) as Arc<dyn PendingTransactions>,
        Arc::new(StillClock),
        registry,
    )
}

/// What the fake peer saw.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    transactions: Mutex<Vec<RelayedTransaction>>,
}

/// A keep-alive HTTP/1.1 server that answers every request 200 and decodes relay batches.
async fn keep_alive_peer() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let serving = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            serving.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_connection(stream, Arc::clone(&serving)));
        }
    });
    (format!("http://{address}"), seen)
}

async fn serve_connection(mut stream: TcpStream, seen: Arc<Seen>) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0_u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        while buffer.len() < head_end + length {
            let mut chunk = [0_u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
        seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.transactions
            .lock()
            .unwrap()
            .extend(decode_relay_batch(&body).unwrap());
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn entries(count: usize) -> Vec<RelayedTransaction> {
    (0..count)
        .map(|index| RelayedTransaction {
            transaction: Transaction::new(format!("transaction {index}").into_bytes()),
            first_seen: Timestamp::from_unix_millis(1_000 + u64::try_from(index).unwrap()),
        })
        .collect()
}

/// The sum of `metric`'s series whose labels include `label` in the registry's text.
fn metric(registry: &Registry, metric: &str, label: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) && line.contains(label))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// The value of the relay counter for `outcome`.
fn counted(registry: &Registry, outcome: &str) -> u64 {
    metric(
        registry,
        "poa_relay_transactions_total",
        &format!("outcome=\"{outcome}\""),
    )
}

/// How many times the peer received `entry`.
fn received(seen: &Seen, entry: &RelayedTransaction) -> usize {
    seen.transactions
        .lock()
        .unwrap()
        .iter()
        .filter(|received| *received == entry)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay__when_the_peer_answers__then_delivers_everything_in_batches_over_few_connections() {
    // given
    let (peer, seen) = keep_alive_peer().await;
    let config = PeerConfig::new(vec![peer]).unwrap();
    let mut registry = Registry::default();
    let relay = start(&config, &Arc::new(Pool::default()), &mut registry);
    let sent = entries(2_000);

    // when
    for entry in &sent {
        relay.relay(entry);
    }

    // then: every transaction arrives once, with its first-seen time (batches in flight at
    // once may arrive in either order)
    assert!(
        wait_for_async(Duration::from_secs(30), || async {
            seen.transactions.lock().unwrap().len() >= sent.len()
        })
        .await,
        "the peer did not receive every transaction"
    );
    let mut received = seen.transactions.lock().unwrap().clone();
    received.sort_by_key(|entry| entry.first_seen);
    assert!(
        received == sent,
        "received {} transactions, not those sent",
        received.len()
    );
    // A connection goes back to the pool just after its answer is read, so a request may
    // occasionally open one more than the requests in flight; never one per batch.
    let connections = seen.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 2 * config.relay.in_flight,
        "{connections} connections"
    );
    let requests = seen.requests.load(Ordering::SeqCst);
    assert!(
        requests < sent.len() / 4,
        "{requests} requests for {} transactions",
        sent.len()
    );
    assert_eq!(counted(&registry, "delivered"), 2_000);
    assert_eq!(counted(&registry, "dropped"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay__when_the_peer_never_answers__then_returns_at_once_and_counts_what_overflows_as_dropped()
 {
    // given: a frozen peer and a small queue
    let frozen = HalfAliveListener::start();
    let config = PeerConfig::new(vec![format!("http://{}", frozen.addr())])
        .unwrap()
        .with_request_timeout(Duration::from_millis(500))
        .unwrap()
        .with_relay_bounds(RelayBounds {
            queue: 8,
            in_flight: 1,
            ..RelayBounds::standard()
        })
        .unwrap();
    let mut registry = Registry::default();
    let relay = start(&config, &Arc::new(Pool::default()), &mut registry);

    // when
    let started = Instant::now();
    for entry in &entries(1_000) {
        relay.relay(entry);
    }
    let elapsed = started.elapsed();

    // then: relaying never waited for the peer (a generous bound, far below one request
    // timeout per transaction); what did not fit was dropped, the rest failed, all counted
    assert!(
        elapsed < Duration::from_secs(5),
        "relaying took {elapsed:?}"
    );
    assert!(
        relay.shutdown(config.request_timeout * 3).await,
        "shutdown did not finish within the request timeout"
    );
    let dropped = counted(&registry, "dropped");
    assert!(dropped > 0);
    assert_eq!(dropped + counted(&registry, "failed"), 1_000);
    assert_eq!(counted(&registry, "delivered"), 0);
    // one connection per request: the first batch, then what was queued behind it
    assert!(frozen.accepted_connections() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend__when_a_transaction_stays_pending_on_a_process_that_does_not_lead__then_sends_it_again()
 {
    // given: a transaction pending for ten seconds that was never relayed
    let (peer, seen) = keep_alive_peer().await;
    let config = PeerConfig::new(vec![peer]).unwrap();
    let stuck = RelayedTransaction {
        transaction: Transaction::new(b"stuck".to_vec()),
        first_seen: Timestamp::from_unix_millis(NOW - 10_000),
    };
    let pool = Arc::new(Pool(Mutex::new(vec![stuck.clone()])));
    let mut registry = Registry::default();

    // when
    let _relay = start(&config, &pool, &mut registry);

    // then
    assert!(
        wait_for_async(Duration::from_secs(20), || async {
            received(&seen, &stuck) >= 1
        })
        .await,
        "the pending transaction was not sent again"
    );
    assert!(
        metric(
            &registry,
            "poa_relay_resent_transactions_total",
            "reason=\"stuck\""
        ) >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_leading__when_this_process_stops_leading__then_hands_everything_pending_on() {
    // given: a leader holding five transactions it just accepted
    let (peer, seen) = keep_alive_peer().await;
    let config = PeerConfig::new(vec![peer]).unwrap();
    let now = Timestamp::from_unix_millis(NOW);
    let pending: Vec<RelayedTransaction> = (0..5)
        .map(|index| RelayedTransaction {
            transaction: Transaction::new(format!("held {index}").into_bytes()),
            first_seen: now,
        })
        .collect();
    let pool = Arc::new(Pool(Mutex::new(pending.clone())));
    let mut registry = Registry::default();
    let relay = start(&config, &pool, &mut registry);
    relay.set_leading(true);

    // when
    relay.set_leading(false);

    // then every one reaches the peer, handed on (not swept later)
    assert!(
        wait_for_async(Duration::from_secs(20), || async {
            pending.iter().all(|entry| received(&seen, entry) >= 1)
        })
        .await,
        "the pending transactions were not handed on"
    );
    assert_eq!(
        metric(
            &registry,
            "poa_relay_resent_transactions_total",
            "reason=\"hand_on\""
        ),
        5
    );
}

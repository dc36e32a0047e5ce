//! Behaviour of the peer history source against tiny loopback HTTP servers that answer with
//! canned batches, 404s, or never answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::block_batch::encode_block_batch;
use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
use poa_ports::{
    BlockHeight, BlockHistorySource, BlockId, ChainId, HistoryError, Signature, Timestamp,
};

use super::PeerBlockHistory;
use crate::config::PeerConfig;

/// A chain of sealed blocks from height 1 to `to`.
fn chain_to(to: u64) -> Vec<SealedBlock> {
    let mut parent = BlockId::default();
    (1..=to)
        .map(|height| {
            let block = SealedBlock {
                block: Block {
                    header: Header {
                        chain_id: ChainId::new(1),
                        height: BlockHeight::new(height),
                        parent_id: parent,
                        timestamp: Timestamp::from_unix_millis(height),
                        transactions_root: transactions_root(&[]),
                        transaction_count: 0,
                    },
                    transactions: vec![],
                },
                seal: Seal::Authority(Signature::from_bytes([7; 64])),
            };
            parent = block.id();
            block
        })
        .collect()
}

fn batch(frames: &[Vec<u8>]) -> Vec<u8> {
    encode_block_batch(frames.iter().map(Vec::as_slice))
}

/// How a fake peer answers every request.
#[derive(Clone)]
enum Behaviour {
    Answer { status: u16, body: Vec<u8> },
    Silent,
}

/// Serves `behaviour` on a free loopback port for the life of the test process; returns its
/// base URL.
fn fake_peer(behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            match &behaviour {
                Behaviour::Silent => held.push(stream),
                Behaviour::Answer { status, body } => {
                    let mut request = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
            }
        }
    });
    format!("http://{address}")
}

fn history(urls: Vec<String>) -> PeerBlockHistory<ReferenceChain> {
    PeerBlockHistory::new(
        PeerConfig::new(urls)
            .unwrap()
            .with_request_timeout(Duration::from_millis(300))
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_a_peer_serves_a_batch__then_returns_the_consecutive_blocks() {
    // given: the batch holds 1, 2, 3 and then 5 (out of sequence)
    let blocks = chain_to(5);
    let frames: Vec<Vec<u8>> = [0, 1, 2, 4].iter().map(|&i| blocks[i].encode()).collect();
    let peer = fake_peer(Behaviour::Answer {
        status: 200,
        body: batch(&frames),
    });

    // when
    let fetched = history(vec![peer])
        .blocks_from(BlockHeight::new(1), 10)
        .await
        .unwrap();

    // then
    assert_eq!(fetched, blocks[..3].to_vec());
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_a_block_does_not_decode__then_keeps_the_blocks_before_it() {
    // given
    let blocks = chain_to(3);
    let frames = vec![blocks[0].encode(), b"garbage".to_vec(), blocks[2].encode()];
    let peer = fake_peer(Behaviour::Answer {
        status: 200,
        body: batch(&frames),
    });

    // when
    let fetched = history(vec![peer])
        .blocks_from(BlockHeight::new(1), 10)
        .await
        .unwrap();

    // then
    assert_eq!(fetched, vec![blocks[0].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_the_first_peers_lack_the_height_or_hang__then_asks_the_next_within_the_timeout()
 {
    // given: one peer never answers, one does not hold the height, one serves it
    let blocks = chain_to(2);
    let silent = fake_peer(Behaviour::Silent);
    let lacking = fake_peer(Behaviour::Answer {
        status: 404,
        body: Vec::new(),
    });
    let serving = fake_peer(Behaviour::Answer {
        status: 200,
        body: batch(&[blocks[0].encode(), blocks[1].encode()]),
    });
    let source = history(vec![silent, lacking, serving]);
    let started = Instant::now();

    // when
    let fetched = source.blocks_from(BlockHeight::new(1), 10).await.unwrap();

    // then
    assert_eq!(fetched, blocks);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_every_peer_answers_without_the_height__then_returns_nothing() {
    // given
    let empty = fake_peer(Behaviour::Answer {
        status: 200,
        body: Vec::new(),
    });
    let lacking = fake_peer(Behaviour::Answer {
        status: 404,
        body: Vec::new(),
    });

    // when
    let fetched = history(vec![empty, lacking])
        .blocks_from(BlockHeight::new(7), 10)
        .await;

    // then
    assert_eq!(fetched.unwrap(), Vec::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_no_peer_answers__then_reports_them_unavailable() {
    // given: a port nothing listens on, and a peer answering 500
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failing = fake_peer(Behaviour::Answer {
        status: 500,
        body: Vec::new(),
    });

    // when
    let fetched = history(vec![closed, failing])
        .blocks_from(BlockHeight::new(1), 10)
        .await;

    // then
    assert!(
        matches!(fetched, Err(HistoryError::Unavailable { sources: 2, .. })),
        "{fetched:?}"
    );
}

fn not_held() -> Behaviour {
    Behaviour::Answer {
        status: 404,
        body: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_every_source__when_every_peer_answers_that_it_lacks_the_height__then_none_holds_it() {
    // given
    let peers = vec![fake_peer(not_held()), fake_peer(not_held())];

    // when
    let answer = history(peers)
        .ask_every_source(BlockHeight::new(4), 10)
        .await
        .unwrap();

    // then
    assert_eq!(answer, poa_ports::EverySource::NoneHolds);
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_every_source__when_one_peer_lacks_it_and_one_never_answers__then_names_the_silent_one()
{
    // given
    let silent = fake_peer(Behaviour::Silent);
    let peers = vec![fake_peer(not_held()), silent.clone()];

    // when
    let answer = history(peers)
        .ask_every_source(BlockHeight::new(4), 10)
        .await
        .unwrap();

    // then: not "none holds it": the silent peer may hold more
    assert_eq!(answer, poa_ports::EverySource::Unanswered(vec![silent]));
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_every_source__when_a_later_peer_holds_the_height__then_returns_its_blocks() {
    // given
    let blocks = chain_to(5);
    let frames: Vec<Vec<u8>> = blocks[3..].iter().map(SealedBlock::encode).collect();
    let holder = fake_peer(Behaviour::Answer {
        status: 200,
        body: batch(&frames),
    });
    let peers = vec![fake_peer(Behaviour::Silent), fake_peer(not_held()), holder];

    // when
    let answer = history(peers)
        .ask_every_source(BlockHeight::new(4), 10)
        .await
        .unwrap();

    // then
    assert_eq!(answer, poa_ports::EverySource::Blocks(blocks[3..].to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_every_source__when_no_peer_is_configured__then_says_so() {
    // given / when
    let answer = history(Vec::new())
        .ask_every_source(BlockHeight::new(4), 10)
        .await;

    // then
    assert!(matches!(answer, Err(HistoryError::NoSource)), "{answer:?}");
}

/// A peer that serves `blocks` from the height asked for, but takes longer than the tests'
/// request timeout whenever it is asked for more than `most` blocks (a batch too large to
/// serve in time). Each request is served on its own thread.
fn peer_slow_above(blocks: Vec<SealedBlock>, most: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let blocks = blocks.clone();
            thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let query = |name: &str| -> usize {
                    request
                        .split(&format!("{name}="))
                        .nth(1)
                        .and_then(|rest| rest.split(['&', ' ']).next())
                        .and_then(|value| value.parse().ok())
                        .unwrap()
                };
                let (from, limit) = (query("from"), query("limit"));
                if limit > most {
                    thread::sleep(Duration::from_millis(1_000));
                    return;
                }
                let frames: Vec<Vec<u8>> = blocks
                    .iter()
                    .skip(from - 1)
                    .take(limit)
                    .map(SealedBlock::encode)
                    .collect();
                let body = batch(&frames);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_from__when_the_peer_cannot_serve_the_batch_in_time__then_asks_for_fewer_until_it_can()
 {
    // given: a peer that serves at most 4 blocks per request in time
    let blocks = chain_to(40);
    let source = history(vec![peer_slow_above(blocks.clone(), 4)]);

    // when: a catch-up asks for 32 blocks per call, as many calls as it takes
    let mut fetched = Vec::new();
    for _ in 0..12 {
        let next = BlockHeight::new(fetched.len() as u64 + 1);
        if let Ok(more) = source.blocks_from(next, 32).await {
            fetched.extend(more);
        }
        if fetched.len() >= 20 {
            break;
        }
    }

    // then: after a few timeouts it asks for what the peer can serve, and the catch-up goes on
    assert!(fetched.len() >= 20, "fetched {} blocks", fetched.len());
    assert_eq!(fetched[..20], blocks[..20]);
}

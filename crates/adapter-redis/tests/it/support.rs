//! Shared helpers: clusters of real redis-servers, adapters with short timeouts, blocks, raw
//! stream seeding that mirrors `write_block.lua`, and lease and metric inspection.

use std::time::Duration;

use std::sync::Arc;

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
use adapter_redis::{RedisConfig, RedisReconciliation};
use poa_ports::{
    BlockHeight, BlockId, BlockReconciliationPort, ChainHead, ChainId, ImportError, LeaderState,
    SealVerifier, Signature, Timestamp,
};
use poa_test_support::{HalfAliveListener, LogEntry, RedisServer, RespValue};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

pub(crate) const NODE_TIMEOUT: Duration = Duration::from_millis(150);
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// `n` fresh redis-servers.
pub(crate) fn servers(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}

pub(crate) fn urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

/// Test configuration: TTL 2 s, node timeout 150 ms, one attempt, no jitter.
pub(crate) fn config(urls: Vec<String>, key: &str) -> RedisConfig {
    RedisConfig {
        urls,
        next_urls: Vec::new(),
        lease_key: key.to_owned(),
        lease_ttl: TTL,
        node_timeout: NODE_TIMEOUT,
        retry_delay: Duration::from_millis(50),
        max_retry_delay_offset: Duration::ZERO,
        max_attempts: 1,
        stream_max_len: 1000,
        quorum_disruption_budget: 0,
        max_entry_bytes: RedisConfig::default().max_entry_bytes,
        security: adapter_redis::RedisSecurity::default(),
        epoch_file: None,
    }
}

/// An adapter and the registry its metrics live on.
pub(crate) struct Producer {
    pub(crate) adapter: RedisReconciliation<ReferenceChain>,
    pub(crate) registry: Registry,
}

/// A producer on `config`'s nodes. Before it connects, the membership is initialised as an
/// operator does for a fleet started while a node is down (`membership init`), which many
/// tests start with a half-alive node: a refusal (the nodes hold a record already, or too few
/// answer) leaves the nodes as they are.
pub(crate) async fn producer_with(config: RedisConfig) -> Producer {
    let _ = adapter_redis::init_membership(config.clone()).await;
    producer_as_started(config).await
}

/// A producer that connects without an operator's `membership init` first (a blank fleet
/// bootstraps itself only when every node answers).
pub(crate) async fn producer_as_started(config: RedisConfig) -> Producer {
    let mut registry = Registry::default();
    let adapter = RedisReconciliation::connect(config, verifier(), Some(&mut registry))
        .await
        .unwrap();
    Producer { adapter, registry }
}

/// The seal of the test chain's authority.
pub(crate) const AUTHORITY_SEAL: Signature = Signature::from_bytes([7; 64]);

/// A seal by a key that is not the authority's.
pub(crate) const FORGED_SEAL: Signature = Signature::from_bytes([9; 64]);

/// The test chain's verification: chain 1, transactions matching the header, and the
/// authority's seal (a fixed signature stands in for a real one: what is checked here is that
/// the adapter asks, not the signature scheme).
#[derive(Debug)]
pub(crate) struct TestChainVerifier;

impl SealVerifier<ReferenceChain> for TestChainVerifier {
    fn verify_seal(&self, block: &SealedBlock) -> Result<(), ImportError> {
        let height = block.height();
        if block.block.header.chain_id != ChainId::new(1) {
            return Err(ImportError::WrongChain {
                expected: ChainId::new(1),
                found: block.block.header.chain_id,
            });
        }
        if !block.block.transactions_match_header() {
            return Err(ImportError::TransactionsMismatch { height });
        }
        match block.seal {
            Seal::Authority(signature) if signature == AUTHORITY_SEAL => Ok(()),
            _ => Err(ImportError::InvalidSeal { height }),
        }
    }
}

pub(crate) fn verifier() -> Arc<dyn SealVerifier<ReferenceChain>> {
    Arc::new(TestChainVerifier)
}

pub(crate) async fn producer(urls: Vec<String>, key: &str) -> Producer {
    producer_with(config(urls, key)).await
}

impl Producer {
    /// The value of one metric sample (`name` including `_total` and labels), 0 if absent.
    pub(crate) fn metric(&self, name: &str) -> f64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    pub(crate) fn encoded_metrics(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }
}

/// The id the test chain's blocks at height 1 extend.
pub(crate) const GENESIS: BlockId = BlockId::from_bytes([0; 32]);

/// The test chain's block at `height`; `variant` changes its id. Every block extends variant
/// 0 of the height below (the committed chain), and height 1 extends [`GENESIS`].
pub(crate) fn block(height: u64, variant: u64) -> SealedBlock {
    block_on(height, variant, chain_id(height.saturating_sub(1)))
}

/// A block at `height` extending `parent`.
pub(crate) fn block_on(height: u64, variant: u64, parent: BlockId) -> SealedBlock {
    let transactions = Vec::new();
    SealedBlock {
        block: Block {
            header: Header {
                chain_id: ChainId::new(1),
                height: BlockHeight::new(height),
                parent_id: parent,
                timestamp: Timestamp::from_unix_millis(1_700_000_000_000 + variant),
                transactions_root: transactions_root(&transactions),
                transaction_count: 0,
            },
            transactions,
        },
        seal: Seal::Authority(AUTHORITY_SEAL),
    }
}

/// The id of the test chain's block at `height` (variant 0), [`GENESIS`] at 0.
pub(crate) fn chain_id(height: u64) -> BlockId {
    let mut id = GENESIS;
    for at in 1..=height {
        id = block_on(at, 0, id).id();
    }
    id
}

/// The head of a local chain that ends with `block`.
pub(crate) fn head_of(block: &SealedBlock) -> ChainHead {
    ChainHead::of(&block.block.header)
}

pub(crate) fn height(value: u64) -> BlockHeight {
    BlockHeight::new(value)
}

/// The head of a local chain whose next height is `next` (the test chain below it).
pub(crate) fn below(next: u64) -> ChainHead {
    let height = next.saturating_sub(1);
    ChainHead {
        height: BlockHeight::new(height),
        id: chain_id(height),
    }
}

/// Appends `block` under `epoch` the way `write_block.lua` does (stream entry and index).
pub(crate) fn append(server: &RedisServer, key: &str, block: &SealedBlock, epoch: u64) {
    append_raw(
        server,
        key,
        block.height().get(),
        &block.id().to_hex(),
        epoch,
        &block.encode(),
    );
}

pub(crate) fn append_raw(
    server: &RedisServer,
    key: &str,
    height: u64,
    id: &str,
    epoch: u64,
    data: &[u8],
) {
    server.append_log_entry(
        key,
        LogEntry {
            height,
            id,
            epoch,
            data,
        },
    );
}

pub(crate) fn stream_len(server: &RedisServer, key: &str) -> i64 {
    let stream = format!("{key}:block:stream");
    match server.command(&[b"XLEN", stream.as_bytes()]) {
        RespValue::Integer(length) => length,
        other => panic!("XLEN answered {other:?}"),
    }
}

/// Waits (up to 2 s) until every server's stream holds `length` entries.
pub(crate) async fn streams_reach(servers: &[RedisServer], key: &str, length: i64) -> bool {
    poa_test_support::wait_for_async(Duration::from_secs(2), || async {
        servers
            .iter()
            .all(|server| stream_len(server, key) == length)
    })
    .await
}

/// The URLs of `servers` plus one half-alive listener (kept alive by the caller).
pub(crate) fn with_half_alive(servers: &[RedisServer]) -> (HalfAliveListener, Vec<String>) {
    let listener = HalfAliveListener::start();
    let mut all = urls(servers);
    all.push(listener.url());
    (listener, all)
}

/// The test configuration with another lease TTL.
pub(crate) fn config_with_ttl(urls: Vec<String>, key: &str, ttl: Duration) -> RedisConfig {
    RedisConfig {
        lease_ttl: ttl,
        ..config(urls, key)
    }
}

pub(crate) fn owner(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    match server.command(&[b"GET", key.as_bytes()]) {
        RespValue::Bulk(owner) => Some(owner),
        RespValue::Null => None,
        other => panic!("GET answered {other:?}"),
    }
}

/// How many servers hold the lease for `token`.
pub(crate) fn owned_by(servers: &[RedisServer], key: &str, token: &[u8]) -> usize {
    servers
        .iter()
        .filter(|server| owner(server, key).as_deref() == Some(token))
        .count()
}

pub(crate) fn set_owner(server: &RedisServer, key: &str, token: &str, ttl_ms: u64) {
    let ttl = ttl_ms.to_string();
    server.command(&[
        b"SET",
        key.as_bytes(),
        token.as_bytes(),
        b"PX",
        ttl.as_bytes(),
    ]);
}

pub(crate) fn clear_owner(server: &RedisServer, key: &str) {
    server.command(&[b"DEL", key.as_bytes()]);
}

pub(crate) fn epoch_of(server: &RedisServer, key: &str) -> u64 {
    let epoch_key = format!("{key}:epoch:token");
    match server.command(&[b"GET", epoch_key.as_bytes()]) {
        RespValue::Bulk(bytes) => String::from_utf8(bytes).unwrap().parse().unwrap(),
        RespValue::Null => 0,
        other => panic!("GET answered {other:?}"),
    }
}

pub(crate) fn set_epoch(server: &RedisServer, key: &str, epoch: u64) {
    let epoch_key = format!("{key}:epoch:token");
    let epoch = epoch.to_string();
    server.command(&[b"SET", epoch_key.as_bytes(), epoch.as_bytes()]);
}

/// The heights of the blocks a leader state carries (empty for the reconciled states).
pub(crate) fn heights(state: &LeaderState<SealedBlock>) -> Vec<u64> {
    match state {
        LeaderState::UnreconciledBlocks(blocks) => {
            blocks.iter().map(|block| block.height().get()).collect()
        }
        _ => Vec::new(),
    }
}

pub(crate) fn blocks(state: LeaderState<SealedBlock>) -> Vec<SealedBlock> {
    match state {
        LeaderState::UnreconciledBlocks(blocks) => blocks,
        _ => Vec::new(),
    }
}

/// The members of `server`'s heights index at heights `from..=to`, as stored.
pub(crate) fn index_members(server: &RedisServer, key: &str, from: u64, to: u64) -> Vec<String> {
    let index = format!("{key}:heights:index");
    let (from, to) = (from.to_string(), to.to_string());
    let RespValue::Array(members) = server.command(&[
        b"ZRANGEBYSCORE",
        index.as_bytes(),
        from.as_bytes(),
        to.as_bytes(),
    ]) else {
        panic!("ZRANGEBYSCORE answers an array");
    };
    members
        .iter()
        .map(|member| {
            String::from_utf8_lossy(member.as_bytes().expect("members are strings")).into_owned()
        })
        .collect()
}

/// Removes every block `server` holds at heights `from..=to` (index members and stream
/// entries), as a node that missed those writes (cut off, or restored from an older snapshot
/// and written to since) holds nothing there.
pub(crate) fn drop_heights(server: &RedisServer, key: &str, from: u64, to: u64) {
    let stream = format!("{key}:block:stream");
    let index = format!("{key}:heights:index");
    for member in index_members(server, key, from, to) {
        let entry = member.rsplit(':').next().unwrap_or_default();
        server.command(&[b"XDEL", stream.as_bytes(), entry.as_bytes()]);
        server.command(&[b"ZREM", index.as_bytes(), member.as_bytes()]);
    }
}

/// `block` sealed by a key that is not the authority's.
pub(crate) fn forged(mut block: SealedBlock) -> SealedBlock {
    block.seal = Seal::Authority(FORGED_SEAL);
    block
}

/// Leads on the local chain below each of `heights` and publishes the test chain's block
/// there, each retried (a new leader cycle first, as a producer's next cycle does) until it is
/// on a quorum.
pub(crate) async fn publish_chain(producer: &Producer, heights: std::ops::RangeInclusive<u64>) {
    for at in heights {
        let published = poa_test_support::wait_for_async(Duration::from_secs(10), || async {
            producer.adapter.leader_state(below(at)).await.is_ok()
                && producer
                    .adapter
                    .publish_produced_block(&block(at, 0))
                    .await
                    .is_ok()
        })
        .await;
        assert!(published, "block {at} was not published");
    }
}

/// A node's server id and membership record (`GET`, `HGETALL`), as a snapshot taken now would
/// hold them.
pub(crate) fn membership_of(server: &RedisServer, key: &str) -> (RespValue, RespValue) {
    (
        server.command(&[b"GET", format!("{key}:server_id").as_bytes()]),
        server.command(&[b"HGETALL", format!("{key}:membership").as_bytes()]),
    )
}

/// Writes back what [`membership_of`] read, as a restore from that snapshot does.
pub(crate) fn put_membership(server: &RedisServer, key: &str, saved: &(RespValue, RespValue)) {
    if let RespValue::Bulk(id) = &saved.0 {
        server.command(&[b"SET", format!("{key}:server_id").as_bytes(), id]);
    }
    if let RespValue::Array(fields) = &saved.1 {
        let record_key = format!("{key}:membership");
        let mut command: Vec<&[u8]> = vec![b"HSET", record_key.as_bytes()];
        command.extend(fields.iter().filter_map(|field| match field {
            RespValue::Bulk(bytes) => Some(bytes.as_slice()),
            _ => None,
        }));
        if command.len() > 2 {
            server.command(&command);
        }
    }
}

/// Polls `check` (every 50 ms) until it holds, for at most 15 s: two lease TTLs and the
/// reconnections of a membership change, with room for a loaded machine. A bound on a hang,
/// not a timing assertion.
pub(crate) async fn until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

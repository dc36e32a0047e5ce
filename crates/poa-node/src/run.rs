//! Wires the adapters to the production service and runs the node until SIGINT or SIGTERM:
//! then production stops, the lease is released, the HTTP server drains and the process exits.
//! It stops the same way, and exits with an error, when the local chain database fails for
//! good.

use std::sync::Arc;

use adapter_chain::ReferenceChain;
use adapter_chain::{
    BlockLimits, ChainStore, Ed25519BlockSigner, MemoryTransactionPool, PoolBlockProducer,
    PoolMaintenance, RedbBlockImporter, StorageHealth, StorageMetrics, StoreOptions, SystemClock,
};
use adapter_noop::NoopReconciliation;
use adapter_peers::{
    NoopBlockHistory, PeerBlockHistory, PeerTransactionRelay, PendingTransactions,
};
use adapter_redis::RedisReconciliation;
use anyhow::Context;
use poa_core::{Ports, ProductionService, ServiceConfig};
use poa_ports::{BlockHistorySource, BlockReconciliationPort};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::background::Background;
use crate::http::{self, AdminState, ApiState};
use crate::http_server::{self, HttpServerMetrics};
use crate::library_errors;
use crate::settings::{KeySource, Settings};
use crate::storage_health;
use crate::transactions::PoolPending;

/// The Redis adapter over the reference chain's blocks, as this binary runs it.
pub(crate) type RedisLog = RedisReconciliation<ReferenceChain>;

/// The file in the data directory holding the highest fencing epoch this process has seen.
const EPOCH_FILE: &str = "lease-epoch";

/// Runs the node until a shutdown signal.
///
/// # Errors
///
/// The local chain cannot be opened, the HTTP address cannot be bound, or the Redis adapter
/// cannot be built.
pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown = install_shutdown_signal()?;
    let mut registry = Registry::default();
    if settings.key_source == KeySource::Development {
        warn!(
            "using the public development key: anyone can seal blocks of this chain, use --key-file for a real one"
        );
    }

    keep_running_past_the_file_size_limit()?;
    let store_options = StoreOptions {
        recovery: settings.chain_storage.recovery,
        open_check: settings.chain_storage.open_check,
        cache_size_bytes: settings.chain_storage.cache_size_bytes,
        metrics: StorageMetrics::register(&mut registry),
        ..StoreOptions::default()
    };
    let store = ChainStore::open_with(settings.chain, &settings.data_dir, store_options)
        .map_err(|error| library_errors::chain_open(error, &settings.data_dir))?;
    let head = store.head().context("cannot read the local chain head")?;
    let storage_health = store.health();
    info!(
        data_dir = %settings.data_dir.display(),
        chain_id = %settings.chain.chain_id,
        authority = %settings.chain.authority,
        key_file = key_file_for_log(&settings.key_source),
        height = %head.height(),
        id = %head.id(),
        cache_mib = settings.chain_storage.cache_size_bytes / (1024 * 1024),
        "local chain opened"
    );

    let pool = MemoryTransactionPool::new(settings.pool_limits);
    let maintenance = PoolMaintenance::register(pool.clone(), &mut registry);
    let importer = RedbBlockImporter::new(store.clone(), pool.clone())
        .with_max_clock_skew(Arc::new(SystemClock), settings.max_clock_skew);
    // Shares the seals it finds valid in the log with the store, so an imported block's seal
    // is checked once.
    let log_seal_verifier = Arc::new(store.seal_verifier());
    let producer = PoolBlockProducer::new(store, pool.clone(), BlockLimits::standard());
    let signer = Ed25519BlockSigner::new(settings.key);

    let handover_after = settings
        .redis
        .as_ref()
        .map_or(std::time::Duration::ZERO, |redis| redis.lease_ttl);
    let (reconciliation, redis): (
        Arc<dyn BlockReconciliationPort<ReferenceChain>>,
        Option<Arc<RedisLog>>,
    ) = match settings.redis {
        Some(mut config) => {
            config.epoch_file = Some(settings.data_dir.join(EPOCH_FILE));
            let nodes = config.urls.len();
            if nodes < 3 {
                warn!(
                    nodes,
                    "fewer than 3 Redis nodes: the lease survives no node failure (for tests only; run 3 or 5)"
                );
            }
            let adapter = Arc::new(
                RedisReconciliation::connect(config, log_seal_verifier, Some(&mut registry))
                    .await
                    .map_err(library_errors::redis_startup)
                    .context("cannot start the Redis leader lease")?,
            );
            // The adapter tells its start (nodes, connected, quorum) itself.
            (
                Arc::clone(&adapter) as Arc<dyn BlockReconciliationPort<ReferenceChain>>,
                Some(adapter),
            )
        }
        None => {
            info!("single node: no leader lease (add --redis-url to run several producers)");
            (Arc::new(NoopReconciliation), None)
        }
    };

    let service_config = ServiceConfig::new(
        settings.trigger,
        settings.poll_interval,
        settings.release_timeout,
    )
    .map_err(library_errors::service_setting)?
    .with_retry_jitter(settings.poll_jitter)
    .with_lease_renewal(settings.lease_renewal)
    .with_max_clock_skew(settings.max_clock_skew)
    // A leader whose blocks miss a quorum for a lease TTL hands over to a process whose links
    // may reach one, about as soon as the lease would have expired had it stopped.
    .with_handover_after(handover_after);
    let ports = Ports {
        reconciliation: Arc::clone(&reconciliation),
        importer: Arc::new(importer.clone()),
        producer: Arc::new(producer),
        signer: Arc::new(signer),
        pool: Arc::new(pool.clone()),
        clock: Arc::new(SystemClock),
    };
    let relay = settings.peers.as_ref().map(|peers| {
        let pending: Arc<dyn PendingTransactions> = Arc::new(PoolPending(pool.clone()));
        PeerTransactionRelay::start(peers, pending, Arc::new(SystemClock), &mut registry)
    });
    let history: Arc<dyn BlockHistorySource<ReferenceChain>> = match settings.peers {
        Some(peers) => {
            info!(peers = ?peers.urls, "history beyond the streams and transaction relay through peers");
            Arc::new(PeerBlockHistory::new(peers))
        }
        None => Arc::new(NoopBlockHistory),
    };
    let (service, handle) = ProductionService::new(service_config, ports, &mut registry);
    let http_metrics = HttpServerMetrics::register(&mut registry);
    let service = service.with_block_history(history);
    let background = Background::start(maintenance, relay.clone(), handle.subscribe());

    let listener = TcpListener::bind(settings.http)
        .await
        .with_context(|| format!("cannot listen on --http {}", settings.http))?;
    let address = listener
        .local_addr()
        .context("cannot read the HTTP address")?;
    let admin_listener = TcpListener::bind(settings.admin_http)
        .await
        .with_context(|| format!("cannot listen on --admin-http {}", settings.admin_http))?;
    let admin_address = admin_listener
        .local_addr()
        .context("cannot read the admin address")?;
    if !admin_address.ip().is_loopback() {
        warn!(admin_http = %admin_address, "the admin API listens beyond loopback: anyone who reaches it can make this node step down");
    }
    let admin = http::admin_router(AdminState {
        service: handle.clone(),
        default_hold_off: settings.step_down_hold_off,
        trigger: settings.trigger,
        redis: redis.clone(),
    });
    let api = storage_health::guard_health(
        http::router(ApiState {
            service: handle,
            chain: importer,
            pool,
            reconciliation,
            registry: Arc::new(registry),
            trigger: settings.trigger,
            chain_spec: settings.chain,
            relay: relay.clone(),
            bulk: Arc::new(tokio::sync::Semaphore::new(
                settings.http_limits.max_bulk_requests,
            )),
        }),
        storage_health.clone(),
    );
    let stop_http = CancellationToken::new();
    let drain = settings.release_timeout;
    let server = tokio::spawn(http_server::serve(
        "http",
        listener,
        api,
        settings.http_limits,
        http_metrics.clone(),
        stop_http.clone(),
        drain,
    ));
    let admin_server = tokio::spawn(http_server::serve(
        "admin",
        admin_listener,
        admin,
        settings.http_limits.admin(),
        http_metrics,
        stop_http.clone(),
        drain,
    ));
    info!(
        http = %address,
        admin_http = %admin_address,
        trigger = %settings.trigger,
        "node running: try curl http://{address}/blocks/latest and http://{address}/status"
    );

    let (storage_failed_sender, storage_failed) = watch::channel(None);
    let storage_at_exit = storage_health.clone();
    service
        .run(async move {
            tokio::select! {
                () = shutdown => {}
                cause = storage_health::failed_for_good(storage_health) => {
                    // Told once, as the exit's reason, after the lease is released.
                    let _ = storage_failed_sender.send(Some(cause));
                }
            }
        })
        .await;
    if let Some(redis) = redis {
        redis.shutdown(settings.release_timeout).await;
    }
    // No submission is accepted after the listeners drain, so the hand-on below is the last
    // word on what this process holds.
    stop_http.cancel();
    for (name, task) in [("http", server), ("admin", admin_server)] {
        // The server bounds its own drain; this only reports a task that failed.
        if let Err(error) = task.await {
            warn!(server = name, error = %error, "http server task failed");
        }
    }
    background.stop().await;
    if let Some(relay) = &relay {
        let handed_on = relay.hand_on();
        info!(
            count = handed_on,
            "pending transactions handed on to the peers"
        );
        if !relay.shutdown(settings.release_timeout).await {
            warn!(
                "the transaction relay did not finish in time: some queued transactions were not sent"
            );
        }
    }
    if let Some(cause) = storage_failed.borrow().clone() {
        anyhow::bail!("local chain storage failed for good: {cause}");
    }
    if let StorageHealth::Detached { cause } = &*storage_at_exit.borrow() {
        // The chain this node built is in a file nobody can open any more: never exit as if
        // all were well, or the next start silently begins a new chain.
        anyhow::bail!("local chain file detached: {cause}");
    }
    info!("node stopped");
    Ok(())
}

/// A write past the process's file size limit (`ulimit -f`) raises SIGXFSZ, whose default
/// action kills the process without a word. With a handler installed the write fails with
/// "File too large" instead, which the chain store reports and recovers from like a full disk.
/// tokio keeps the handler installed for the life of the process.
///
/// # Errors
///
/// The handler cannot be installed.
fn keep_running_past_the_file_size_limit() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let file_size_signal = SignalKind::from_raw(nix::sys::signal::Signal::SIGXFSZ as i32);
    let _handler = signal(file_size_signal).context("cannot install the SIGXFSZ handler")?;
    Ok(())
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers at once, so a signal that arrives while the
/// node is still starting is kept rather than killing the process, and returns a future that
/// resolves on the first of them.
///
/// # Errors
///
/// A handler cannot be installed.
fn install_shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("interrupt received: shutting down"),
            _ = terminate.recv() => info!("terminate received: shutting down"),
        }
    })
}

/// Where the authority key came from, for the startup log line: the file's path, never its
/// content.
fn key_file_for_log(source: &KeySource) -> String {
    match source {
        KeySource::Development => "none (the public development key)".to_owned(),
        KeySource::File(path) => path.display().to_string(),
    }
}

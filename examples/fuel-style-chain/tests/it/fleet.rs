//! A fleet of the example chain's producers in one test process: each a `ProductionService` on
//! its own task, with its own in-memory chain and its own Redis adapter over the same
//! `redis-server`s, sharing the authority key. A producer is killed by aborting its task while
//! its adapter stays alive: it stops renewing and releases nothing, as after a `SIGKILL`, so
//! the others take over only once its lease has expired.

use std::sync::Arc;
use std::time::Duration;

use adapter_redis::{RedisConfig, RedisReconciliation};
use fuel_style_chain::{AuthorityKey, ChainSettings, FuelStyleChain, FuelStyleNode};
use poa_core::{ProductionService, Role, ServiceConfig, ServiceHandle, Trigger};
use poa_ports::BlockHeight;
use poa_test_support::RedisServer;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Prefix of every key the fleet writes on the Redis nodes.
pub(crate) const LEASE_KEY: &str = "fuel-style:lease";
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(1);
const BLOCK_TIME: Duration = Duration::from_millis(200);
/// Generous: only catches a hang, even on a starved machine.
pub(crate) const HANG: Duration = Duration::from_secs(60);

pub(crate) const SETTINGS: ChainSettings = ChainSettings {
    consensus_parameters_version: 3,
    max_transactions: 64,
};

/// One running producer process.
pub(crate) struct Producer {
    pub(crate) node: FuelStyleNode,
    pub(crate) handle: ServiceHandle,
    registry: Registry,
    task: Option<JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Kept here too, so aborting the service's task does not drop (and so release) it.
    _adapter: Arc<RedisReconciliation<FuelStyleChain>>,
}

impl Producer {
    /// Connects a producer of `authority`'s chain to `servers` and starts its service.
    pub(crate) async fn start(servers: &[RedisServer], authority: &AuthorityKey) -> Self {
        let node = FuelStyleNode::new(authority.clone(), SETTINGS);
        let mut registry = Registry::default();
        let config = RedisConfig {
            urls: servers.iter().map(RedisServer::url).collect(),
            lease_key: LEASE_KEY.to_owned(),
            lease_ttl: LEASE_TTL,
            node_timeout: Duration::from_millis(250),
            retry_delay: Duration::from_millis(50),
            max_retry_delay_offset: Duration::from_millis(50),
            max_attempts: 1,
            ..RedisConfig::default()
        };
        let adapter = Arc::new(
            RedisReconciliation::connect(config, node.seal_verifier(), Some(&mut registry))
                .await
                .expect("the adapter connects"),
        );
        let service_config = ServiceConfig::new(
            Trigger::Interval {
                block_time: BLOCK_TIME,
            },
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .expect("a valid service configuration")
        .with_lease_renewal(LEASE_TTL / 3);
        let (service, handle) =
            ProductionService::new(service_config, node.ports(adapter.clone()), &mut registry);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async {
            let _ = stop.await;
        }));
        Self {
            node,
            handle,
            registry,
            task: Some(task),
            shutdown: Some(shutdown),
            _adapter: adapter,
        }
    }

    /// The local chain's height.
    pub(crate) fn height(&self) -> BlockHeight {
        self.node.store.height()
    }

    /// Whether the last cycle led.
    pub(crate) fn leads(&self) -> bool {
        self.handle.status().role == Role::Leader
    }

    /// Stops the service at once, mid-cycle if need be, without releasing the lease.
    pub(crate) fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops the service as an operator does and waits for it to release the lease.
    pub(crate) async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(HANG, task)
                .await
                .expect("the service stops")
                .expect("the service task ends without panicking");
        }
    }

    /// A counter of the adapter's or the service's metrics (`poa_refused_entries_total`).
    pub(crate) fn counter(&self, name: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("metrics encode");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

/// Waits until `condition` holds, polling every 50 ms; false after [`HANG`].
pub(crate) async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + HANG;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

//! What every case uses to set up servers and to wait without hanging: local
//! `redis-server`s started off the async threads, their URLs, blocking fixture operations run on
//! the blocking pool, and awaits bounded by a deadline that names what hung. Owns no measuring.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow};
use poa_test_support::RedisServer;

/// Bound on any one awaited call of the single-call cases (limit, naive, lease). The adapter bounds each node call by its
/// node timeout (100 ms), so reaching this means something hung, and the case says what.
pub(crate) const HANG_BOUND: Duration = Duration::from_secs(10);

/// Calls discarded before each measured series: connection set-up, script loading, the first
/// allocation of a block size.
pub(crate) const WARM_UP: u64 = 20;

/// Bound on a blocking fixture operation (starting, freezing, proxying).
const SETUP_BOUND: Duration = Duration::from_secs(15);

/// Awaits `future` for at most `bound`, naming `what` when it did not finish.
///
/// # Errors
/// Fails when the bound passes first.
pub(crate) async fn bounded<T>(
    what: &str,
    bound: Duration,
    future: impl Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(bound, future)
        .await
        .map_err(|_| anyhow!("{what} did not finish within {} ms", bound.as_millis()))
}

/// Runs a blocking fixture operation (start, freeze, proxy) on the blocking pool; a panic of
/// the fixture (no `redis-server` binary, a port that stays taken) becomes an error.
///
/// # Errors
/// Fails when the operation panicked or did not finish within the setup bound.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    operation: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    bounded(what, SETUP_BOUND, tokio::task::spawn_blocking(operation))
        .await?
        .map_err(|error| anyhow!("{what} failed (is redis-server installed?): {error}"))
}

/// Starts `count` local `redis-server`s.
///
/// # Errors
/// Fails when a server cannot start.
pub(crate) async fn start_servers(count: usize) -> Result<Vec<RedisServer>> {
    blocking("starting local redis-servers", move || {
        (0..count).map(|_| RedisServer::start()).collect()
    })
    .await
}

/// The URLs of local servers.
pub(crate) fn urls_of(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

//! The `rslock` crate (Redlock over the `redis` crate) on the lease case's servers: the
//! comparison the goals ask for. Each call is bounded by the case's own timeout, because
//! rslock has no per-node timeout of its own: a node that accepts and never answers is left to
//! the `redis` client's defaults. Owns nothing but driving rslock; it never touches the
//! adapter's keys.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rslock::{LockError, LockManager};

use crate::context::BenchContext;
use crate::stats::Latencies;

/// The samples of one rslock series.
#[derive(Debug)]
pub(super) struct Locks {
    /// Time to a granted lock; a call that reached the bound is recorded at the bound.
    pub(super) latencies: Latencies,
    /// Calls that reached the bound without returning.
    pub(super) timed_out: u64,
    /// Calls that returned without a lock.
    pub(super) failed: u64,
}

/// Bounded calls a series makes before it stops: once rslock hangs, more samples only repeat
/// the bound.
const MAX_TIMED_OUT: u64 = 2;

/// `warm_up` then `samples` lock acquisitions with `ttl` on `urls`, each on a resource of its own so every
/// call finds the key free, as after a release (the keys expire with their TTL; an unlock
/// would make every sample wait for the half-alive node a second time, untimed). rslock's
/// own retries stay at their defaults (3 tries, up to 200 ms apart), which match the
/// adapter's attempts and retry delay.
///
/// # Errors
/// Fails when no call at all was granted.
pub(super) async fn lock_latencies(
    context: &BenchContext,
    urls: &[String],
    (warm_up, samples): (u64, u64),
    ttl: Duration,
    bound: Duration,
) -> Result<Locks> {
    let manager = LockManager::new(urls.to_vec());
    let key = context.unique_key("rslock");
    let mut locks = Locks {
        latencies: Latencies::new(),
        timed_out: 0,
        failed: 0,
    };
    let mut last_error: Option<LockError> = None;
    for sample in 0..warm_up + samples {
        let resource = format!("{key}:{sample}");
        let started = Instant::now();
        let outcome = tokio::time::timeout(bound, manager.lock(resource.as_str(), ttl)).await;
        if sample < warm_up && matches!(outcome, Ok(Ok(_))) {
            continue;
        }
        match outcome {
            Ok(Ok(_lock)) => locks.latencies.record(started.elapsed()),
            Ok(Err(error)) => {
                locks.failed += 1;
                last_error = Some(error);
            }
            Err(_) => {
                locks.timed_out += 1;
                locks.latencies.record(bound);
                if locks.timed_out >= MAX_TIMED_OUT {
                    break;
                }
            }
        }
    }
    if locks.latencies.is_empty() {
        match last_error {
            Some(error) => bail!("rslock granted no lock in {samples} calls: {error}"),
            None => bail!("rslock granted no lock in {samples} calls"),
        }
    }
    Ok(locks)
}

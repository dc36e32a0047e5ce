//! [`PoolMaintenance`]: what the pool does on a clock: drops transactions past their age and
//! publishes the pool's gauges (pending count and bytes, the age of the oldest pending
//! transaction) and the count of expired ones, on a registry the caller passes in. The caller
//! decides how often to tick; the pool itself never runs on its own.

use std::sync::atomic::AtomicU64;

use poa_ports::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::pool::MemoryTransactionPool;

/// The pool's expiry and metrics.
#[derive(Debug, Clone)]
pub struct PoolMaintenance {
    pool: MemoryTransactionPool,
    pending: Gauge,
    pending_bytes: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    expired: Counter,
}

impl PoolMaintenance {
    /// Registers the pool's metrics on `registry`.
    pub fn register(pool: MemoryTransactionPool, registry: &mut Registry) -> Self {
        let maintenance = Self {
            pool,
            pending: Gauge::default(),
            pending_bytes: Gauge::default(),
            oldest_pending: Gauge::default(),
            expired: Counter::default(),
        };
        registry.register(
            "poa_pool_pending_transactions",
            "Transactions waiting in this process's pool",
            maintenance.pending.clone(),
        );
        registry.register(
            "poa_pool_pending_bytes",
            "Bytes of the transactions waiting in this process's pool",
            maintenance.pending_bytes.clone(),
        );
        registry.register(
            "poa_pool_oldest_pending_seconds",
            "Age of the oldest pending transaction, from when a process first accepted it (0 when none)",
            maintenance.oldest_pending.clone(),
        );
        registry.register(
            "poa_pool_expired_transactions",
            "Transactions dropped because they stayed pending longer than the pool keeps them",
            maintenance.expired.clone(),
        );
        maintenance
    }

    /// Drops what has expired at `now` and updates the gauges; returns how many were dropped.
    pub fn tick(&self, now: Timestamp) -> usize {
        let expired = self.pool.expire(now);
        if expired > 0 {
            self.expired
                .inc_by(u64::try_from(expired).unwrap_or(u64::MAX));
            warn!(
                count = expired,
                "pending transactions expired without being included"
            );
        }
        self.pending
            .set(i64::try_from(self.pool.pending_count()).unwrap_or(i64::MAX));
        self.pending_bytes
            .set(i64::try_from(self.pool.pending_bytes()).unwrap_or(i64::MAX));
        let oldest_millis = self.pool.oldest_first_seen().map_or(0, |first_seen| {
            now.as_unix_millis()
                .saturating_sub(first_seen.as_unix_millis())
        });
        self.oldest_pending.set(oldest_millis as f64 / 1_000.0);
        expired
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use poa_ports::Clock;
    use poa_ports::Transaction;

    use super::*;
    use crate::clock::SystemClock;
    use crate::pool::PoolLimits;

    fn gauge_value(registry: &Registry, name: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
    }

    #[test]
    fn tick__when_transactions_wait__then_reports_the_oldest_age_and_expires_the_too_old() {
        // given: a pool keeping transactions 60 s, one seen 50 s ago, one just now
        let pool = MemoryTransactionPool::new(PoolLimits {
            max_age: Duration::from_secs(60),
            ..PoolLimits::standard()
        });
        let mut registry = Registry::default();
        let maintenance = PoolMaintenance::register(pool.clone(), &mut registry);
        let now = SystemClock.now().as_unix_millis();
        pool.submit_relayed(
            Transaction::new(b"waiting".to_vec()),
            Timestamp::from_unix_millis(now - 50_000),
        )
        .unwrap();
        pool.submit(Transaction::new(b"fresh".to_vec())).unwrap();

        // when
        let expired_now = maintenance.tick(Timestamp::from_unix_millis(now));

        // then
        assert_eq!(expired_now, 0);
        let oldest = gauge_value(&registry, "poa_pool_oldest_pending_seconds");
        assert!((49.0..=51.0).contains(&oldest), "{oldest}");
        assert_eq!(gauge_value(&registry, "poa_pool_pending_transactions"), 2.0);

        // when 20 s later
        let expired_later = maintenance.tick(Timestamp::from_unix_millis(now + 20_000));

        // then
        assert_eq!(expired_later, 1);
        assert_eq!(
            gauge_value(&registry, "poa_pool_expired_transactions_total"),
            1.0
        );
        assert_eq!(gauge_value(&registry, "poa_pool_pending_transactions"), 1.0);
    }
}

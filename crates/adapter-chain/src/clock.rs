//! [`SystemClock`]: the `Clock` port from the operating system's wall clock. Only block
//! timestamps come from here; durations and sleeps use tokio's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use poa_ports::{Clock, Timestamp};

/// Wall-clock time from [`SystemTime`], in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock set before 1970 reads as the epoch and one past u64 milliseconds saturates:
        // block timestamps are clamped to the parent's anyway, so neither can break the chain.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since_epoch| u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp::from_unix_millis(millis)
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn now__when_read__then_matches_system_time_in_millis() {
        // given
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();

        // when
        let now = u128::from(SystemClock.now().as_unix_millis());

        // then
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}

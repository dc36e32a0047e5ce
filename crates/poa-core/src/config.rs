//! The service configuration: how blocks are triggered and how long to wait between attempts.

use std::time::Duration;

use crate::error::{ServiceError, ServiceSetting};

/// When the leader produces a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// One block every `block_time`, with or without transactions.
    Interval {
        /// Time between consecutive blocks.
        block_time: Duration,
    },
    /// A block as soon as transactions are pending; no empty blocks.
    Instant,
    /// A block only when asked through [`crate::ServiceHandle::produce_block`].
    Manual,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interval { block_time } => write!(f, "interval {}ms", block_time.as_millis()),
            Self::Instant => f.write_str("instant"),
            Self::Manual => f.write_str("manual"),
        }
    }
}

impl Trigger {
    /// The trigger's kind as status pages name it: `interval`, `instant` or `manual`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Interval { .. } => "interval",
            Self::Instant => "instant",
            Self::Manual => "manual",
        }
    }
}

/// Configuration of the production service. Build it with [`ServiceConfig::new`], which
/// validates it; there is no `Default`: `poa-node` chooses the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    trigger: Trigger,
    retry_period: Duration,
    retry_jitter: Duration,
    release_timeout: Duration,
    lease_renewal: Option<Duration>,
    max_clock_skew: Option<Duration>,
    handover_after: Option<Duration>,
}

impl ServiceConfig {
    /// Validates and builds a configuration.
    ///
    /// - `retry_period`: how long a follower, or a cycle that failed, waits before the next
    ///   cycle; also how often an idle leader (instant or manual trigger) re-checks its lease.
    /// - `release_timeout`: the longest shutdown waits for the lease release.
    ///
    /// # Errors
    ///
    /// [`ServiceError::ZeroDuration`] when a duration is zero.
    pub fn new(
        trigger: Trigger,
        retry_period: Duration,
        release_timeout: Duration,
    ) -> Result<Self, ServiceError> {
        if let Trigger::Interval { block_time } = trigger
            && block_time.is_zero()
        {
            return Err(ServiceError::ZeroDuration {
                setting: ServiceSetting::BlockTime,
            });
        }
        for (setting, value) in [
            (ServiceSetting::RetryPeriod, retry_period),
            (ServiceSetting::ReleaseTimeout, release_timeout),
        ] {
            if value.is_zero() {
                return Err(ServiceError::ZeroDuration { setting });
            }
        }
        Ok(Self {
            trigger,
            retry_period,
            retry_jitter: Duration::ZERO,
            release_timeout,
            lease_renewal: None,
            max_clock_skew: None,
            handover_after: None,
        })
    }

    /// The longest a leader may go between two cycles: leader cycles are where the lease is
    /// renewed (the adapter decides when), so with blocks farther apart than this the leader
    /// wakes in between to renew it (without producing) instead of letting it lapse. A zero period is ignored.
    #[must_use]
    pub fn with_lease_renewal(mut self, period: Duration) -> Self {
        self.lease_renewal = (!period.is_zero()).then_some(period);
        self
    }

    /// How far the local clock may be from the coordination nodes' clocks, and the chain's head
    /// ahead of the local clock, before this process refuses to date a block: a clock that ran
    /// ahead would date the chain in the future for good (every block is dated at least as late
    /// as its parent). A zero skew is ignored.
    #[must_use]
    pub fn with_max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = (!skew.is_zero()).then_some(skew);
        self
    }

    /// How long a leader may go on failing to bring its next block to a quorum (a publish or a
    /// repair short of one, nothing committed meanwhile) before it hands the lease over: it
    /// releases and does not compete for the same period, so a process whose links reach a
    /// quorum takes over. About one lease TTL; a zero period is ignored (never hands over).
    #[must_use]
    pub fn with_handover_after(mut self, period: Duration) -> Self {
        self.handover_after = (!period.is_zero()).then_some(period);
        self
    }

    /// How long a leader fails short of a quorum before it hands the lease over, if it does.
    pub fn handover_after(&self) -> Option<Duration> {
        self.handover_after
    }

    /// The allowed clock skew, if checked.
    pub fn max_clock_skew(&self) -> Option<Duration> {
        self.max_clock_skew
    }

    /// The longest a leader goes between two cycles, if bounded.
    pub fn lease_renewal(&self) -> Option<Duration> {
        self.lease_renewal
    }

    /// Adds a random delay of up to `jitter` to every retry period, so followers started
    /// together do not poll the coordination nodes in lockstep.
    #[must_use]
    pub fn with_retry_jitter(mut self, jitter: Duration) -> Self {
        self.retry_jitter = jitter;
        self
    }

    /// When blocks are produced.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// How long a follower or a failed cycle waits before the next cycle.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    /// The largest random delay added to a retry period.
    pub fn retry_jitter(&self) -> Duration {
        self.retry_jitter
    }

    /// The longest shutdown waits for the lease release.
    pub fn release_timeout(&self) -> Duration {
        self.release_timeout
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn new__when_a_duration_is_zero__then_names_that_setting() {
        // given
        let second = Duration::from_secs(1);
        let cases = [
            (
                Trigger::Interval {
                    block_time: Duration::ZERO,
                },
                second,
                second,
                ServiceSetting::BlockTime,
            ),
            (
                Trigger::Instant,
                Duration::ZERO,
                second,
                ServiceSetting::RetryPeriod,
            ),
            (
                Trigger::Instant,
                second,
                Duration::ZERO,
                ServiceSetting::ReleaseTimeout,
            ),
        ];

        for (trigger, retry_period, release_timeout, setting) in cases {
            // when
            let refused = ServiceConfig::new(trigger, retry_period, release_timeout);

            // then
            assert_eq!(refused.err(), Some(ServiceError::ZeroDuration { setting }));
        }
        assert!(ServiceConfig::new(Trigger::Instant, second, second).is_ok());
    }
}

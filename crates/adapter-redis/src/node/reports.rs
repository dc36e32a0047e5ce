//! What a node last reported about itself, each reading with the moment it was taken so that a
//! stale one is never used: its clock, and the highest height it stores.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use poa_ports::BlockHeight;

/// The last reading of a server's clock, with the monotonic moment it was taken. The server's
/// time now is the reading plus the time elapsed since by the monotonic clock, never by this
/// process's wall clock: a reading kept for a while (a leader that reads nothing per block)
/// must not move with a jump of the local clock it is there to check.
#[derive(Debug, Default)]
pub(super) struct ServerClock {
    /// The server's clock in milliseconds since the Unix epoch, and when it was read.
    last: Mutex<Option<(u64, Instant)>>,
}

impl ServerClock {
    pub(super) fn record(&self, server_millis: u64) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((server_millis, Instant::now()));
    }

    /// The server's clock now, extrapolated from a reading taken within `fresh_within`.
    pub(super) fn now(&self, fresh_within: Duration) -> Option<u64> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.filter(|(_, at)| at.elapsed() <= fresh_within)
            .map(|(millis, at)| {
                let elapsed = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                millis.saturating_add(elapsed)
            })
    }
}

/// The highest height a node reported storing (`None`: it was empty), and when.
#[derive(Debug, Default)]
pub(super) struct LatestHeight {
    last: Mutex<Option<(Option<BlockHeight>, Instant)>>,
}

impl LatestHeight {
    pub(super) fn record(&self, height: Option<BlockHeight>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((height, Instant::now()));
    }

    /// The last reading, if taken within `fresh_within`.
    pub(super) fn height(&self, fresh_within: Duration) -> Option<Option<BlockHeight>> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.filter(|(_, at)| at.elapsed() <= fresh_within)
            .map(|(height, _)| height)
    }
}

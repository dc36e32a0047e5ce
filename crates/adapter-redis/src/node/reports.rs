//! What a node last reported about itself, each reading with the moment it was taken so that a
//! stale one is never used: how far its clock is from this process's, and the highest height it
//! stores.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use poa_ports::BlockHeight;

/// The last measured offset of a server's clock from this process's.
#[derive(Debug, Default)]
pub(super) struct ServerClock {
    /// Server minus local, in milliseconds, and when it was measured.
    last: Mutex<Option<(i64, Instant)>>,
}

impl ServerClock {
    pub(super) fn record(&self, server_millis: u64) {
        let local = poa_millis_now();
        let offset = i64::try_from(server_millis)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(local).unwrap_or(i64::MAX));
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((offset, Instant::now()));
    }

    pub(super) fn offset(&self, fresh_within: Duration) -> Option<i64> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.filter(|(_, at)| at.elapsed() <= fresh_within)
            .map(|(offset, _)| offset)
    }
}

/// This process's wall clock, in milliseconds since the Unix epoch.
pub(crate) fn poa_millis_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
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

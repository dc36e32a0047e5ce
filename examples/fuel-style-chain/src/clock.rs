//! [`WallClock`]: the `Clock` port from the system time. The service dates blocks with it; the
//! header keeps whole TAI64 seconds of it.

use std::time::{SystemTime, UNIX_EPOCH};

use poa_ports::{Clock, Timestamp};

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        // Before 1970 reads as the epoch: the producer never dates a block before its parent.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

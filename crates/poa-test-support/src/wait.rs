//! Polling until a condition holds, for effects that complete in background tasks (publish
//! fan-out, lease expansion, late replies). Polls every 20 ms up to a deadline; the deadline is a
//! generous bound that turns a hang into a failure, never a timing assertion.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the predicate is evaluated.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Evaluates `predicate` every 20 ms until it returns `true` (then `true`) or `deadline` has
/// passed (then `false`, after one last evaluation). Blocks the calling thread: from async code
/// use [`wait_for_async`].
pub fn wait_for(deadline: Duration, mut predicate: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if predicate() {
            return true;
        }
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(left));
    }
}

/// [`wait_for`] for async predicates; sleeps on tokio's clock, so it also works with paused
/// time. Needs a tokio runtime with the time driver.
pub async fn wait_for_async<F, Fut>(deadline: Duration, mut predicate: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    loop {
        if predicate().await {
            return true;
        }
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL.min(left)).await;
    }
}

//! What the production loop says in the log, at a volume an operator can keep: a failure is
//! logged once when it starts (at `warn`) and once when it ends (at `info`, with how many
//! cycles it lasted), its repetitions only at `debug` (the failure counter carries them); each
//! produced or imported block is logged at `debug`, and a summary of progress at `info` once a
//! minute. At 20 ms blocks one `info` line per block would be gigabytes a day per process.

use std::time::Duration;

use poa_ports::BlockHeight;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::CycleOutcome;

/// How often a summary of the chain's progress is logged at `info`.
pub(crate) const PROGRESS_PERIOD: Duration = Duration::from_secs(60);

/// The log's memory of the current failure and of the progress since the last summary.
#[derive(Debug)]
pub(crate) struct Reporting {
    /// The failing condition (`step: error`) and how many cycles in a row it failed.
    failure: Option<(String, u64)>,
    summary_since: Instant,
    produced: u64,
    imported: u64,
}

impl Reporting {
    pub(crate) fn new() -> Self {
        Self {
            failure: None,
            summary_since: Instant::now(),
            produced: 0,
            imported: 0,
        }
    }

    /// A cycle failed at `step` with `error`: logged at `warn` when the condition is new.
    pub(crate) fn failed(&mut self, step: &'static str, error: &str, releasing_lease: bool) {
        let condition = format!("{step}: {error}");
        match &mut self.failure {
            Some((current, repeats)) if *current == condition => {
                *repeats = repeats.saturating_add(1);
                debug!(
                    step,
                    error,
                    releasing_lease,
                    repeats = *repeats,
                    "production cycle failed again"
                );
            }
            _ => {
                self.end_failure();
                warn!(step, error, releasing_lease, "production cycle failed");
                self.failure = Some((condition, 1));
            }
        }
    }

    /// Records what a cycle did: a success ends the current failure; blocks count toward the
    /// next summary, which is logged once `PROGRESS_PERIOD` has passed.
    pub(crate) fn cycle_ended(&mut self, outcome: &CycleOutcome, height: BlockHeight) {
        match outcome {
            CycleOutcome::Failed { .. } => return,
            CycleOutcome::Produced { .. } => self.produced = self.produced.saturating_add(1),
            CycleOutcome::Imported { count } => {
                self.imported = self
                    .imported
                    .saturating_add(u64::try_from(*count).unwrap_or(u64::MAX));
            }
            CycleOutcome::Follower | CycleOutcome::Idle => {}
        }
        self.end_failure();
        let elapsed = self.summary_since.elapsed();
        if elapsed >= PROGRESS_PERIOD && (self.produced > 0 || self.imported > 0) {
            info!(
                height = %height,
                produced = self.produced,
                imported = self.imported,
                elapsed_s = elapsed.as_secs(),
                "chain progress"
            );
            self.summary_since = Instant::now();
            self.produced = 0;
            self.imported = 0;
        }
    }

    /// Logs the end of the current failure, if any.
    fn end_failure(&mut self) {
        if let Some((condition, repeats)) = self.failure.take() {
            info!(failure = %condition, cycles = repeats, "production cycle failure ended");
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use poa_ports::BlockId;

    use super::*;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(run: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn failed__when_the_same_condition_repeats__then_says_it_once_when_it_starts_and_once_when_it_ends()
     {
        // given
        let mut reporting = Reporting::new();

        // when: five cycles fail alike, then one produces
        let log = capture(|| {
            for _ in 0..5 {
                reporting.failed("publish", "height 7 already holds another block", false);
            }
            reporting.cycle_ended(
                &CycleOutcome::Produced {
                    height: BlockHeight::new(7),
                    id: BlockId::default(),
                    transactions: 0,
                },
                BlockHeight::new(7),
            );
        });

        // then
        assert_eq!(log.matches("production cycle failed").count(), 1, "{log}");
        assert_eq!(
            log.matches("production cycle failure ended").count(),
            1,
            "{log}"
        );
        assert!(log.contains("cycles=5"), "{log}");
    }

    #[tokio::test(start_paused = true)]
    async fn cycle_ended__when_blocks_are_produced__then_summarises_at_info_once_a_minute() {
        // given
        let mut reporting = Reporting::new();
        let produced = |height: u64| CycleOutcome::Produced {
            height: BlockHeight::new(height),
            id: BlockId::default(),
            transactions: 0,
        };

        // when: a block every second for two minutes
        let mut log = String::new();
        for height in 1..=120u64 {
            tokio::time::advance(Duration::from_secs(1)).await;
            log.push_str(&capture(|| {
                reporting.cycle_ended(&produced(height), BlockHeight::new(height))
            }));
        }

        // then: two summary lines, not 120 block lines
        assert_eq!(log.matches("chain progress").count(), 2, "{log}");
        assert!(log.contains("produced=60"), "{log}");
    }
}

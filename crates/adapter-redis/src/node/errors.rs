//! What a node's failing operations answered, kept until they succeed again: shown in the
//! status and said once in the log when it starts (or changes) and once when it ends.
//!
//! Kept per family of operations (reads; the lease; writes of the log; writes of the
//! membership), so that calls that still succeed do not hide one that keeps failing: reads do
//! not hide a lease that cannot be taken, nor a membership record installed a write the ACL
//! refuses. A release clears nothing: the one that follows a failed acquisition succeeds as a
//! no-op on a node this process does not hold, and proves nothing about the lease key.

use std::sync::{Mutex, PoisonError};

use super::CallClass;
use crate::scripts::NodeError;

/// The failures of one node's operations.
#[derive(Debug, Default)]
pub(super) struct ErrorNotes {
    /// Per family, the operation that last failed and how.
    last: Mutex<[Option<(&'static str, String)>; FAMILIES]>,
    /// The failure of the call being observed (set by `failing`, taken by `note`).
    pending: Mutex<Option<String>>,
}

impl ErrorNotes {
    /// Records how the call being observed failed.
    pub(super) fn failing(&self, error: &NodeError) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    /// Keeps the error of `operation`'s family: set (and logged once) when it fails, cleared
    /// (and logged once) when an operation of the family succeeds.
    pub(super) fn note(&self, node: &str, operation: &'static str, class: CallClass) {
        let failing = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Family {
            index,
            success_clears,
        } = Family::of(operation);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match record(&mut last[index], operation, class, failing, success_clears) {
            Change::Fails(error) => {
                tracing::warn!(node, operation, error = %error, "redis node operation fails");
            }
            Change::Recovered { failed } => {
                tracing::info!(
                    node,
                    operation = failed,
                    "redis node operations succeed again"
                );
            }
            Change::None => {}
        }
    }

    /// Every family's last failure, as `operation: error`, joined; `None` when none fails.
    pub(super) fn summary(&self) -> Option<String> {
        let errors: Vec<String> = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flatten()
            .map(|(operation, error)| format!("{operation}: {error}"))
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

/// What a call changed in its family's note, for the log.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// The family started failing, or fails another way now.
    Fails(String),
    /// The family works again after failing in `failed`.
    Recovered { failed: &'static str },
    /// Nothing to say: still failing the same way, or still working.
    None,
}

/// Keeps the outcome of `operation` in its family's note. Which operation failed is kept for
/// the status, but only a new error is news: a lease that cannot be taken fails its
/// acquisition and the release that follows with the same answer, cycle after cycle.
fn record(
    note: &mut Option<(&'static str, String)>,
    operation: &'static str,
    class: CallClass,
    failing: Option<String>,
    success_clears: bool,
) -> Change {
    match (class, failing) {
        (CallClass::TimedOut | CallClass::Failed, Some(error)) => {
            let news = note.as_ref().is_none_or(|(_, previous)| *previous != error);
            *note = Some((operation, error.clone()));
            if news {
                Change::Fails(error)
            } else {
                Change::None
            }
        }
        (CallClass::Ok | CallClass::Refused, _) if success_clears => match note.take() {
            Some((failed, _)) => Change::Recovered { failed },
            None => Change::None,
        },
        _ => Change::None,
    }
}

/// How many families of operations there are.
pub(super) const FAMILIES: usize = 4;

/// Where an operation's failures are kept, and whether its success proves its family works
/// again.
pub(super) struct Family {
    /// Reads, the lease, writes of the log, or writes of the membership: a
    /// membership record installed proves nothing about the log's writes.
    pub(super) index: usize,
    /// False for a release: the one that follows a failed acquisition succeeds as a no-op on a
    /// node this process does not hold, which proves nothing about the lease key.
    pub(super) success_clears: bool,
}

impl Family {
    /// The family of `operation`.
    pub(super) fn of(operation: &str) -> Self {
        let (index, success_clears) = match operation {
            read if read.starts_with("read") => (0, true),
            "promote" | "renew_lease" => (1, true),
            "release" => (1, false),
            "claim_server_id" | "install_membership" => (3, true),
            _ => (2, true),
        };
        Self {
            index,
            success_clears,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    const NO_REPLY: &str = "no reply within 100ms";

    fn failed(
        note: &mut Option<(&'static str, String)>,
        operation: &'static str,
        error: &str,
    ) -> Change {
        let family = Family::of(operation);
        record(
            note,
            operation,
            CallClass::TimedOut,
            Some(error.to_owned()),
            family.success_clears,
        )
    }

    #[test]
    fn record__when_acquisition_and_release_fail_alike_cycle_after_cycle__then_says_it_once() {
        // given: a process cut off from a node tries to take the lease and releases it
        let mut note = None;

        // when
        let changes: Vec<Change> = (0..3)
            .flat_map(|_| ["promote", "release"])
            .map(|operation| failed(&mut note, operation, NO_REPLY))
            .collect();

        // then
        assert_eq!(changes[0], Change::Fails(NO_REPLY.to_owned()));
        assert!(
            changes[1..].iter().all(|change| *change == Change::None),
            "{changes:?}"
        );
        assert_eq!(note, Some(("release", NO_REPLY.to_owned())));
    }

    #[test]
    fn record__when_the_error_changes__then_says_the_new_one() {
        // given
        let mut note = None;
        failed(&mut note, "promote", NO_REPLY);

        // when
        let change = failed(
            &mut note,
            "promote",
            "WRONGPASS invalid username-password pair",
        );

        // then
        assert_eq!(
            change,
            Change::Fails("WRONGPASS invalid username-password pair".to_owned())
        );
    }

    #[test]
    fn record__when_an_operation_of_the_family_succeeds__then_recovered_once() {
        // given
        let mut note = None;
        failed(&mut note, "promote", NO_REPLY);

        // when
        let first = record(&mut note, "renew_lease", CallClass::Ok, None, true);
        let second = record(&mut note, "renew_lease", CallClass::Ok, None, true);

        // then
        assert_eq!(first, Change::Recovered { failed: "promote" });
        assert_eq!(second, Change::None);
    }

    #[test]
    fn family__when_a_membership_write_or_a_read_succeeds__then_a_failing_log_write_is_still_noted()
    {
        // given / when / then: each is its own family, so neither clears the log's writes
        let write = Family::of("write_block").index;
        for other in [
            "install_membership",
            "claim_server_id",
            "read_latest",
            "read_membership",
        ] {
            assert_ne!(Family::of(other).index, write, "{other}");
        }
        assert_eq!(Family::of("remove_entries").index, write);
    }

    #[test]
    fn record__when_a_release_succeeds__then_the_failure_stays() {
        // given
        let mut note = None;
        failed(&mut note, "promote", NO_REPLY);

        // when
        let change = record(&mut note, "release", CallClass::Ok, None, false);

        // then
        assert_eq!(change, Change::None);
        assert!(note.is_some());
    }
}

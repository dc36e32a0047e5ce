//! What a node's failing operations answered, kept until they succeed again: shown in the
//! status and said once in the log when it starts (or changes) and once when it ends.
//!
//! Kept per family of operations (reads; the lease; writes), so that calls that still succeed
//! do not hide one that keeps failing: reads do not hide a lease that cannot be taken. A
//! release clears nothing: the one that follows a failed acquisition succeeds as a no-op on a
//! node this process does not hold, and proves nothing about the lease key.

use std::sync::{Mutex, PoisonError};

use super::CallClass;
use crate::scripts::NodeError;

/// The failures of one node's operations.
#[derive(Debug, Default)]
pub(super) struct ErrorNotes {
    /// Per family, the operation that last failed and how.
    last: Mutex<[Option<(&'static str, String)>; 3]>,
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
        let last_error = &mut last[index];
        match (class, failing) {
            (CallClass::TimedOut | CallClass::Failed, Some(error)) => {
                let changed = last_error
                    .as_ref()
                    .is_none_or(|(failed, previous)| *failed != operation || *previous != error);
                if changed {
                    tracing::warn!(node, operation, error = %error, "redis node operation fails");
                    *last_error = Some((operation, error));
                }
            }
            (CallClass::Ok | CallClass::Refused, _) if success_clears => {
                if let Some((failed, _)) = last_error.take() {
                    tracing::info!(
                        node,
                        operation = failed,
                        "redis node operations succeed again"
                    );
                }
            }
            _ => {}
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

/// Where an operation's failures are kept, and whether its success proves its family works
/// again.
struct Family {
    /// Reads, the lease, or writes.
    index: usize,
    /// False for a release: the one that follows a failed acquisition succeeds as a no-op on a
    /// node this process does not hold, which proves nothing about the lease key.
    success_clears: bool,
}

impl Family {
    fn of(operation: &str) -> Self {
        let (index, success_clears) = match operation {
            read if read.starts_with("read") => (0, true),
            "promote" | "renew_lease" => (1, true),
            "release" => (1, false),
            _ => (2, true),
        };
        Self {
            index,
            success_clears,
        }
    }
}

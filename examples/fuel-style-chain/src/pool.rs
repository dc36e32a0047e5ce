//! [`TransactionQueue`]: the chain's pending transactions, first in first out, and the
//! `TransactionPool` port over them (how many wait, and a wake-up when one arrives). The
//! producer reads from the front without removing; the store removes what a committed block
//! included, so a block that fails to publish loses nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use poa_ports::{Transaction, TransactionPool};
use tokio::sync::Notify;

/// Pending transactions, shared by the producer, the store and whoever submits. Clones share
/// the same queue.
#[derive(Debug, Clone, Default)]
pub struct TransactionQueue {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<VecDeque<Transaction>>,
    arrived: Notify,
}

impl TransactionQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a transaction for the next blocks.
    pub fn submit(&self, transaction: Transaction) {
        self.pending().push_back(transaction);
        self.shared.arrived.notify_waiters();
    }

    /// Up to `max` transactions from the front, left in the queue.
    pub fn front(&self, max: usize) -> Vec<Transaction> {
        self.pending().iter().take(max).cloned().collect()
    }

    /// Removes what a committed block included.
    pub fn remove_included(&self, included: &[Transaction]) {
        self.pending()
            .retain(|transaction| !included.contains(transaction));
    }

    /// The queue. No holder of the lock panics, so a poisoned lock still guards a whole queue.
    fn pending(&self) -> MutexGuard<'_, VecDeque<Transaction>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl TransactionPool for TransactionQueue {
    fn pending_count(&self) -> usize {
        self.pending().len()
    }

    async fn wait_for_pending(&self) {
        loop {
            // Registered before the check, so a submit between the two still wakes us.
            let arrived = self.shared.arrived.notified();
            if self.pending_count() > 0 {
                return;
            }
            arrived.await;
        }
    }
}

//! [`MemoryTransactionPool`]: pending transactions in memory, in arrival order, bounded by
//! [`PoolLimits`]; implements the `TransactionPool` port.
//!
//! Selecting transactions for a block never removes them: only a commit does (through
//! [`MemoryTransactionPool::remove_committed`]), so a block whose publish fails loses nothing.
//! The pool does not know the chain: a transaction already committed may be submitted again,
//! and the producer drops it from the pool instead of including it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use poa_ports::{Transaction, TransactionId, TransactionPool};
use tokio::sync::Notify;

use crate::error::PoolError;

/// Bounds of the pool: how many transactions, how large each, how many bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most transactions pending at once.
    pub max_transactions: usize,
    /// Largest transaction accepted, in bytes.
    pub max_transaction_bytes: usize,
    /// Most bytes of transactions pending at once.
    pub max_total_bytes: usize,
}

impl PoolLimits {
    /// The limits a node runs with unless configured otherwise: 10,000 transactions of at most
    /// 64 KiB each and 64 MiB in all. The total bounds the pool's memory whatever the mix of
    /// sizes; 64 KiB per transaction stays well under the per-block byte budget of
    /// [`crate::BlockLimits::standard`], so any accepted transaction fits in a block.
    pub const fn standard() -> Self {
        Self {
            max_transactions: 10_000,
            max_transaction_bytes: 64 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Pending transactions in arrival order. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct MemoryTransactionPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limits: PoolLimits,
    state: Mutex<PoolState>,
    /// Signalled after every successful submit.
    submitted: Notify,
}

/// Transactions keyed by an arrival sequence number, so iteration is FIFO and removal by id is
/// logarithmic.
#[derive(Debug, Default)]
struct PoolState {
    next_sequence: u64,
    by_sequence: BTreeMap<u64, Transaction>,
    sequence_by_id: HashMap<TransactionId, u64>,
    total_bytes: usize,
}

impl MemoryTransactionPool {
    /// An empty pool bounded by `limits`.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(PoolState::default()),
                submitted: Notify::new(),
            }),
        }
    }

    /// The limits this pool enforces.
    pub fn limits(&self) -> PoolLimits {
        self.shared.limits
    }

    /// Adds a transaction at the end of the queue and wakes anyone waiting for one.
    ///
    /// # Errors
    ///
    /// [`PoolError::Empty`] for a zero-byte transaction, [`PoolError::TooLarge`] above the
    /// per-transaction limit, [`PoolError::Duplicate`] when the same transaction is pending,
    /// [`PoolError::Full`] when accepting it would exceed the count or total byte limit.
    pub fn submit(&self, transaction: Transaction) -> Result<TransactionId, PoolError> {
        let limits = self.shared.limits;
        let bytes = transaction.as_bytes().len();
        if bytes == 0 {
            return Err(PoolError::Empty);
        }
        if bytes > limits.max_transaction_bytes {
            return Err(PoolError::TooLarge {
                bytes,
                limit: limits.max_transaction_bytes,
            });
        }
        let id = transaction.id();
        {
            let mut state = self.lock();
            if state.sequence_by_id.contains_key(&id) {
                return Err(PoolError::Duplicate);
            }
            let total_bytes = state.total_bytes.saturating_add(bytes);
            if state.by_sequence.len() >= limits.max_transactions
                || total_bytes > limits.max_total_bytes
            {
                return Err(PoolError::Full);
            }
            let sequence = state.next_sequence;
            state.next_sequence = sequence.saturating_add(1);
            state.by_sequence.insert(sequence, transaction);
            state.sequence_by_id.insert(id, sequence);
            state.total_bytes = total_bytes;
        }
        self.shared.submitted.notify_waiters();
        Ok(id)
    }

    /// Removes the given transactions (those of a committed block); ids not pending are
    /// ignored. Returns how many were removed.
    pub fn remove_committed(&self, ids: &[TransactionId]) -> usize {
        let mut state = self.lock();
        let mut removed = 0;
        for id in ids {
            let Some(sequence) = state.sequence_by_id.remove(id) else {
                continue;
            };
            if let Some(transaction) = state.by_sequence.remove(&sequence) {
                state.total_bytes = state
                    .total_bytes
                    .saturating_sub(transaction.as_bytes().len());
                removed += 1;
            }
        }
        removed
    }

    /// Up to `max_count` transactions of at most `max_bytes` in all, oldest first, without
    /// removing them. A transaction larger than what is left of the byte budget is passed over
    /// for this selection, so it cannot stall the queue; being older, it leads the next one.
    pub fn select(&self, max_count: usize, max_bytes: usize) -> Vec<Transaction> {
        let state = self.lock();
        let mut selected = Vec::new();
        let mut remaining_bytes = max_bytes;
        for transaction in state.by_sequence.values() {
            if selected.len() >= max_count || remaining_bytes == 0 {
                break;
            }
            let bytes = transaction.as_bytes().len();
            if bytes <= remaining_bytes {
                remaining_bytes -= bytes;
                selected.push(transaction.clone());
            }
        }
        selected
    }

    /// Whether the transaction is pending.
    pub fn contains(&self, id: &TransactionId) -> bool {
        self.lock().sequence_by_id.contains_key(id)
    }

    /// How many transactions are pending.
    pub fn pending_count(&self) -> usize {
        self.lock().by_sequence.len()
    }

    /// How many bytes of transactions are pending.
    pub fn pending_bytes(&self) -> usize {
        self.lock().total_bytes
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Every update leaves the state consistent before anything can panic, so a poisoned
        // lock still guards a valid pool.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl TransactionPool for MemoryTransactionPool {
    fn pending_count(&self) -> usize {
        MemoryTransactionPool::pending_count(self)
    }

    async fn wait_for_pending(&self) {
        loop {
            // Register as a waiter before looking, so a submit between the look and the await
            // still wakes this task.
            let mut submitted = std::pin::pin!(self.shared.submitted.notified());
            submitted.as_mut().enable();
            if self.pending_count() > 0 {
                return;
            }
            submitted.await;
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;

//! [`MemoryTransactionPool`]: pending transactions in memory, in arrival order, bounded by
//! [`PoolLimits`]; implements the `TransactionPool` port.
//!
//! Selecting transactions for a block never removes them: only a commit does (through
//! [`MemoryTransactionPool::remove_committed`]), so a block whose publish fails loses nothing.
//! The pool does not know the chain: a transaction already committed may be submitted again,
//! and the producer drops it from the pool instead of including it.
//!
//! Each transaction keeps the wall-clock time a process of the fleet first accepted it (its own
//! submission, or the time a peer relayed with it), and expires [`PoolLimits::max_age`] after
//! it: [`MemoryTransactionPool::expire`] drops it, and a relayed transaction already that old is
//! refused, so an expired transaction is not handed back and forth between pools.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use poa_ports::Transaction;
use poa_ports::{Clock, Timestamp, TransactionId, TransactionPool};
use tokio::sync::Notify;

use crate::clock::SystemClock;
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
    /// How long a transaction may stay pending, from when a process first accepted it.
    pub max_age: Duration,
}

impl PoolLimits {
    /// The limits a node runs with unless configured otherwise: 10,000 transactions of at most
    /// 64 KiB each and 64 MiB in all, pending for at most an hour. The total bounds the pool's
    /// memory whatever the mix of sizes; 64 KiB per transaction stays well under the per-block
    /// byte budget of [`crate::BlockLimits::standard`], so any accepted transaction fits in a
    /// block.
    pub const fn standard() -> Self {
        Self {
            max_transactions: 10_000,
            max_transaction_bytes: 64 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(60 * 60),
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

/// A pending transaction and when a process first accepted it.
#[derive(Debug, Clone)]
struct Pending {
    transaction: Transaction,
    first_seen: Timestamp,
}

/// Transactions keyed by an arrival sequence number, so iteration is FIFO and removal by id is
/// logarithmic.
#[derive(Debug, Default)]
struct PoolState {
    next_sequence: u64,
    by_sequence: BTreeMap<u64, Pending>,
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

    /// Adds a transaction a client submitted (first seen now) at the end of the queue and wakes
    /// anyone waiting for one.
    ///
    /// # Errors
    ///
    /// [`PoolError::Empty`] for a zero-byte transaction, [`PoolError::TooLarge`] above the
    /// per-transaction limit, [`PoolError::Duplicate`] when the same transaction is pending,
    /// [`PoolError::Full`] when accepting it would exceed the count or total byte limit.
    pub fn submit(&self, transaction: Transaction) -> Result<TransactionId, PoolError> {
        let now = SystemClock.now();
        self.insert(transaction, now, now)
    }

    /// Adds a transaction another process relayed, keeping the time a process first accepted
    /// it (never later than now, so a peer's fast clock cannot extend its life).
    ///
    /// # Errors
    ///
    /// As [`MemoryTransactionPool::submit`], and [`PoolError::Expired`] when it is already
    /// older than [`PoolLimits::max_age`].
    pub fn submit_relayed(
        &self,
        transaction: Transaction,
        first_seen: Timestamp,
    ) -> Result<TransactionId, PoolError> {
        self.insert(transaction, first_seen, SystemClock.now())
    }

    fn insert(
        &self,
        transaction: Transaction,
        first_seen: Timestamp,
        now: Timestamp,
    ) -> Result<TransactionId, PoolError> {
        let limits = self.shared.limits;
        let first_seen = first_seen.min(now);
        if is_expired(first_seen, now, limits.max_age) {
            return Err(PoolError::Expired);
        }
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
            state.by_sequence.insert(
                sequence,
                Pending {
                    transaction,
                    first_seen,
                },
            );
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
            if let Some(pending) = state.by_sequence.remove(&sequence) {
                state.total_bytes = state
                    .total_bytes
                    .saturating_sub(pending.transaction.as_bytes().len());
                removed += 1;
            }
        }
        removed
    }

    /// Drops every transaction first seen more than [`PoolLimits::max_age`] before `now`.
    /// Returns how many were dropped.
    pub fn expire(&self, now: Timestamp) -> usize {
        let max_age = self.shared.limits.max_age;
        let mut state = self.lock();
        let expired: Vec<(u64, TransactionId, usize)> = state
            .by_sequence
            .iter()
            .filter(|(_, pending)| is_expired(pending.first_seen, now, max_age))
            .map(|(sequence, pending)| {
                (
                    *sequence,
                    pending.transaction.id(),
                    pending.transaction.as_bytes().len(),
                )
            })
            .collect();
        for (sequence, id, bytes) in &expired {
            state.by_sequence.remove(sequence);
            state.sequence_by_id.remove(id);
            state.total_bytes = state.total_bytes.saturating_sub(*bytes);
        }
        expired.len()
    }

    /// When the longest-pending transaction was first seen, if any is pending.
    pub fn oldest_first_seen(&self) -> Option<Timestamp> {
        self.lock()
            .by_sequence
            .values()
            .map(|pending| pending.first_seen)
            .min()
    }

    /// Up to `max` pending transactions first seen at or before `cutoff`, in arrival order,
    /// each with its first-seen time: what is worth handing to another process again.
    pub fn first_seen_by(&self, cutoff: Timestamp, max: usize) -> Vec<(Transaction, Timestamp)> {
        self.lock()
            .by_sequence
            .values()
            .filter(|pending| pending.first_seen <= cutoff)
            .take(max)
            .map(|pending| (pending.transaction.clone(), pending.first_seen))
            .collect()
    }

    /// Up to `max_count` transactions of at most `max_bytes` in all, oldest first, without
    /// removing them. A transaction larger than what is left of the byte budget is passed over
    /// for this selection, so it cannot stall the queue; being older, it leads the next one.
    pub fn select(&self, max_count: usize, max_bytes: usize) -> Vec<Transaction> {
        self.select_leaving_out(max_count, max_bytes, &[])
    }

    /// Like [`MemoryTransactionPool::select`], passing over the transactions `left_out` names
    /// (those of a block whose commit has not ended: still pending here, already in a block).
    pub fn select_leaving_out(
        &self,
        max_count: usize,
        max_bytes: usize,
        left_out: &[TransactionId],
    ) -> Vec<Transaction> {
        let state = self.lock();
        let passed_over: std::collections::HashSet<u64> = left_out
            .iter()
            .filter_map(|id| state.sequence_by_id.get(id).copied())
            .collect();
        let mut selected = Vec::new();
        let mut remaining_bytes = max_bytes;
        for (sequence, pending) in &state.by_sequence {
            if selected.len() >= max_count || remaining_bytes == 0 {
                break;
            }
            if passed_over.contains(sequence) {
                continue;
            }
            let bytes = pending.transaction.as_bytes().len();
            if bytes <= remaining_bytes {
                remaining_bytes -= bytes;
                selected.push(pending.transaction.clone());
            }
        }
        selected
    }

    /// When a process of the fleet first accepted the transaction, if it is pending here.
    pub fn first_seen(&self, id: &TransactionId) -> Option<Timestamp> {
        let state = self.lock();
        let sequence = state.sequence_by_id.get(id)?;
        state
            .by_sequence
            .get(sequence)
            .map(|pending| pending.first_seen)
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

/// Whether a transaction first seen at `first_seen` has been pending longer than `max_age` at
/// `now`.
fn is_expired(first_seen: Timestamp, now: Timestamp, max_age: Duration) -> bool {
    let age = now
        .as_unix_millis()
        .saturating_sub(first_seen.as_unix_millis());
    u128::from(age) > max_age.as_millis()
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

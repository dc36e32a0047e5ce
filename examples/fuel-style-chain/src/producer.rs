//! [`QueueBlockProducer`]: the `BlockProducer` port, building the next block from the front of
//! the [`TransactionQueue`] under the chain's consensus parameters version. On a parent whose
//! commit has not ended it passes over the parent's transactions, which stay in the queue until
//! that commit ends.

use async_trait::async_trait;
use poa_ports::{BlockProducer, ParentBlock, ProductionError, Timestamp, Transaction};

use crate::block::{FuelBlock, FuelStyleChain};
use crate::header::{FuelHeader, Tai64};
use crate::pool::TransactionQueue;

/// Builds blocks of at most `max_transactions` from the queue's front.
#[derive(Debug, Clone)]
pub struct QueueBlockProducer {
    queue: TransactionQueue,
    consensus_parameters_version: u32,
    max_transactions: u16,
}

impl QueueBlockProducer {
    /// A producer over `queue`, stamping every block with `consensus_parameters_version`.
    pub fn new(
        queue: TransactionQueue,
        consensus_parameters_version: u32,
        max_transactions: u16,
    ) -> Self {
        Self {
            queue,
            consensus_parameters_version,
            max_transactions,
        }
    }
}

#[async_trait]
impl BlockProducer<FuelStyleChain> for QueueBlockProducer {
    async fn produce_block(
        &self,
        parent: ParentBlock<'_, FuelStyleChain>,
        timestamp: Timestamp,
    ) -> Result<FuelBlock, ProductionError> {
        let max = usize::from(self.max_transactions);
        let (parent, left_out): (&FuelHeader, &[Transaction]) = match parent {
            ParentBlock::Head(header) => (header, &[]),
            ParentBlock::Committing(block) => (block.header(), &block.block.transactions),
        };
        let transactions: Vec<Transaction> = self
            .queue
            .front(max.saturating_add(left_out.len()))
            .into_iter()
            .filter(|transaction| !left_out.contains(transaction))
            .take(max)
            .collect();
        FuelBlock::build_on(
            parent,
            Tai64::from_unix_millis(timestamp.as_unix_millis()),
            self.consensus_parameters_version,
            transactions,
        )
        .ok_or_else(|| ProductionError::Failed {
            reason: format!("no height above {} fits the header's u32", parent.height),
        })
    }
}

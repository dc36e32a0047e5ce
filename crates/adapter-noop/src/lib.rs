//! The reconciliation port for a single-node deployment: with one producer there is nothing to
//! coordinate, so this process always leads, publishing is a no-op and there is no lease to
//! release. It performs no I/O and never looks into a block, so it serves any chain.

use async_trait::async_trait;
use poa_ports::{BlockReconciliationPort, Chain, ChainHead, LeaderState, ReconciliationError};

/// Always [`LeaderState::ReconciledLeader`]; publish and release succeed without I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopReconciliation;

#[async_trait]
impl<C: Chain> BlockReconciliationPort<C> for NoopReconciliation {
    async fn leader_state(
        &self,
        _head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        Ok(LeaderState::ReconciledLeader)
    }

    /// A single node has nobody to follow: standing down means producing nothing.
    async fn follower_state(
        &self,
        _head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        Ok(LeaderState::ReconciledFollower)
    }

    async fn release(&self) -> Result<(), ReconciliationError> {
        Ok(())
    }

    async fn publish_produced_block(
        &self,
        _block: &C::SealedBlock,
    ) -> Result<(), ReconciliationError> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use adapter_chain::block::transactions_root;
    use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
    use poa_ports::{BlockHeight, BlockId, ChainId, LeaseStatus, Timestamp};

    use super::*;

    #[tokio::test]
    async fn noop__for_any_height__then_leads_publishes_and_releases_without_error() {
        // given: the port for the reference chain
        let adapter: &dyn BlockReconciliationPort<ReferenceChain> = &NoopReconciliation;
        let block = SealedBlock {
            block: Block {
                header: Header {
                    chain_id: ChainId::new(0),
                    height: BlockHeight::new(1),
                    parent_id: BlockId::default(),
                    timestamp: Timestamp::from_unix_millis(0),
                    transactions_root: transactions_root(&[]),
                    transaction_count: 0,
                },
                transactions: vec![],
            },
            seal: Seal::Genesis,
        };

        // when / then
        for height in [0, 1, u64::MAX] {
            let head = ChainHead {
                height: BlockHeight::new(height),
                id: BlockId::default(),
            };
            let state = adapter.leader_state(head).await.unwrap();
            assert_eq!(state, LeaderState::ReconciledLeader);
        }
        adapter.publish_produced_block(&block).await.unwrap();
        adapter.release().await.unwrap();
        assert_eq!(adapter.lease_status(), LeaseStatus::default());
    }
}

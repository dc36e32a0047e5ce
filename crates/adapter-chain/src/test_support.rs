//! Builders shared by the unit tests of several modules.

use crate::block::transactions_root;
use crate::{Block, Header, SealedBlock};
use poa_ports::Transaction;
use poa_ports::{BlockSigner, Timestamp};

use crate::signer::Ed25519BlockSigner;

/// Transactions with the given bytes.
pub(crate) fn transactions(bytes: &[&[u8]]) -> Vec<Transaction> {
    bytes
        .iter()
        .map(|bytes| Transaction::new(bytes.to_vec()))
        .collect()
}

/// The valid child of `parent` carrying `transactions`, one second later, after `edit` changed
/// its header, sealed by `signer` (so only what `edit` broke can make it invalid).
pub(crate) fn child_block(
    signer: &Ed25519BlockSigner,
    parent: &Header,
    transactions: &[&[u8]],
    edit: impl FnOnce(&mut Header),
) -> SealedBlock {
    let transactions = self::transactions(transactions);
    let mut header = Header {
        chain_id: parent.chain_id,
        height: parent.height.next().unwrap(),
        parent_id: parent.id(),
        timestamp: Timestamp::from_unix_millis(parent.timestamp.as_unix_millis() + 1_000),
        transactions_root: transactions_root(&transactions),
        transaction_count: u32::try_from(transactions.len()).unwrap(),
    };
    edit(&mut header);
    signer
        .seal(Block {
            header,
            transactions,
        })
        .unwrap()
}

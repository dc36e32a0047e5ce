//! Forged blocks are refused by verify and by commit, and leave the chain and the pool as they
//! were: also a forgery of a block `verify` just accepted (whose commit does not check the
//! genuine block's seal again), or of a block whose seal the store's log verifier found valid
//! (whose `verify` does not check that seal again).

#![allow(non_snake_case)]

use adapter_chain::{AuthorityKey, Ed25519BlockSigner};
use adapter_chain::{Seal, SealedBlock};
use poa_ports::{BlockImporter, BlockSigner, ImportError, SealVerifier, Signature};

use crate::support::{Node, assert_chain_links, fresh_authority};

fn flip_first_signature_bit(mut block: SealedBlock) -> SealedBlock {
    let Seal::Authority(signature) = &block.seal else {
        panic!("expected an authority seal, got {:?}", block.seal);
    };
    let mut bytes = *signature.as_bytes();
    bytes[0] ^= 1;
    block.seal = Seal::Authority(Signature::from_bytes(bytes));
    block
}

/// Makes a forgery of a genuine block, with `other` as a signer that is not the authority.
type Forge = fn(SealedBlock, &Ed25519BlockSigner) -> SealedBlock;

/// Forgeries of a block's seal.
fn seal_forgeries() -> [(&'static str, Forge); 3] {
    [
        ("bit flipped in the signature", |block, _| {
            flip_first_signature_bit(block)
        }),
        ("sealed with another key", |block, other| {
            other.seal(block.block).unwrap()
        }),
        ("genesis seal above genesis", |mut block, _| {
            block.seal = Seal::Genesis;
            block
        }),
    ]
}

/// A fresh chain with one transaction pending and the genuine block that includes it, sealed
/// (not verified, not committed).
async fn chain_with_a_genuine_block() -> (tempfile::TempDir, Node, SealedBlock) {
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"payment"]);
    let genuine = node.produce_sealed(&signer).await;
    (dir, node, genuine)
}

#[tokio::test]
async fn verify_and_commit__when_block_is_forged__then_refused_and_nothing_is_committed() {
    let other_signer = Ed25519BlockSigner::new(AuthorityKey::generate());
    for (name, forge) in seal_forgeries() {
        // Also when the genuine block was read from the shared log first: the store then
        // remembers its seal as valid.
        for genuine_read_from_the_log in [false, true] {
            // given
            let (_dir, node, genuine) = chain_with_a_genuine_block().await;
            if genuine_read_from_the_log {
                node.store.seal_verifier().verify_seal(&genuine).unwrap();
            }
            let forged = forge(genuine, &other_signer);

            // when
            let verified = node.importer.verify(&forged).await;
            let committed = node.importer.commit(forged.clone()).await;

            // then
            let case = format!("{name}, read from the log first: {genuine_read_from_the_log}");
            assert!(
                matches!(verified, Err(ImportError::InvalidSeal { .. })),
                "{case}: {verified:?}"
            );
            assert!(
                matches!(committed, Err(ImportError::InvalidSeal { .. })),
                "{case}: {committed:?}"
            );
            assert_eq!(assert_chain_links(&node.store).len(), 1, "{case}");
            assert!(
                !node
                    .store
                    .is_committed(&forged.block.transactions[0].id())
                    .unwrap()
            );
            assert_eq!(node.pool.pending_count(), 1, "{case}");
        }
    }
}

#[tokio::test]
async fn commit__when_verify_accepted_the_genuine_block__then_a_forgery_of_it_is_refused() {
    let other_signer = Ed25519BlockSigner::new(AuthorityKey::generate());
    let swapped_transaction: (&str, Forge) = (
        "a transaction swapped under the same header and seal",
        |mut block, _| {
            block.block.transactions[0] = poa_ports::Transaction::new(b"swapped".to_vec());
            block
        },
    );
    for (name, forge) in seal_forgeries().into_iter().chain([swapped_transaction]) {
        // given
        let (_dir, node, genuine) = chain_with_a_genuine_block().await;
        node.importer.verify(&genuine).await.unwrap();
        let forged = forge(genuine.clone(), &other_signer);

        // when
        let committed = node.importer.commit(forged).await;

        // then
        assert!(
            matches!(
                committed,
                Err(ImportError::InvalidSeal { .. } | ImportError::TransactionsMismatch { .. })
            ),
            "{name}: {committed:?}"
        );
        assert_eq!(assert_chain_links(&node.store).len(), 1, "{name}");
        node.importer.commit(genuine).await.unwrap();
        assert_eq!(assert_chain_links(&node.store).len(), 2, "{name}");
    }
}

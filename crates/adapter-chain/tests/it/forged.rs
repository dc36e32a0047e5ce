//! Forged blocks are refused by verify and by commit, and leave the chain and the pool as they
//! were.

#![allow(non_snake_case)]

use adapter_chain::{AuthorityKey, Ed25519BlockSigner};
use adapter_chain::{Seal, SealedBlock};
use poa_ports::{BlockImporter, BlockSigner, ImportError, Signature};

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

#[tokio::test]
async fn verify_and_commit__when_block_is_forged__then_refused_and_nothing_is_committed() {
    let other_signer = Ed25519BlockSigner::new(AuthorityKey::generate());
    type Forge = fn(SealedBlock, &Ed25519BlockSigner) -> SealedBlock;
    let forgeries: [(&str, Forge); 3] = [
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
    ];
    for (name, forge) in forgeries {
        // given
        let dir = tempfile::tempdir().unwrap();
        let (spec, signer) = fresh_authority();
        let node = Node::open(spec, dir.path());
        node.submit(&[b"payment"]);
        let genuine = node.produce_sealed(&signer).await;
        let forged = forge(genuine, &other_signer);

        // when
        let verified = node.importer.verify(&forged).await;
        let committed = node.importer.commit(forged.clone()).await;

        // then
        assert!(
            matches!(verified, Err(ImportError::InvalidSeal { .. })),
            "{name}: {verified:?}"
        );
        assert!(
            matches!(committed, Err(ImportError::InvalidSeal { .. })),
            "{name}: {committed:?}"
        );
        assert_eq!(assert_chain_links(&node.store).len(), 1, "{name}");
        assert!(
            !node
                .store
                .is_committed(&forged.block.transactions[0].id())
                .unwrap()
        );
        assert_eq!(node.pool.pending_count(), 1, "{name}");
    }
}

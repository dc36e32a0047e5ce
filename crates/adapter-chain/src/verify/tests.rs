//! Every refusal of block verification, from a table of forged and malformed blocks.

use std::collections::HashSet;

use poa_ports::Transaction;
use poa_ports::{BlockHeight, BlockId, BlockSigner, ChainId, Signature, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::keys::AuthorityKey;
use crate::signer::Ed25519BlockSigner;
use crate::test_support::child_block;

/// A spec sealed by a fresh key, its genesis header and a signer for it.
struct Fixture {
    spec: ChainSpec,
    parent: Header,
    signer: Ed25519BlockSigner,
}

impl Fixture {
    fn new() -> Self {
        let key = AuthorityKey::generate();
        let spec = ChainSpec::dev(key.public_key());
        Self {
            parent: spec.genesis_block().block.header,
            spec,
            signer: Ed25519BlockSigner::new(key),
        }
    }

    fn child(&self, transactions: &[&[u8]], edit: impl FnOnce(&mut Header)) -> SealedBlock {
        child_block(&self.signer, &self.parent, transactions, edit)
    }

    fn verify(&self, block: &SealedBlock, committed: &[&[u8]]) -> Result<(), ImportError> {
        let committed: HashSet<TransactionId> = committed
            .iter()
            .map(|bytes| Transaction::new(bytes.to_vec()).id())
            .collect();
        verify_block(&self.spec, &self.parent, block, |id| {
            Ok(committed.contains(id))
        })
    }
}

fn flip_signature_bit(block: &mut SealedBlock, bit: usize) {
    let Seal::Authority(signature) = &block.seal else {
        panic!("expected an authority seal");
    };
    let mut bytes = *signature.as_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    block.seal = Seal::Authority(Signature::from_bytes(bytes));
}

#[test]
fn verify_block__when_block_is_a_valid_child__then_accepts() {
    // given
    let fixture = Fixture::new();
    let block = fixture.child(&[b"a", b"b"], |_| {});

    // when
    let result = fixture.verify(&block, &[b"c"]);

    // then
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn verify_block__when_timestamp_equals_parent__then_accepts() {
    // given
    let fixture = Fixture::new();
    let parent_time = fixture.parent.timestamp;
    let block = fixture.child(&[], |header| header.timestamp = parent_time);

    // when
    let result = fixture.verify(&block, &[]);

    // then
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn verify_block__when_any_rule_is_broken__then_refuses_with_its_variant() {
    let fixture = Fixture::new();
    let height = BlockHeight::new(1);
    let other_signer = Ed25519BlockSigner::new(AuthorityKey::generate());
    let parent_time = fixture.parent.timestamp;
    let early = Timestamp::from_unix_millis(parent_time.as_unix_millis() - 1);

    let mut forged = fixture.child(&[b"a"], |_| {});
    flip_signature_bit(&mut forged, 0);
    let other_key = other_signer
        .seal(fixture.child(&[b"a"], |_| {}).block)
        .unwrap();
    let mut swapped = fixture.child(&[b"a"], |_| {});
    swapped.block.transactions[0] = Transaction::new(b"z".to_vec());
    let mut dropped = fixture.child(&[b"a", b"b"], |_| {});
    dropped.block.transactions.pop();
    let mut genesis_seal = fixture.child(&[], |_| {});
    genesis_seal.seal = Seal::Genesis;

    let cases: Vec<(&str, SealedBlock, &[&[u8]], ImportError)> = vec![
        (
            "forged signature",
            forged,
            &[],
            ImportError::InvalidSeal { height },
        ),
        (
            "sealed with another key",
            other_key,
            &[],
            ImportError::InvalidSeal { height },
        ),
        (
            "wrong parent",
            fixture.child(&[], |header| {
                header.parent_id = BlockId::from_bytes([7; 32])
            }),
            &[],
            ImportError::WrongParent {
                height,
                expected: fixture.parent.id(),
                found: BlockId::from_bytes([7; 32]),
            },
        ),
        (
            "wrong height",
            fixture.child(&[], |header| header.height = BlockHeight::new(2)),
            &[],
            ImportError::WrongHeight {
                expected: height,
                found: BlockHeight::new(2),
            },
        ),
        (
            "same height as parent",
            fixture.child(&[], |header| header.height = BlockHeight::GENESIS),
            &[],
            ImportError::WrongHeight {
                expected: height,
                found: BlockHeight::GENESIS,
            },
        ),
        (
            "wrong chain",
            fixture.child(&[], |header| header.chain_id = ChainId::new(9)),
            &[],
            ImportError::WrongChain {
                expected: fixture.spec.chain_id,
                found: ChainId::new(9),
            },
        ),
        (
            "swapped transaction",
            swapped,
            &[],
            ImportError::TransactionsMismatch { height },
        ),
        (
            "dropped transaction",
            dropped,
            &[],
            ImportError::TransactionsMismatch { height },
        ),
        (
            "transaction twice in the block",
            fixture.child(&[b"a", b"b", b"a"], |_| {}),
            &[],
            ImportError::DuplicateTransaction { height },
        ),
        (
            "transaction already committed",
            fixture.child(&[b"a", b"b"], |_| {}),
            &[b"b"],
            ImportError::DuplicateTransaction { height },
        ),
        (
            "genesis seal at height 1",
            genesis_seal,
            &[],
            ImportError::InvalidSeal { height },
        ),
        (
            "timestamp before parent",
            fixture.child(&[], |header| header.timestamp = early),
            &[],
            ImportError::TimestampBeforeParent {
                height,
                parent: parent_time,
                found: early,
            },
        ),
    ];

    for (name, block, committed, expected) in cases {
        // when
        let result = fixture.verify(&block, committed);

        // then
        assert_eq!(
            format!("{:?}", result),
            format!("{:?}", Err::<(), _>(expected)),
            "case: {name}"
        );
    }
}

#[test]
fn verify_block__when_lookup_fails__then_returns_its_error() {
    // given
    let fixture = Fixture::new();
    let block = fixture.child(&[b"a"], |_| {});

    // when
    let result = verify_block(&fixture.spec, &fixture.parent, &block, |_| {
        Err(ImportError::Storage("disk on fire".into()))
    });

    // then
    assert!(matches!(result, Err(ImportError::Storage(_))), "{result:?}");
}

#[test]
fn verify_block__when_block_has_no_transactions__then_never_asks_the_lookup() {
    // given
    let fixture = Fixture::new();
    let block = fixture.child(&[], |_| {});
    let mut asked = 0;

    // when
    let result = verify_block(&fixture.spec, &fixture.parent, &block, |_| {
        asked += 1;
        Ok(true)
    });

    // then
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(asked, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn verify_block__for_any_flipped_signature_bit__then_refuses(bit in 0usize..512) {
        let fixture = Fixture::new();
        let mut block = fixture.child(&[b"a"], |_| {});
        flip_signature_bit(&mut block, bit);
        let result = fixture.verify(&block, &[]);
        prop_assert!(
            matches!(result, Err(ImportError::InvalidSeal { .. })),
            "{:?}",
            result
        );
    }
}

//! Block identity and the wire encoding: round trips, refusals, never a panic on any bytes.

use proptest::prelude::*;

use super::*;

fn block_with(height: u64, transactions: Vec<Vec<u8>>) -> SealedBlock {
    let transactions: Vec<Transaction> = transactions.into_iter().map(Transaction::new).collect();
    SealedBlock {
        block: Block {
            header: Header {
                chain_id: ChainId::new(7),
                height: BlockHeight::new(height),
                parent_id: BlockId::from_bytes([1; 32]),
                timestamp: Timestamp::from_unix_millis(1_700_000_000_000),
                transactions_root: transactions_root(&transactions),
                transaction_count: u32::try_from(transactions.len()).unwrap(),
            },
            transactions,
        },
        seal: Seal::Authority(Signature::from_bytes([9; 64])),
    }
}

#[test]
fn encode__when_decoded__then_yields_the_same_block() {
    let block = block_with(3, vec![b"a".to_vec(), b"bc".to_vec()]);
    assert_eq!(SealedBlock::decode(&block.encode()).unwrap(), block);
}

#[test]
fn encode__when_a_block_is_sealed__then_writes_postcard_field_by_field() {
    // given: chain 7, height 3, one transaction "ab", an authority seal
    let block = block_with(3, vec![b"ab".to_vec()]);
    let header = &block.block.header;

    // when
    let bytes = block.encode();

    // then: varints for the numbers, raw arrays for the ids, length-prefixed byte strings for
    // the transactions and the signature, the seal's variant index before it
    let mut expected = vec![7, 3];
    expected.extend_from_slice(&[1; 32]);
    expected.extend_from_slice(&[0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31]);
    expected.extend_from_slice(header.transactions_root.as_bytes());
    expected.extend_from_slice(&[1, 1, 2, b'a', b'b', 1, 64]);
    expected.extend_from_slice(&[9; 64]);
    assert_eq!(bytes, expected);
}

#[test]
fn decode__when_bytes_are_truncated__then_refuses() {
    let bytes = block_with(3, vec![b"abc".to_vec()]).encode();
    assert!(SealedBlock::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn decode__when_bytes_have_trailing_garbage__then_refuses() {
    let mut bytes = block_with(3, vec![]).encode();
    bytes.push(0);
    assert!(SealedBlock::decode(&bytes).is_err());
}

#[test]
fn id__when_any_header_field_changes__then_changes() {
    let base = block_with(3, vec![]).block.header;
    let mut other = base.clone();
    other.timestamp = Timestamp::from_unix_millis(base.timestamp.as_unix_millis() + 1);
    assert_ne!(base.id(), other.id());
    let mut other = base.clone();
    other.chain_id = ChainId::new(8);
    assert_ne!(base.id(), other.id());
}

#[test]
fn transactions_match_header__when_a_transaction_is_swapped__then_false() {
    let mut block = block_with(3, vec![b"a".to_vec()]).block;
    assert!(block.transactions_match_header());
    block.transactions[0] = Transaction::new(b"b".to_vec());
    assert!(!block.transactions_match_header());
}

proptest! {
    #[test]
    fn decode__for_any_bytes__then_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SealedBlock::decode(&bytes);
    }

    #[test]
    fn encode__for_any_block__then_round_trips(
        height in any::<u64>(),
        transactions in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let block = block_with(height, transactions);
        prop_assert_eq!(SealedBlock::decode(&block.encode()).unwrap(), block);
    }
}

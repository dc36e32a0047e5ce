//! The bytes of each kind of garbage: forged blocks sealed by a key that is not the authority's,
//! undecodable data, members that do not parse, huge values. Pure and seeded: the same salt and
//! head give the same bytes, so a replay writes the same garbage.
//!
//! Blocks are built with the chain's own types (`poa-ports`), so a forgery is exactly as
//! well-formed as an honest block and fails only the seal check; a hand-rolled encoding could
//! drift from the real one and turn every forgery into mere undecodable bytes unnoticed.

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, Seal, SealedBlock};
use ed25519_dalek::{Signer, SigningKey};
use poa_ports::Transaction;
use poa_ports::{BlockHeight, BlockId, Signature, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Epoch field of every garbage entry: far above any epoch a run reaches, so a reader that took
/// the highest epoch among unverified entries would pick the garbage.
pub(crate) const GARBAGE_EPOCH: &str = "999999";
/// Size of a huge entry's data.
const HUGE_ENTRY_BYTES: usize = 4 * 1024 * 1024;
/// Size of the block id part of a huge index member.
const HUGE_MEMBER_HEX_DIGITS: usize = 512 * 1024;
/// Size of a huge lease value.
const HUGE_LEASE_BYTES: usize = 1024 * 1024;

/// A stream entry's fields, as `write_block` writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryFields {
    /// `height`.
    pub(crate) height: u64,
    /// `id`: a block id in hex (or what garbage claims is one).
    pub(crate) id: String,
    /// `data`.
    pub(crate) data: Vec<u8>,
}

/// The seeded source of one fault's bytes.
pub(crate) struct Forge {
    rng: StdRng,
}

impl Forge {
    /// A forge seeded by the fault's salt.
    pub(crate) fn new(salt: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(salt),
        }
    }

    /// A block at `height` on `parent`, dated like `head` (never in the future), carrying one
    /// transaction and sealed by a key drawn from the salt: well-formed, refused only for its
    /// seal.
    pub(crate) fn forged_block(
        &mut self,
        head: &SealedBlock,
        height: u64,
        parent: BlockId,
    ) -> EntryFields {
        let transactions = vec![Transaction::new(
            format!("chaos forged block {}", self.rng.r#gen::<u64>()).into_bytes(),
        )];
        let header = Header {
            chain_id: head.block.header.chain_id,
            height: BlockHeight::new(height),
            parent_id: parent,
            timestamp: Timestamp::from_unix_millis(
                head.block
                    .header
                    .timestamp
                    .as_unix_millis()
                    .saturating_add(1),
            ),
            transactions_root: transactions_root(&transactions),
            transaction_count: 1,
        };
        let block = Block {
            header,
            transactions,
        };
        let foreign = SigningKey::from_bytes(&self.rng.r#gen::<[u8; 32]>());
        let signature = foreign.sign(block.id().as_bytes()).to_bytes();
        let sealed = SealedBlock {
            block,
            seal: Seal::Authority(Signature::from_bytes(signature)),
        };
        EntryFields {
            height,
            id: sealed.id().to_hex(),
            data: sealed.encode(),
        }
    }

    /// A parent id the chain never had.
    pub(crate) fn unknown_parent(&mut self) -> BlockId {
        BlockId::from_bytes(self.rng.r#gen())
    }

    /// An entry at `height` whose data decodes to nothing: random bytes under a random id.
    pub(crate) fn undecodable_entry(&mut self, height: u64) -> EntryFields {
        let length = self.rng.gen_range(1..=256);
        EntryFields {
            height,
            id: self.hex_id(),
            data: self.bytes(length),
        }
    }

    /// An entry at `height` of several MiB that decodes to nothing.
    pub(crate) fn huge_entry(&mut self, height: u64) -> EntryFields {
        EntryFields {
            height,
            id: self.hex_id(),
            data: self.filler(HUGE_ENTRY_BYTES),
        }
    }

    /// The head's own bytes and id stored under `height`: the fields disagree with the data.
    pub(crate) fn fields_disagreeing(head: &SealedBlock, height: u64) -> EntryFields {
        EntryFields {
            height,
            id: head.id().to_hex(),
            data: head.encode(),
        }
    }

    /// An index member at `height` that is not `<height>:<hex>:<entry id>`: binary bytes,
    /// colons in the wrong places.
    pub(crate) fn unparsable_member(&mut self, height: u64) -> Vec<u8> {
        let mut member = format!("{height}::").into_bytes();
        let noise = self.rng.gen_range(8..=64);
        member.extend(self.bytes(noise));
        member.extend_from_slice(b"\xff:\x00:");
        member
    }

    /// An index member at `height` whose entry-id part is not a stream id (a script that passed
    /// it to XRANGE unchecked would fail, or read a range it never meant to).
    pub(crate) fn member_without_stream_id(&mut self, height: u64) -> Vec<u8> {
        let not_an_id = [
            "-",
            "+",
            "notastreamid",
            "1-",
            "0-0-0",
            "18446744073709551616-0",
        ][self.rng.gen_range(0..6)];
        format!("{height}:{}:{not_an_id}", self.hex_id()).into_bytes()
    }

    /// An index member at `height` of several hundred KiB that parses but names no entry.
    pub(crate) fn huge_member(height: u64) -> Vec<u8> {
        format!("{height}:{}:1-1", "f".repeat(HUGE_MEMBER_HEX_DIGITS)).into_bytes()
    }

    /// A MiB of bytes for the lease key.
    pub(crate) fn huge_lease_value(&mut self) -> Vec<u8> {
        self.filler(HUGE_LEASE_BYTES)
    }

    /// A short value that is not a number.
    pub(crate) fn not_a_number(&mut self) -> Vec<u8> {
        let values: [&[u8]; 5] = [b"not-a-number", b"12abc", b"", b"1e999", b"\xff\xfe"];
        let mut value = values[self.rng.gen_range(0..values.len())].to_vec();
        // Unique per fault, so the removal recognises its own value.
        value.extend(format!(" chaos {}", self.rng.r#gen::<u32>()).into_bytes());
        value
    }

    /// A short value for a key of the wrong type.
    pub(crate) fn wrong_type_value(&mut self) -> Vec<u8> {
        format!("chaos garbage {}", self.rng.r#gen::<u64>()).into_bytes()
    }

    fn hex_id(&mut self) -> String {
        let bytes: [u8; 32] = self.rng.r#gen();
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// `length` bytes of a random 64-byte pattern repeated: as undecodable as random bytes, and
    /// made in no time, so garbage at the next height lands before the leader gets there.
    fn filler(&mut self, length: usize) -> Vec<u8> {
        let mut filler = self.bytes(64).repeat(length.div_ceil(64));
        filler.truncate(length);
        filler
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        let mut bytes = vec![0_u8; length];
        self.rng.fill(&mut bytes[..]);
        bytes
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use poa_ports::ChainId;

    fn head() -> SealedBlock {
        let transactions = Vec::new();
        SealedBlock {
            block: Block {
                header: Header {
                    chain_id: ChainId::new(7),
                    height: BlockHeight::new(10),
                    parent_id: BlockId::from_bytes([1; 32]),
                    timestamp: Timestamp::from_unix_millis(1_000),
                    transactions_root: transactions_root(&transactions),
                    transaction_count: 0,
                },
                transactions,
            },
            seal: Seal::Authority(Signature::from_bytes([3; 64])),
        }
    }

    #[test]
    fn forged_block__when_built_on_the_head__then_decodes_to_a_block_of_its_fields_on_that_parent()
    {
        // given
        let head = head();

        // when
        let fields = Forge::new(5).forged_block(&head, 11, head.id());
        let decoded = SealedBlock::decode(&fields.data).unwrap();

        // then: as well-formed as an honest block: the id, height, parent and chain agree
        assert_eq!(decoded.id().to_hex(), fields.id);
        assert_eq!(decoded.height().get(), 11);
        assert_eq!(decoded.block.header.parent_id, head.id());
        assert_eq!(decoded.block.header.chain_id, head.block.header.chain_id);
        assert!(decoded.block.transactions_match_header());
        assert!(matches!(decoded.seal, Seal::Authority(_)));
    }

    #[test]
    fn forge__when_seeded_twice_with_one_salt__then_writes_the_same_bytes() {
        // given
        let head = head();

        // when
        let first = Forge::new(9).forged_block(&head, 40, BlockId::from_bytes([2; 32]));
        let second = Forge::new(9).forged_block(&head, 40, BlockId::from_bytes([2; 32]));

        // then
        assert_eq!(first, second);
    }

    #[test]
    fn fields_disagreeing__when_stored_above_the_head__then_the_data_is_the_head_at_its_own_height()
    {
        // given
        let head = head();

        // when
        let fields = Forge::fields_disagreeing(&head, 12);
        let decoded = SealedBlock::decode(&fields.data).unwrap();

        // then
        assert_eq!(decoded.id().to_hex(), fields.id);
        assert_ne!(decoded.height().get(), fields.height);
    }

    #[test]
    fn undecodable_entry__when_decoded__then_is_no_sealed_block() {
        // given / when
        let fields = Forge::new(1).undecodable_entry(5);

        // then
        assert!(SealedBlock::decode(&fields.data).is_err());
    }
}

//! The chain's wire form of a sealed block ([`BlockCodec`]), written by hand: a magic and
//! version, the header's fields big-endian in declaration order, each transaction as a `u32`
//! length and its bytes (as many as the header counts), and the 64-byte seal; nothing after it.
//!
//! The shared log stores these bytes and hands them to every producer to decode: they are
//! untrusted, so decoding checks every length against what is left before it allocates, and
//! never panics.

use poa_ports::{BlockCodec, BlockCodecError, Transaction};

use crate::block::{FuelBlock, FuelStyleChain, SealedFuelBlock};
use crate::header::{FuelHeader, Tai64};

/// The first bytes of every encoded block: the chain and the layout's version.
const MAGIC: &[u8; 4] = b"FSC\x01";

impl BlockCodec for FuelStyleChain {
    fn encode_block(block: &SealedFuelBlock) -> Vec<u8> {
        let header = &block.block.header;
        let transaction_bytes: usize = block
            .block
            .transactions
            .iter()
            .map(|transaction| 4 + transaction.as_bytes().len())
            .sum();
        let mut bytes = Vec::with_capacity(MAGIC.len() + 82 + transaction_bytes + 64);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&header.height.to_be_bytes());
        bytes.extend_from_slice(&header.prev_root);
        bytes.extend_from_slice(&header.time.0.to_be_bytes());
        bytes.extend_from_slice(&header.application_hash);
        bytes.extend_from_slice(&header.transactions_count.to_be_bytes());
        bytes.extend_from_slice(&header.consensus_parameters_version.to_be_bytes());
        for transaction in &block.block.transactions {
            // A block's transactions are counted by a u16 and each is far below 4 GiB: the
            // producer builds no other, and decoding refuses what does not fit.
            let length = u32::try_from(transaction.as_bytes().len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(transaction.as_bytes());
        }
        bytes.extend_from_slice(&block.signature);
        bytes
    }

    fn decode_block(bytes: &[u8]) -> Result<SealedFuelBlock, BlockCodecError> {
        let mut reader = Reader { rest: bytes };
        if reader.array::<4>("magic")? != *MAGIC {
            return Err(refused(
                "not a fuel-style-chain block (wrong magic or version)",
            ));
        }
        let header = FuelHeader {
            height: u32::from_be_bytes(reader.array("height")?),
            prev_root: reader.array("prev_root")?,
            time: Tai64(u64::from_be_bytes(reader.array("time")?)),
            application_hash: reader.array("application_hash")?,
            transactions_count: u16::from_be_bytes(reader.array("transactions_count")?),
            consensus_parameters_version: u32::from_be_bytes(
                reader.array("consensus_parameters_version")?,
            ),
        };
        let mut transactions = Vec::new();
        for _ in 0..header.transactions_count {
            let length = u32::from_be_bytes(reader.array("transaction length")?);
            let length = usize::try_from(length)
                .map_err(|_| refused("a transaction length does not fit in memory"))?;
            transactions.push(Transaction::new(
                reader.take(length, "transaction")?.to_vec(),
            ));
        }
        let signature = reader.array("signature")?;
        if !reader.rest.is_empty() {
            return Err(refused("bytes after the signature"));
        }
        Ok(SealedFuelBlock {
            block: FuelBlock {
                header,
                transactions,
            },
            signature,
        })
    }
}

/// Reads fields off the front of untrusted bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `length` bytes, or an error naming `field` when fewer are left.
    fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], BlockCodecError> {
        if self.rest.len() < length {
            return Err(refused(&format!("truncated in the {field}")));
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], BlockCodecError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N, field)?);
        Ok(array)
    }
}

fn refused(reason: &str) -> BlockCodecError {
    BlockCodecError {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use crate::keys::AuthorityKey;
    use crate::signer::Secp256k1BlockSigner;
    use poa_ports::BlockSigner;

    fn sealed_block() -> SealedFuelBlock {
        let key = AuthorityKey::from_secret_bytes([3; 32]).unwrap();
        let genesis = SealedFuelBlock::genesis(&key.public_key(), 1);
        let transactions = vec![
            Transaction::new(b"transfer".to_vec()),
            Transaction::new(Vec::new()),
        ];
        let block = FuelBlock::build_on(
            genesis.header(),
            Tai64::from_unix_millis(5_000),
            1,
            transactions,
        )
        .unwrap();
        Secp256k1BlockSigner::new(key).seal(block).unwrap()
    }

    #[test]
    fn decode_block__when_encoded__then_gives_back_the_same_block() {
        // given
        let block = sealed_block();

        // when
        let decoded = FuelStyleChain::decode_block(&FuelStyleChain::encode_block(&block));

        // then
        assert_eq!(decoded.unwrap(), block);
    }

    #[test]
    fn decode_block__when_cut_anywhere_or_extended__then_refuses_without_panicking() {
        // given
        let bytes = FuelStyleChain::encode_block(&sealed_block());

        // when / then
        for end in 0..bytes.len() {
            assert!(
                FuelStyleChain::decode_block(&bytes[..end]).is_err(),
                "cut at {end}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(FuelStyleChain::decode_block(&longer).is_err());
    }

    #[test]
    fn decode_block__when_a_transaction_claims_more_bytes_than_sent__then_refuses() {
        // given: the first transaction's length (after the 86-byte header) says 4 GiB
        let mut bytes = FuelStyleChain::encode_block(&sealed_block());
        bytes[86..90].copy_from_slice(&u32::MAX.to_be_bytes());

        // when
        let decoded = FuelStyleChain::decode_block(&bytes);

        // then
        assert!(decoded.unwrap_err().reason.contains("transaction"));
    }
}

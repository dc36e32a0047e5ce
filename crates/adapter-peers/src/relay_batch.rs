//! The wire framing of a relay request (`POST /transactions/relay`): a version byte, then per
//! transaction a 4-byte big-endian length, the 8-byte big-endian wall-clock millisecond when a
//! process of the fleet first accepted it, and its bytes.
//!
//! The first-seen time travels with the transaction so that every pool ages it from the same
//! moment: a transaction expires everywhere at about the same time instead of being handed back
//! and forth with a fresh age. This module only frames bytes; the receiving pool decides what
//! it accepts.

use poa_ports::Timestamp;
use poa_ports::Transaction;

use crate::error::RelayBatchError;

/// The framing version this build writes and reads.
const VERSION: u8 = 1;
/// Bytes before a transaction's own bytes: its length and its first-seen time.
const ENTRY_HEADER_BYTES: usize = 4 + 8;

/// A transaction as one process relays it to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// When a process of the fleet first accepted it.
    pub first_seen: Timestamp,
}

impl RelayedTransaction {
    /// Bytes this entry adds to a batch.
    pub fn framed_len(&self) -> usize {
        ENTRY_HEADER_BYTES.saturating_add(self.transaction.as_bytes().len())
    }
}

/// Frames `entries` in order. An entry longer than `u32::MAX` bytes (never accepted: pools
/// bound transactions far below) ends the batch before it.
pub fn encode_relay_batch(entries: &[RelayedTransaction]) -> Vec<u8> {
    let bytes = entries
        .iter()
        .map(RelayedTransaction::framed_len)
        .sum::<usize>();
    let mut batch = Vec::with_capacity(bytes.saturating_add(1));
    batch.push(VERSION);
    for entry in entries {
        let transaction = entry.transaction.as_bytes();
        let Ok(length) = u32::try_from(transaction.len()) else {
            break;
        };
        batch.extend_from_slice(&length.to_be_bytes());
        batch.extend_from_slice(&entry.first_seen.as_unix_millis().to_be_bytes());
        batch.extend_from_slice(transaction);
    }
    batch
}

/// Splits a relay batch into its transactions, in order.
///
/// # Errors
///
/// [`RelayBatchError`] for an unknown version or a truncated entry: nothing of a broken batch
/// is accepted, since its sender can send it again.
pub fn decode_relay_batch(batch: &[u8]) -> Result<Vec<RelayedTransaction>, RelayBatchError> {
    let Some((&version, mut rest)) = batch.split_first() else {
        return Err(RelayBatchError {
            entry: 0,
            reason: "is missing: the batch has no version byte",
        });
    };
    if version != VERSION {
        return Err(RelayBatchError {
            entry: 0,
            reason: "has an unknown framing version",
        });
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let entry = entries.len();
        let truncated = RelayBatchError {
            entry,
            reason: "is truncated",
        };
        let Some((length, after_length)) = rest.split_first_chunk::<4>() else {
            return Err(truncated);
        };
        let Some((first_seen, after_time)) = after_length.split_first_chunk::<8>() else {
            return Err(truncated);
        };
        let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| RelayBatchError {
            entry,
            reason: "is longer than this platform can hold",
        })?;
        let Some((transaction, after_transaction)) = after_time.split_at_checked(length) else {
            return Err(truncated);
        };
        entries.push(RelayedTransaction {
            transaction: Transaction::new(transaction.to_vec()),
            first_seen: Timestamp::from_unix_millis(u64::from_be_bytes(*first_seen)),
        });
        rest = after_transaction;
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8], first_seen: u64) -> RelayedTransaction {
        RelayedTransaction {
            transaction: Transaction::new(bytes.to_vec()),
            first_seen: Timestamp::from_unix_millis(first_seen),
        }
    }

    #[test]
    fn decode_relay_batch__when_entries_were_encoded__then_returns_them_in_order() {
        // given
        let entries = vec![entry(b"one", 1), entry(b"", 2), entry(&[7; 300], u64::MAX)];

        // when
        let decoded = decode_relay_batch(&encode_relay_batch(&entries)).unwrap();

        // then
        assert_eq!(decoded, entries);
    }

    #[test]
    fn decode_relay_batch__when_the_batch_is_truncated_or_of_another_version__then_refuses_it() {
        // given
        let encoded = encode_relay_batch(&[entry(b"one", 1), entry(b"two", 2)]);
        let mut other_version = encoded.clone();
        other_version[0] = 2;

        for (batch, entry) in [
            (&encoded[..encoded.len() - 1], 1),
            (&encoded[..5], 0),
            (&[][..], 0),
            (&other_version[..], 0),
        ] {
            // when
            let error = decode_relay_batch(batch).unwrap_err();

            // then
            assert_eq!(error.entry, entry, "{error}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decode_relay_batch__for_any_bytes__then_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_relay_batch(&bytes);
        }
    }
}

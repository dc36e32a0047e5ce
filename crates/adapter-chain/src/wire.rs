//! The serde form of the `poa-ports` values a reference block carries (heights, ids, times,
//! the seal's signature). `poa-ports` knows no wire format, so the reference chain says here,
//! field by field, how its encoding writes them: each the way a derived newtype would, so the
//! bytes of a block are what they always were.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `with` module for a `poa-ports` newtype over `$inner`, written as the serde newtype
/// `$wire_name` (what a derive on the newtype itself would write).
macro_rules! newtype_wire {
    ($module:ident, $value:ty, $inner:ty, $wire_name:literal, $get:expr, $make:expr) => {
        pub(crate) mod $module {
            use super::*;

            #[derive(Serialize, Deserialize)]
            #[serde(rename = $wire_name)]
            struct Wire($inner);

            pub(crate) fn serialize<S: Serializer>(
                value: &$value,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                let get: fn(&$value) -> $inner = $get;
                Wire(get(value)).serialize(serializer)
            }

            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<$value, D::Error> {
                let make: fn($inner) -> $value = $make;
                Wire::deserialize(deserializer).map(|wire| make(wire.0))
            }
        }
    };
}

newtype_wire!(
    height,
    poa_ports::BlockHeight,
    u64,
    "BlockHeight",
    |value| value.get(),
    poa_ports::BlockHeight::new
);
newtype_wire!(
    chain_id,
    poa_ports::ChainId,
    u64,
    "ChainId",
    |value| value.get(),
    poa_ports::ChainId::new
);
newtype_wire!(
    timestamp,
    poa_ports::Timestamp,
    u64,
    "Timestamp",
    |value| value.as_unix_millis(),
    poa_ports::Timestamp::from_unix_millis
);
newtype_wire!(
    block_id,
    poa_ports::BlockId,
    [u8; 32],
    "BlockId",
    |value| *value.as_bytes(),
    poa_ports::BlockId::from_bytes
);
newtype_wire!(
    transactions_root,
    poa_ports::TransactionsRoot,
    [u8; 32],
    "TransactionsRoot",
    |value| *value.as_bytes(),
    poa_ports::TransactionsRoot::from_bytes
);

/// Transactions travel as a sequence of byte strings (each one string, not a sequence of
/// integers).
pub(crate) mod transactions {
    use poa_ports::Transaction;
    use serde::ser::SerializeSeq;

    use super::*;

    /// One transaction as one byte string.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_newtype_struct("Transaction", &ByteString(self.0))
        }
    }

    struct ByteString<'a>(&'a [u8]);

    impl Serialize for ByteString<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    #[derive(Deserialize)]
    #[serde(rename = "Transaction")]
    struct Owned(Vec<u8>);

    pub(crate) fn serialize<S: Serializer>(
        value: &[Transaction],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(value.len()))?;
        for transaction in value {
            seq.serialize_element(&Bytes(transaction.as_bytes()))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Transaction>, D::Error> {
        let owned: Vec<Owned> = Deserialize::deserialize(deserializer)?;
        Ok(owned
            .into_iter()
            .map(|owned| Transaction::new(owned.0))
            .collect())
    }
}

/// A signature travels as one byte string (serde derives arrays only up to 32 elements).
pub(crate) mod signature {
    use poa_ports::Signature;

    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Signature,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value.as_bytes())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Signature, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(deserializer)?;
        let array: [u8; 64] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| serde::de::Error::invalid_length(bytes.len(), &"64 bytes"))?;
        Ok(Signature::from_bytes(array))
    }
}

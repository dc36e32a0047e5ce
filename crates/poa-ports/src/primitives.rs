//! Newtypes for the values that cross port boundaries: heights, epochs, hashes and times.
//!
//! Raw integers and byte arrays never appear in a port signature; these types say what a
//! number means and keep arithmetic on it explicit (checked, never wrapping).

use std::fmt;
use std::str::FromStr;

/// Height of a block in the chain; genesis is height 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockHeight(u64);

impl BlockHeight {
    /// The height of the genesis block.
    pub const GENESIS: Self = Self(0);

    /// Wraps a raw height.
    pub const fn new(height: u64) -> Self {
        Self(height)
    }

    /// The raw height.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The height after this one, or `None` at `u64::MAX`.
    pub const fn next(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(next) => Some(Self(next)),
            None => None,
        }
    }

    /// The height before this one, or `None` at genesis.
    pub const fn previous(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(previous) => Some(Self(previous)),
            None => None,
        }
    }
}

impl fmt::Display for BlockHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Fencing epoch of a leadership: raised on every successful lease promotion, never lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(u64);

impl Epoch {
    /// Wraps a raw epoch.
    pub const fn new(epoch: u64) -> Self {
        Self(epoch)
    }

    /// The raw epoch.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifier of a chain; part of every header so blocks of one chain never verify on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChainId(u64);

impl ChainId {
    /// Wraps a raw chain id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The raw chain id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, as carried in block headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Wraps milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Error parsing a hex-encoded hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected_bytes} bytes of lowercase or uppercase hex")]
pub struct ParseHashError {
    /// How many bytes the hash has.
    pub expected_bytes: usize,
}

/// Defines a 32-byte hash newtype shown and parsed as hex.
macro_rules! hash_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes)
                    .map_err(|_| ParseHashError { expected_bytes: 32 })?;
                Ok(Self(bytes))
            }
        }
    };
}

hash_newtype!(
    /// Identity of a block: the SHA-256 hash of its encoded header.
    BlockId
);
hash_newtype!(
    /// Identity of a transaction: the SHA-256 hash of its bytes.
    TransactionId
);
hash_newtype!(
    /// Commitment to a block's ordered transactions (see `block::transactions_root`).
    TransactionsRoot
);

/// An ed25519 signature over a block id, made by the chain's authority key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps 64 raw bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn block_id__when_formatted_as_hex__then_parses_back() {
        let id = BlockId::from_bytes([0xab; 32]);
        assert_eq!(id.to_hex().len(), 64);
        assert_eq!(id.to_hex().parse::<BlockId>(), Ok(id));
    }

    #[test]
    fn block_id__when_hex_is_short__then_refuses() {
        assert!("abcd".parse::<BlockId>().is_err());
    }

    #[test]
    fn height__when_at_bounds__then_next_and_previous_are_checked() {
        assert_eq!(BlockHeight::GENESIS.previous(), None);
        assert_eq!(BlockHeight::new(u64::MAX).next(), None);
        assert_eq!(BlockHeight::new(7).next(), Some(BlockHeight::new(8)));
    }
}

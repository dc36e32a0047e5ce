//! The chain authority's secp256k1 key pair: [`AuthorityKey`] seals blocks,
//! [`AuthorityPublicKey`] checks seals. The same key on every producer of a fleet, as with the
//! reference chain, but a different signature scheme: ECDSA over secp256k1, as fuel-core's PoA
//! signs its blocks.

use std::fmt;

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::error::FuelChainError;

/// The authority's secret key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct AuthorityKey(SigningKey);

impl AuthorityKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// The key whose secret scalar is `secret` (32 bytes, big-endian).
    ///
    /// # Errors
    ///
    /// [`FuelChainError::InvalidSecretKey`] when `secret` is zero or not below the curve order.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Result<Self, FuelChainError> {
        SigningKey::from_bytes(&secret.into())
            .map(Self)
            .map_err(|_| FuelChainError::InvalidSecretKey)
    }

    /// The public half, which verifiers are configured with.
    pub fn public_key(&self) -> AuthorityPublicKey {
        AuthorityPublicKey(*self.0.verifying_key())
    }

    /// Signs `message` (SHA-256 of it, ECDSA, low-s), as `r ‖ s`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let signature: Signature = self.0.sign(message);
        signature.to_bytes().into()
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuthorityKey")
            .field(&self.public_key())
            .finish()
    }
}

/// The authority's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorityPublicKey(VerifyingKey);

impl AuthorityPublicKey {
    /// The compressed SEC1 encoding (33 bytes).
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        self.0.to_encoded_point(true).as_bytes().to_vec()
    }

    /// Whether `signature` (`r ‖ s`) is this key's signature over `message`. A high-s signature
    /// is refused: every block has exactly one valid seal encoding.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|signature| self.0.verify(message, &signature).is_ok())
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn verifies__when_signed_by_this_key__then_accepts_and_refuses_another_key_or_message() {
        // given
        let key = AuthorityKey::generate();
        let other = AuthorityKey::generate();
        let signature = key.sign(b"block id");

        // when / then
        assert!(key.public_key().verifies(b"block id", &signature));
        assert!(!other.public_key().verifies(b"block id", &signature));
        assert!(!key.public_key().verifies(b"block ie", &signature));
        assert!(!key.public_key().verifies(b"block id", &[0; 64]));
    }

    #[test]
    fn from_secret_bytes__when_zero__then_refuses() {
        assert!(matches!(
            AuthorityKey::from_secret_bytes([0; 32]),
            Err(FuelChainError::InvalidSecretKey)
        ));
        assert!(AuthorityKey::from_secret_bytes([7; 32]).is_ok());
    }

    #[test]
    fn debug__when_formatted__then_shows_no_secret() {
        let key = AuthorityKey::from_secret_bytes([7; 32]).unwrap();
        assert!(!format!("{key:?}").contains("0707"));
    }
}

//! [`SealCache`]: the authority seals a store's checks found valid, so that a block checked when
//! it was read from the shared log is not checked again when the store verifies it for import.
//!
//! Whether a seal is valid depends on the block id, the signature and the authority key alone,
//! so a remembered answer is the answer: a block whose id or signature differs in one bit is a
//! different pair and is checked. Only valid seals are remembered, at most [`SEALS_REMEMBERED`]
//! of them (the oldest go first). No I/O.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use poa_ports::{BlockId, Signature};

use crate::keys::AuthorityPublicKey;

/// How many valid seals a cache remembers: more than one read of the shared log returns (a
/// stream holds 1,000 entries by default), so a read's blocks are still remembered at import.
const SEALS_REMEMBERED: usize = 4096;

/// Valid seals of one authority key, shared by a store and the seal verifier of the same chain.
pub(crate) struct SealCache {
    authority: AuthorityPublicKey,
    remembered: Mutex<Remembered>,
}

impl std::fmt::Debug for SealCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealCache")
            .field("authority", &self.authority)
            .field("remembered", &self.lock().order.len())
            .finish()
    }
}

#[derive(Default)]
struct Remembered {
    seals: HashSet<(BlockId, Signature)>,
    /// The same pairs, oldest first.
    order: VecDeque<(BlockId, Signature)>,
}

impl SealCache {
    /// An empty cache of seals by `authority`.
    pub(crate) fn new(authority: AuthorityPublicKey) -> Self {
        Self {
            authority,
            remembered: Mutex::new(Remembered::default()),
        }
    }

    /// Whether the cache's authority signed `id` with `signature`; the key is asked only for a
    /// pair not found valid before.
    pub(crate) fn verifies(&self, id: BlockId, signature: &Signature) -> bool {
        let pair = (id, *signature);
        if self.lock().seals.contains(&pair) {
            return true;
        }
        if !self.authority.verifies(id.as_bytes(), signature) {
            return false;
        }
        let mut remembered = self.lock();
        if remembered.seals.insert(pair) {
            remembered.order.push_back(pair);
            if remembered.order.len() > SEALS_REMEMBERED
                && let Some(oldest) = remembered.order.pop_front()
            {
                remembered.seals.remove(&oldest);
            }
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many seals are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether this cache checks seals of `authority`.
    pub(crate) fn is_of(&self, authority: &AuthorityPublicKey) -> bool {
        self.authority == *authority
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use crate::Seal;
    use crate::genesis::ChainSpec;
    use crate::keys::AuthorityKey;
    use crate::signer::Ed25519BlockSigner;
    use crate::test_support::child_block;

    /// A signer with a fresh key, and the dev spec of that key.
    fn authority() -> (Ed25519BlockSigner, ChainSpec) {
        let key = AuthorityKey::generate();
        let spec = ChainSpec::dev(key.public_key());
        (Ed25519BlockSigner::new(key), spec)
    }

    /// The id and seal of the child of genesis holding `transaction`, sealed by `signer`.
    fn sealed_block(
        signer: &Ed25519BlockSigner,
        spec: &ChainSpec,
        transaction: &[u8],
    ) -> (BlockId, Signature) {
        let block = child_block(
            signer,
            &spec.genesis_block().block.header,
            &[transaction],
            |_| {},
        );
        let Seal::Authority(signature) = block.seal else {
            panic!("an authority seal: {:?}", block.seal);
        };
        (block.id(), signature)
    }

    #[test]
    fn verifies__when_a_valid_seal_was_remembered__then_a_forged_signature_for_its_id_is_still_refused()
     {
        // given
        let (signer, spec) = authority();
        let cache = SealCache::new(spec.authority);
        let (id, signature) = sealed_block(&signer, &spec, b"a");
        assert!(cache.verifies(id, &signature));
        let mut forged = *signature.as_bytes();
        forged[0] ^= 1;

        // when
        let forged_verifies = cache.verifies(id, &Signature::from_bytes(forged));

        // then
        assert!(!forged_verifies);
        assert!(cache.verifies(id, &signature));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn verifies__when_another_key_sealed_the_block__then_refuses_and_remembers_nothing() {
        // given
        let (_, spec) = authority();
        let cache = SealCache::new(spec.authority);
        let (other_signer, other_spec) = authority();
        let (id, signature) = sealed_block(&other_signer, &other_spec, b"a");

        // when
        let verifies = cache.verifies(id, &signature);

        // then
        assert!(!verifies);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn verifies__when_more_seals_than_it_remembers_are_valid__then_keeps_the_newest() {
        // given
        let (signer, spec) = authority();
        let cache = SealCache::new(spec.authority);

        // when
        for round in 0..SEALS_REMEMBERED + 3 {
            let (id, signature) = sealed_block(&signer, &spec, &round.to_be_bytes());
            assert!(cache.verifies(id, &signature));
        }

        // then
        assert_eq!(cache.len(), SEALS_REMEMBERED);
    }
}

//! Errors of the example chain's own API (the ports' errors come from `poa-ports`).

/// What the chain's constructors refuse.
#[derive(Debug, thiserror::Error)]
pub enum FuelChainError {
    /// The secret key bytes are not a secp256k1 secret scalar.
    #[error(
        "the authority secret key is not a valid secp256k1 secret: zero or not below the curve order"
    )]
    InvalidSecretKey,
}

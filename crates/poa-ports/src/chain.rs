//! The embedder's chain, as the ports and the domain service see it: three types the embedder
//! brings (a header, an unsealed block, a sealed block) and the few facts about them the
//! producer reads.
//!
//! The producer carries the embedder's blocks without owning their meaning, the way a
//! consensus library carries its application's log entries: it never builds, hashes, signs,
//! encodes or validates a block itself. Building is [`crate::BlockProducer`]'s, sealing
//! [`crate::BlockSigner`]'s, validation [`crate::SealVerifier`]'s and
//! [`crate::BlockImporter`]'s, storage and publication the adapters'. What it reads is only
//! what it decides with: where a block sits (height, id, parent id), when the head was dated
//! (so no block is dated before its parent or far from the clock), and how many transactions a
//! produced block included (so an instant leader does not spin on empty blocks).

use crate::primitives::{BlockHeight, BlockId, Timestamp};

/// A chain the producer can produce and follow: the embedder's block types, named once so every
/// port and the service agree on them. Usually a unit type the embedder declares for the
/// purpose; it is never instantiated.
///
/// ```
/// use poa_ports::{BlockHeight, BlockId, Chain, HeaderView, SealedBlockView, Timestamp};
///
/// /// The embedder's header: its own fields, its own id.
/// #[derive(Clone)]
/// struct MyHeader {
///     number: u32,
///     parent: [u8; 32],
///     hash: [u8; 32],
///     unix_seconds: u64,
/// }
///
/// /// The embedder's block, before and after it is sealed.
/// #[derive(Clone)]
/// struct MyBlock {
///     header: MyHeader,
///     transactions: Vec<Vec<u8>>,
/// }
/// #[derive(Clone)]
/// struct MySealedBlock {
///     block: MyBlock,
///     signature: Vec<u8>,
/// }
///
/// struct MyChain;
///
/// impl Chain for MyChain {
///     type Header = MyHeader;
///     type Block = MyBlock;
///     type SealedBlock = MySealedBlock;
/// }
///
/// impl HeaderView for MyHeader {
///     fn height(&self) -> BlockHeight {
///         BlockHeight::new(u64::from(self.number))
///     }
///     fn id(&self) -> BlockId {
///         BlockId::from_bytes(self.hash)
///     }
///     fn timestamp(&self) -> Timestamp {
///         Timestamp::from_unix_millis(self.unix_seconds.saturating_mul(1_000))
///     }
/// }
///
/// impl SealedBlockView for MySealedBlock {
///     fn height(&self) -> BlockHeight {
///         self.block.header.height()
///     }
///     fn id(&self) -> BlockId {
///         self.block.header.id()
///     }
///     fn parent_id(&self) -> BlockId {
///         BlockId::from_bytes(self.block.header.parent)
///     }
///     fn transaction_count(&self) -> usize {
///         self.block.transactions.len()
///     }
/// }
/// ```
///
/// The embedder's adapters then implement the ports for it (`impl BlockSigner<MyChain> for
/// MySigner`), and `poa-core` runs a `ProductionService<MyChain>` over them.
pub trait Chain: Send + Sync + 'static {
    /// A block's header: what the producer builds the next block on.
    type Header: HeaderView;
    /// A block as the producer built it, before it is sealed: handed from
    /// [`crate::BlockProducer`] to [`crate::BlockSigner`] and never looked into.
    type Block: Send + 'static;
    /// A block with its seal: what is verified, published to the shared log, committed and
    /// served to peers.
    type SealedBlock: SealedBlockView;
}

/// What the producer reads from a header: the local head's place in the chain and its date.
pub trait HeaderView: Send + Sync + 'static {
    /// The block's height; genesis is [`BlockHeight::GENESIS`].
    fn height(&self) -> BlockHeight;

    /// The block's id, as the next block names it for its parent.
    fn id(&self) -> BlockId;

    /// When the block was built. The producer dates the next block no earlier than this.
    fn timestamp(&self) -> Timestamp;
}

/// What the producer and the shared log read from a sealed block: its place in the chain, and
/// how much it carried. `Clone`, because the shared log hands one decoded copy of a block to
/// every height it is needed at.
pub trait SealedBlockView: Clone + Send + Sync + 'static {
    /// The block's height.
    fn height(&self) -> BlockHeight;

    /// The block's id (the id its header commits to).
    fn id(&self) -> BlockId;

    /// The id of the block at the height below, which this block extends: the shared log hands
    /// back only blocks that extend the one before them.
    fn parent_id(&self) -> BlockId;

    /// How many transactions the block carries.
    fn transaction_count(&self) -> usize;
}

/// Error decoding a sealed block from bytes.
#[derive(Debug, thiserror::Error)]
#[error("undecodable sealed block: {reason}")]
pub struct BlockCodecError {
    /// What the decoder reported.
    pub reason: String,
}

/// The wire form of a chain's sealed blocks, for the adapters that store or transfer them (the
/// shared block log, peers serving history). The domain service never encodes a block, so this
/// is not part of [`Chain`]: a chain that only ever runs in memory need not have a codec.
///
/// The bytes are the embedder's own: the log stores them next to the header view's height and
/// id, and hands back only blocks whose decoding agrees with both, and which the chain's
/// [`crate::SealVerifier`] accepts.
pub trait BlockCodec: Chain {
    /// Encodes a sealed block. The same block always gives the same bytes.
    fn encode_block(block: &Self::SealedBlock) -> Vec<u8>;

    /// Decodes bytes written by [`Self::encode_block`]. The bytes are untrusted (anyone who
    /// reaches a coordination node can write them): decoding never panics.
    ///
    /// # Errors
    ///
    /// [`BlockCodecError`] when the bytes are not one complete, well-formed sealed block.
    fn decode_block(bytes: &[u8]) -> Result<Self::SealedBlock, BlockCodecError>;
}

//! The wire framing of a batch of encoded sealed blocks, as a producer serves a range of its
//! chain to a peer catching up (`GET /blocks/raw`): each block is its chain's encoding
//! ([`poa_ports::BlockCodec::encode_block`]) behind a 4-byte big-endian length.
//!
//! Framing each block on its own lets a reader keep the blocks before an undecodable one. This
//! module only frames bytes; it never decides whether a block is acceptable (the importer
//! verifies every block it is given).

/// Bytes of the length prefix of one frame.
const LENGTH_BYTES: usize = 4;

/// A batch whose framing is broken (truncated or a length that does not fit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed block batch: frame {frame} {reason}")]
pub struct BlockBatchError {
    /// Index of the first bad frame.
    pub frame: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Frames each encoded block behind its 4-byte big-endian length. A block longer than
/// `u32::MAX` bytes (never produced: blocks are bounded far below) ends the batch before it.
pub fn encode_block_batch<'a>(encoded_blocks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut batch = Vec::new();
    for block in encoded_blocks {
        let Ok(length) = u32::try_from(block.len()) else {
            break;
        };
        batch.extend_from_slice(&length.to_be_bytes());
        batch.extend_from_slice(block);
    }
    batch
}

/// Splits a batch into the encoded blocks it frames, in order.
///
/// # Errors
///
/// [`BlockBatchError`] when a frame is truncated; the frames before it are lost too, because
/// a broken framing means the whole answer cannot be trusted to be what the peer meant.
pub fn split_block_batch(batch: &[u8]) -> Result<Vec<&[u8]>, BlockBatchError> {
    let mut frames = Vec::new();
    let mut rest = batch;
    while !rest.is_empty() {
        let frame = frames.len();
        let Some((prefix, after_prefix)) = rest.split_first_chunk::<LENGTH_BYTES>() else {
            return Err(BlockBatchError {
                frame,
                reason: "has a truncated length",
            });
        };
        let length = usize::try_from(u32::from_be_bytes(*prefix)).map_err(|_| BlockBatchError {
            frame,
            reason: "is longer than this platform can hold",
        })?;
        let Some((block, after_block)) = after_prefix.split_at_checked(length) else {
            return Err(BlockBatchError {
                frame,
                reason: "is truncated",
            });
        };
        frames.push(block);
        rest = after_block;
    }
    Ok(frames)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn split_block_batch__when_frames_were_encoded__then_returns_them_in_order() {
        // given
        let blocks: [&[u8]; 3] = [b"one", b"", b"three"];

        // when
        let batch = encode_block_batch(blocks);

        // then
        assert_eq!(split_block_batch(&batch), Ok(blocks.to_vec()));
    }

    #[test]
    fn split_block_batch__when_the_last_frame_is_truncated__then_names_it() {
        // given
        let mut batch = encode_block_batch([b"one".as_slice(), b"three".as_slice()]);
        batch.pop();

        // when
        let split = split_block_batch(&batch);

        // then
        assert_eq!(
            split,
            Err(BlockBatchError {
                frame: 1,
                reason: "is truncated"
            })
        );
    }

    proptest! {
        #[test]
        fn split_block_batch__for_any_bytes__then_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_block_batch(&bytes);
        }
    }
}

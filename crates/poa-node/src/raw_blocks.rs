//! Encoded sealed blocks for peers catching up beyond the Redis streams' window:
//! `GET /blocks/{height}/raw` (one block) and `GET /blocks/raw?from=<height>&limit=<n>` (a
//! bounded range, framed by [`adapter_peers::encode_block_batch`]). Both serve only the local
//! chain, which holds committed blocks only; the reader verifies every block anyway.
//!
//! Answers are streamed in chunks: a block is read and encoded when the connection can take
//! more, so a slow reader holds one block and the connection's bounded write buffer, not the
//! whole answer. Both answers are bulk
//! transfers: each holds one of the API's bulk permits until its body is done or dropped, and
//! past the bound the answer is `503` with `Retry-After`.

use std::sync::Arc;

use adapter_chain::{RedbBlockImporter, StorageError};
use adapter_peers::encode_block_batch;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use poa_ports::BlockHeight;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::{ApiState, block_not_found, requested_height, storage_failure};
use crate::http_error::{ApiError, ErrorCode};

/// The most blocks one range request returns.
pub(crate) const MAX_RAW_BLOCKS: u64 = 256;
/// A range answer stops adding blocks once it carries this many bytes (at least one block).
const MAX_RAW_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// The content type of every raw answer.
const OCTET_STREAM: &str = "application/octet-stream";
/// Bytes of one chunk of a raw answer handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;
/// What a refused bulk transfer tells its client to wait, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

/// Query of `GET /blocks/raw`.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    /// The first height.
    from: u64,
    /// How many blocks at most [default and cap: 256].
    limit: Option<u64>,
}

/// One block as `SealedBlock::encode()` bytes; 404 for a height not held, 503 past the bulk
/// bound.
pub(crate) async fn block_at(
    State(state): State<ApiState>,
    height: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let height = requested_height(height)?;
    let Some(permit) = bulk_permit(&state.bulk) else {
        return Ok(busy());
    };
    match state.chain.block_at(height).await {
        Ok(Some(block)) => Ok(stream_answer(RangeStream {
            chain: state.chain.clone(),
            next: None,
            left: 0,
            sent: 0,
            pending: block.encode(),
            offset: 0,
            _permit: permit,
        })),
        Ok(None) => Err(block_not_found(height)),
        Err(error) => Err(storage_failure(&error)),
    }
}

/// Consecutive blocks from `from`, at most `limit` (capped) and about 8 MiB, streamed; 404 when
/// `from` is not held, 503 past the bulk bound.
pub(crate) async fn blocks_from(
    State(state): State<ApiState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::invalid_query(&rejection))?;
    let Some(permit) = bulk_permit(&state.bulk) else {
        return Ok(busy());
    };
    let limit = query
        .limit
        .unwrap_or(MAX_RAW_BLOCKS)
        .clamp(1, MAX_RAW_BLOCKS);
    let from = BlockHeight::new(query.from);
    // The first block decides between 404 and a stream, before any byte is sent.
    let first = match state.chain.block_at(from).await {
        Ok(Some(block)) => frame(&block.encode()),
        Ok(None) => return Err(block_not_found(from)),
        Err(error) => return Err(storage_failure(&error)),
    };
    Ok(stream_answer(RangeStream {
        chain: state.chain.clone(),
        next: from.next(),
        left: limit - 1,
        sent: first.len(),
        pending: first,
        offset: 0,
        _permit: permit,
    }))
}

/// A streamed `application/octet-stream` answer.
fn stream_answer(range: RangeStream) -> Response {
    let body = Body::from_stream(futures::stream::unfold(range, RangeStream::next_chunk));
    ([(header::CONTENT_TYPE, OCTET_STREAM)], body).into_response()
}

/// What is left to stream of a raw answer: the rest of the current block's bytes, then the
/// blocks after it. Holds its bulk permit until dropped.
struct RangeStream {
    chain: RedbBlockImporter,
    /// The next height to read once `pending` is sent; `None` = none.
    next: Option<BlockHeight>,
    /// Blocks still to read.
    left: u64,
    /// Bytes of the answer so far, the pending block included.
    sent: usize,
    /// The current block's bytes, sent from `offset` in chunks.
    pending: Vec<u8>,
    offset: usize,
    _permit: OwnedSemaphorePermit,
}

impl RangeStream {
    /// The next chunk: a copy of at most [`CHUNK_BYTES`] of the pending block (so the
    /// connection's write buffer never pins a whole block), then the next block's frame, until
    /// the limit, the byte budget, or the first height not held. A storage failure ends the
    /// answer with an error, which the reader sees as a truncated batch and refuses whole.
    async fn next_chunk(mut self) -> Option<(Result<Vec<u8>, StorageError>, Self)> {
        if self.offset >= self.pending.len() {
            if self.left == 0 || self.sent >= MAX_RAW_BATCH_BYTES {
                return None;
            }
            let height = self.next?;
            match self.chain.block_at(height).await {
                Ok(Some(block)) => {
                    self.pending = frame(&block.encode());
                    self.offset = 0;
                    self.sent = self.sent.saturating_add(self.pending.len());
                    self.left -= 1;
                    self.next = height.next();
                }
                Ok(None) => return None,
                Err(error) => {
                    self.left = 0;
                    self.pending = Vec::new();
                    return Some((Err(error), self));
                }
            }
        }
        let end = self
            .offset
            .saturating_add(CHUNK_BYTES)
            .min(self.pending.len());
        let chunk = self
            .pending
            .get(self.offset..end)
            .unwrap_or_default()
            .to_vec();
        self.offset = end;
        Some((Ok(chunk), self))
    }
}

/// One block behind its length, exactly as a whole batch frames it.
fn frame(encoded: &[u8]) -> Vec<u8> {
    encode_block_batch(std::iter::once(encoded))
}

/// One of the API's bulk permits, if one is free.
pub(crate) fn bulk_permit(bulk: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    Arc::clone(bulk).try_acquire_owned().ok()
}

/// 503 with `Retry-After`: every bulk permit is taken.
pub(crate) fn busy() -> Response {
    (
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
        ApiError::new(
            ErrorCode::TooManyBulkRequests,
            "too many bulk transfers at once (--http-max-bulk-requests): retry later",
        ),
    )
        .into_response()
}

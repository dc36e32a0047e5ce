//! Encoded sealed blocks for peers catching up beyond the Redis streams' window:
//! `GET /blocks/{height}/raw` (one block) and `GET /blocks/raw?from=<height>&limit=<n>` (a
//! bounded range, framed by [`poa_ports::encode_block_batch`]). Both serve only the local
//! chain, which holds committed blocks only; the reader verifies every block anyway.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use poa_ports::{BlockHeight, encode_block_batch};
use serde::Deserialize;

use crate::http::{ApiState, storage_failure};

/// The most blocks one range request returns.
pub(crate) const MAX_RAW_BLOCKS: u64 = 256;
/// A range answer stops adding blocks once it carries this many bytes (at least one block).
const MAX_RAW_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// The content type of every raw answer.
const OCTET_STREAM: &str = "application/octet-stream";

/// Query of `GET /blocks/raw`.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    /// The first height.
    from: u64,
    /// How many blocks at most [default and cap: 256].
    limit: Option<u64>,
}

/// One block as `SealedBlock::encode()` bytes; 404 for a height not held.
pub(crate) async fn block_at(State(state): State<ApiState>, Path(height): Path<u64>) -> Response {
    match state.chain.block_at(BlockHeight::new(height)).await {
        Ok(Some(block)) => ([(header::CONTENT_TYPE, OCTET_STREAM)], block.encode()).into_response(),
        Ok(None) => not_held(),
        Err(error) => storage_failure(&error),
    }
}

/// Consecutive blocks from `from`, at most `limit` (capped) and about 8 MiB; 404 when `from`
/// is not held.
pub(crate) async fn blocks_from(
    State(state): State<ApiState>,
    Query(query): Query<RangeQuery>,
) -> Response {
    let limit = query
        .limit
        .unwrap_or(MAX_RAW_BLOCKS)
        .clamp(1, MAX_RAW_BLOCKS);
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let mut bytes: usize = 0;
    let mut height = BlockHeight::new(query.from);
    for _ in 0..limit {
        if bytes >= MAX_RAW_BATCH_BYTES {
            break;
        }
        match state.chain.block_at(height).await {
            Ok(Some(block)) => {
                let block = block.encode();
                bytes = bytes.saturating_add(block.len());
                encoded.push(block);
            }
            Ok(None) => break,
            Err(error) => return storage_failure(&error),
        }
        let Some(next) = height.next() else {
            break;
        };
        height = next;
    }
    if encoded.is_empty() {
        return not_held();
    }
    let batch = encode_block_batch(encoded.iter().map(Vec::as_slice));
    ([(header::CONTENT_TYPE, OCTET_STREAM)], batch).into_response()
}

fn not_held() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": "no block at this height" })),
    )
        .into_response()
}

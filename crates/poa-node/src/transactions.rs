//! Transaction submission: `POST /transactions` from clients, and `POST /transactions/relay`
//! from the other processes of the fleet. Both refuse what the local chain already committed
//! and hand the rest to the pool; only a client's submission is relayed on, so a transaction
//! travels one hop and relays cannot loop.

use std::collections::HashSet;

use adapter_chain::{PoolError, SystemClock};
use adapter_peers::{RELAYED_HEADER, RelayedTransaction, decode_relay_batch};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use poa_ports::{Clock, Transaction, TransactionId};
use serde_json::json;

use crate::http::{ApiState, is_leader, storage_failure};
use crate::raw_blocks::{bulk_permit, busy};

/// The largest relay request read: a sender's batch stops at 1 MiB plus one transaction of at
/// most 64 KiB, with 12 bytes of framing per transaction.
pub(crate) const MAX_RELAY_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Accepts a transaction into the pool. A process that does not lead also relays it to its
/// peers (a submission that carries the relayed header, from an earlier release, is not
/// relayed again), so it reaches the leader.
pub(crate) async fn submit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let transaction = Transaction::new(body.to_vec());
    let relayed = headers.contains_key(RELAYED_HEADER);
    let id = transaction.id();
    match state.chain.is_committed(id).await {
        Ok(true) => {
            return (
                StatusCode::CONFLICT,
                axum::Json(json!({ "id": id.to_hex(), "error": "transaction already committed" })),
            )
                .into_response();
        }
        Ok(false) => {}
        Err(error) => return storage_failure(&error),
    }
    let refused = |status: StatusCode, error: &PoolError| {
        (
            status,
            axum::Json(json!({ "id": id.to_hex(), "error": error.to_string() })),
        )
            .into_response()
    };
    let relay = state
        .relay
        .as_ref()
        .filter(|_| !relayed && !is_leader(&state));
    match state.pool.submit(transaction.clone()) {
        Ok(id) => {
            if let Some(relay) = relay {
                relay.relay(&RelayedTransaction {
                    transaction,
                    first_seen: SystemClock.now(),
                });
            }
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "id": id.to_hex() })),
            )
                .into_response()
        }
        Err(error @ PoolError::TooLarge { .. }) => refused(StatusCode::PAYLOAD_TOO_LARGE, &error),
        Err(error @ PoolError::Full) => refused(StatusCode::TOO_MANY_REQUESTS, &error),
        Err(error @ PoolError::Duplicate) => refused(StatusCode::CONFLICT, &error),
        Err(error @ PoolError::Empty) => refused(StatusCode::BAD_REQUEST, &error),
    }
}

/// Accepts a batch relayed by another process: each transaction the local chain has not
/// committed goes to the pool. Answers 200 with how many were accepted, already pending,
/// already committed or refused by the pool (full, too large, empty); 400 for a broken batch,
/// 413 past [`MAX_RELAY_BODY_BYTES`]. A batch is a bulk transfer: past the bound it is refused
/// (503 with `Retry-After`) before its body is read.
pub(crate) async fn accept_relayed(State(state): State<ApiState>, body: Body) -> Response {
    let Some(_permit) = bulk_permit(&state.bulk) else {
        return busy();
    };
    let body = match axum::body::to_bytes(body, MAX_RELAY_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({ "error": format!("relay batch unreadable or over {MAX_RELAY_BODY_BYTES} bytes: {error}") })),
            )
                .into_response();
        }
    };
    let entries = match decode_relay_batch(&body) {
        Ok(entries) => entries,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": error.to_string() })),
            )
                .into_response();
        }
    };
    let ids: Vec<TransactionId> = entries.iter().map(|entry| entry.transaction.id()).collect();
    let committed: HashSet<TransactionId> = match state.chain.committed_among(ids.clone()).await {
        Ok(committed) => committed,
        Err(error) => return storage_failure(&error),
    };
    let (mut accepted, mut known, mut refused) = (0_usize, 0_usize, 0_usize);
    for (entry, id) in entries.into_iter().zip(&ids) {
        if committed.contains(id) {
            continue;
        }
        match state.pool.submit(entry.transaction) {
            Ok(_) => accepted += 1,
            Err(PoolError::Duplicate) => known += 1,
            Err(PoolError::Full | PoolError::TooLarge { .. } | PoolError::Empty) => refused += 1,
        }
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "accepted": accepted,
            "known": known,
            "committed": committed.len(),
            "refused": refused,
        })),
    )
        .into_response()
}

//! Transaction submission: `POST /transactions` from clients, and `POST /transactions/relay`
//! from the other processes of the fleet. Both refuse what the local chain already committed
//! and hand the rest to the pool; a client's submission is relayed on to every peer at once,
//! whichever process accepts it, and a relayed one is not (the relay's own sweep sends again
//! what stays pending), so relays cannot loop.
//!
//! A commit may land between the committed check and the pool: both handlers check again after
//! the pool took a transaction and drop it if a block committed it meanwhile, so no pool keeps
//! (and no later leader includes) a committed transaction.

use std::collections::HashSet;

use adapter_chain::{MemoryTransactionPool, PoolError, SystemClock};
use adapter_peers::{PendingTransactions, RELAYED_HEADER, RelayedTransaction, decode_relay_batch};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use poa_ports::{Clock, Timestamp, Transaction, TransactionId};
use serde_json::json;

use crate::http::{ApiState, storage_failure};
use crate::raw_blocks::{bulk_permit, busy};

/// The largest relay request read: a sender's batch stops at 1 MiB plus one transaction of at
/// most 64 KiB, with 12 bytes of framing per transaction.
pub(crate) const MAX_RELAY_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Accepts a transaction into the pool and relays it to every peer (a submission that carries
/// the relayed header, from an earlier release, is not relayed again), so every process holds
/// it whichever leads next.
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
    let relay = state.relay.as_ref().filter(|_| !relayed);
    match state.pool.submit(transaction.clone()) {
        Ok(id) => {
            match state.chain.is_committed(id).await {
                Ok(false) => {}
                Ok(true) => {
                    state.pool.remove_committed(&[id]);
                    return (
                        StatusCode::CONFLICT,
                        axum::Json(
                            json!({ "id": id.to_hex(), "error": "transaction already committed" }),
                        ),
                    )
                        .into_response();
                }
                Err(error) => return storage_failure(&error),
            }
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
        // A client's submission is first seen now: it cannot have expired.
        Err(error @ PoolError::Expired) => refused(StatusCode::GONE, &error),
    }
}

/// Accepts a batch relayed by another process: each transaction the local chain has not
/// committed goes to the pool with its first-seen time. Answers 200 with how many were
/// accepted, already pending, already committed or refused by the pool (full, too large,
/// empty, expired); 400 for a broken batch,
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
    let (mut accepted, mut known, mut refused) = (Vec::new(), 0_usize, 0_usize);
    for (entry, id) in entries.into_iter().zip(&ids) {
        if committed.contains(id) {
            continue;
        }
        match state
            .pool
            .submit_relayed(entry.transaction, entry.first_seen)
        {
            Ok(id) => accepted.push(id),
            Err(PoolError::Duplicate) => known += 1,
            Err(
                PoolError::Full
                | PoolError::TooLarge { .. }
                | PoolError::Empty
                | PoolError::Expired,
            ) => refused += 1,
        }
    }
    match state.chain.committed_among(accepted.clone()).await {
        Ok(committed_meanwhile) if committed_meanwhile.is_empty() => {}
        Ok(committed_meanwhile) => {
            let committed_meanwhile: Vec<TransactionId> = committed_meanwhile.into_iter().collect();
            state.pool.remove_committed(&committed_meanwhile);
        }
        Err(error) => return storage_failure(&error),
    }
    let accepted = accepted.len();
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

/// The local pool as the relay reads it, to send again what stays pending.
pub(crate) struct PoolPending(pub(crate) MemoryTransactionPool);

impl PendingTransactions for PoolPending {
    fn first_seen_by(&self, cutoff: Timestamp, max: usize) -> Vec<RelayedTransaction> {
        self.0
            .first_seen_by(cutoff, max)
            .into_iter()
            .map(|(transaction, first_seen)| RelayedTransaction {
                transaction,
                first_seen,
            })
            .collect()
    }
}

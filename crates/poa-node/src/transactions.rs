//! Transaction submission: `POST /transactions` from clients, and `POST /transactions/relay`
//! from the other processes of the fleet; and what a submitter asks afterwards,
//! `GET /transactions/{id}`, answered from this process's chain and pool. Both refuse what the local chain already committed
//! and hand the rest to the pool; a client's submission is relayed on to every peer at once,
//! whichever process accepts it, and a relayed one is not (the relay's own sweep sends again
//! what stays pending), so relays cannot loop.
//!
//! A commit may land between the committed check and the pool: both handlers check again after
//! the pool took a transaction and drop it if a block committed it meanwhile, so no pool keeps
//! (and no later leader includes) a committed transaction.

use std::collections::HashSet;
use std::str::FromStr;

use adapter_chain::{MemoryTransactionPool, PoolError, SystemClock};
use adapter_peers::{PendingTransactions, RELAYED_HEADER, RelayedTransaction, decode_relay_batch};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use poa_ports::Transaction;
use poa_ports::{Clock, Timestamp, TransactionId};
use serde_json::json;

use crate::http::{ApiState, storage_failure};
use crate::http_error::{ApiError, ErrorCode};
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| unread_transaction(&rejection, &state))?;
    let transaction = Transaction::new(body.to_vec());
    let relayed = headers.contains_key(RELAYED_HEADER);
    let id = transaction.id();
    let committed = || {
        ApiError::new(
            ErrorCode::TransactionCommitted,
            "transaction already committed",
        )
        .with_context("id", id.to_hex())
    };
    match state.chain.is_committed(id).await {
        Ok(true) => return Err(committed()),
        Ok(false) => {}
        Err(error) => return Err(storage_failure(&error)),
    }
    let refused = |code: ErrorCode, error: &PoolError| {
        Err(ApiError::new(code, error.to_string()).with_context("id", id.to_hex()))
    };
    let relay = state.relay.as_ref().filter(|_| !relayed);
    match state.pool.submit(transaction.clone()) {
        Ok(id) => {
            match state.chain.is_committed(id).await {
                Ok(false) => {}
                Ok(true) => {
                    state.pool.remove_committed(&[id]);
                    return Err(committed());
                }
                Err(error) => return Err(storage_failure(&error)),
            }
            if let Some(relay) = relay {
                relay.relay(&RelayedTransaction {
                    transaction,
                    first_seen: SystemClock.now(),
                });
            }
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({ "id": id.to_hex() })),
            )
                .into_response())
        }
        Err(error @ PoolError::TooLarge { .. }) => refused(ErrorCode::TransactionTooLarge, &error),
        Err(error @ PoolError::Full) => refused(ErrorCode::PoolFull, &error),
        Err(error @ PoolError::Duplicate) => refused(ErrorCode::TransactionPending, &error),
        Err(error @ PoolError::Empty) => refused(ErrorCode::EmptyTransaction, &error),
        // A client's submission is first seen now: it cannot have expired.
        Err(error @ PoolError::Expired) => refused(ErrorCode::TransactionExpired, &error),
    }
}

/// Where a transaction stands in this process: included at a height of its chain, pending in
/// its pool (with when every pool drops it), or unknown here (404). The chain is read again
/// after the pool, so a block committing it between the two reads is never answered unknown.
pub(crate) async fn status(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let text = id.map(|Path(text)| text).unwrap_or_default();
    let id = TransactionId::from_str(&text).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidTransactionId,
            format!(
                "a transaction id is 64 hex characters, as POST /transactions answers; {text:?} is not one"
            ),
        )
    })?;
    if let Some(included) = included(&state, id).await? {
        return Ok(included);
    }
    if let Some(first_seen) = state.pool.first_seen(&id) {
        let max_age = u64::try_from(state.pool.limits().max_age.as_millis()).unwrap_or(u64::MAX);
        let expires_at = first_seen.as_unix_millis().saturating_add(max_age);
        let answer = json!({
            "id": id.to_hex(),
            "status": "pending",
            "first_seen": first_seen.as_unix_millis(),
            "expires_at": expires_at,
        });
        return Ok((StatusCode::OK, axum::Json(answer)).into_response());
    }
    if let Some(included) = included(&state, id).await? {
        return Ok(included);
    }
    // The id is the request's own path: like a block's height in `block_not_found`, it is told
    // in the message, with nothing beside `error`.
    Err(ApiError::new(
        ErrorCode::TransactionUnknown,
        format!(
            "no transaction {} in this process's pool or chain",
            id.to_hex()
        ),
    ))
}

/// The answer for a transaction the local chain committed, if it did.
async fn included(state: &ApiState, id: TransactionId) -> Result<Option<Response>, ApiError> {
    let Some(height) = state
        .chain
        .transaction_height(id)
        .await
        .map_err(|error| storage_failure(&error))?
    else {
        return Ok(None);
    };
    let block = state
        .chain
        .block_at(height)
        .await
        .map_err(|error| storage_failure(&error))?;
    let answer = json!({
        "id": id.to_hex(),
        "status": "included",
        "height": height.get(),
        "block_id": block.map(|block| block.id().to_hex()),
    });
    Ok(Some((StatusCode::OK, axum::Json(answer)).into_response()))
}

/// A submission whose body was not read: over the body limit, which is one byte over the pool's
/// limit (so it is a transaction too large, as the pool would say), or cut off.
fn unread_transaction(rejection: &BytesRejection, state: &ApiState) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let max = state.pool.limits().max_transaction_bytes;
        ApiError::new(
            ErrorCode::TransactionTooLarge,
            format!("transaction is over the limit of {max} bytes"),
        )
    } else {
        ApiError::new(
            ErrorCode::BodyUnreadable,
            format!(
                "the transaction could not be read: {}",
                rejection.body_text()
            ),
        )
    }
}

/// Accepts a batch relayed by another process: each transaction the local chain has not
/// committed goes to the pool with its first-seen time. Answers 200 with how many were
/// accepted, already pending, already committed or refused by the pool (full, too large,
/// empty, expired); 400 for a broken batch,
/// 413 past [`MAX_RELAY_BODY_BYTES`]. A batch is a bulk transfer: past the bound it is refused
/// (503 with `Retry-After`) before its body is read.
pub(crate) async fn accept_relayed(
    State(state): State<ApiState>,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(_permit) = bulk_permit(&state.bulk) else {
        return Ok(busy());
    };
    let body = axum::body::to_bytes(body, MAX_RELAY_BODY_BYTES)
        .await
        .map_err(unread_relay_batch)?;
    let entries = decode_relay_batch(&body)
        .map_err(|error| ApiError::new(ErrorCode::InvalidRelayBatch, error.to_string()))?;
    let ids: Vec<TransactionId> = entries.iter().map(|entry| entry.transaction.id()).collect();
    let committed: HashSet<TransactionId> = state
        .chain
        .committed_among(ids.clone())
        .await
        .map_err(|error| storage_failure(&error))?;
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
        Err(error) => return Err(storage_failure(&error)),
    }
    let accepted = accepted.len();
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "accepted": accepted,
            "known": known,
            "committed": committed.len(),
            "refused": refused,
        })),
    )
        .into_response())
}

/// A relay batch whose body was not read whole: over [`MAX_RELAY_BODY_BYTES`], or cut off.
fn unread_relay_batch(error: axum::Error) -> ApiError {
    let error = error.into_inner();
    if error.is::<http_body_util::LengthLimitError>() {
        ApiError::new(
            ErrorCode::RelayBatchTooLarge,
            format!("relay batch over {MAX_RELAY_BODY_BYTES} bytes"),
        )
    } else {
        ApiError::new(
            ErrorCode::BodyUnreadable,
            format!("the relay batch could not be read: {error}"),
        )
    }
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

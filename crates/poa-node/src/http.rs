//! The HTTP API: health, leadership, status, blocks, transaction submission and Prometheus
//! metrics; and the admin API: step-down, the manual production trigger, the removal of
//! invalid entries and the operator's vouch for the local head. Handlers translate
//! between HTTP and the service, chain and pool; they hold no state of their own.

use std::sync::Arc;

use adapter_chain::{ChainSpec, MemoryTransactionPool, RedbBlockImporter};
use adapter_chain::{ReferenceChain, Seal, SealedBlock};
use adapter_peers::{PeerTransactionRelay, RELAY_PATH};
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use poa_core::{CycleOutcome, ServiceHandle, Trigger};
use poa_ports::{BlockHeight, BlockReconciliationPort};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tracing::warn;

use crate::http_error::{self, ApiError, ErrorCode};
use crate::settings::MAX_STEP_DOWN_HOLD_OFF;
use crate::{raw_blocks, transactions};

/// Everything the handlers read.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) service: ServiceHandle,
    pub(crate) chain: RedbBlockImporter,
    pub(crate) pool: MemoryTransactionPool,
    pub(crate) reconciliation: Arc<dyn BlockReconciliationPort<ReferenceChain>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) trigger: Trigger,
    pub(crate) chain_spec: ChainSpec,
    /// Passes transactions accepted while following on to the peers (`--peer`).
    pub(crate) relay: Option<PeerTransactionRelay>,
    /// Permits of bulk transfers (raw block answers, relay batches): `--http-max-bulk-requests`.
    pub(crate) bulk: Arc<tokio::sync::Semaphore>,
}

/// The API's routes.
pub(crate) fn router(state: ApiState) -> Router {
    // One byte over the pool's limit, so an oversized body reaches the pool and gets its 413.
    let body_limit = state.pool.limits().max_transaction_bytes.saturating_add(1);
    Router::new()
        .route("/health", get(health))
        .route("/leader", get(leader))
        .route("/status", get(status))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/raw", get(raw_blocks::blocks_from))
        .route("/blocks/{height}", get(block_at))
        .route("/blocks/{height}/raw", get(raw_blocks::block_at))
        .route("/transactions", post(transactions::submit))
        .route("/transactions/{id}", get(transactions::status))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        // After the general limit: the handler reads the body itself, within its own limit,
        // once it holds a bulk permit.
        .route(RELAY_PATH, post(transactions::accept_relayed))
        .fallback(http_error::route_not_found)
        // Last: it applies to the routes added before it.
        .method_not_allowed_fallback(http_error::method_not_allowed)
        .with_state(state)
}

/// The admin API's routes; served on their own listener, on loopback by default.
pub(crate) fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/step-down", post(step_down))
        .route("/admin/produce", post(produce_block))
        .route(
            "/admin/remove-invalid-entries",
            post(remove_invalid_entries),
        )
        .route("/admin/vouch-for-head", post(vouch_for_head))
        .fallback(http_error::route_not_found)
        // Last: it applies to the routes added before it.
        .method_not_allowed_fallback(http_error::method_not_allowed)
        .with_state(state)
}

/// What the admin handlers need.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) service: ServiceHandle,
    pub(crate) default_hold_off: std::time::Duration,
    pub(crate) trigger: Trigger,
    /// The shared block log, when there is one (`--redis-url`).
    pub(crate) redis: Option<Arc<crate::run::RedisLog>>,
}

/// Query of `POST /admin/remove-invalid-entries`.
#[derive(Debug, serde::Deserialize)]
struct RemovalQuery {
    /// The height whose invalid entries go.
    height: Option<String>,
}

/// Removes, on every Redis node, the entries at one height that are proven invalid (they do not
/// decode, or fail this chain's verification) and the index members there that do not parse:
/// the way out of a height blocked by garbage (`/status` names it). A valid block is never
/// removed.
async fn remove_invalid_entries(
    State(state): State<AdminState>,
    query: Result<Query<RemovalQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::invalid_query(&rejection))?;
    // The request is checked before the node's state, so a bad request reads the same anywhere.
    let height = query
        .height
        .as_deref()
        .and_then(|height| height.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "height must be a block height, such as height=1234",
            )
        })?;
    let Some(redis) = &state.redis else {
        return Err(ApiError::new(
            ErrorCode::NoSharedBlockLog,
            "no shared block log: this node runs without --redis-url",
        ));
    };
    let nodes = redis.remove_invalid_entries(BlockHeight::new(height)).await;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "height": height, "nodes": nodes })),
    )
        .into_response())
}

/// Query of `POST /admin/step-down`.
#[derive(Debug, serde::Deserialize)]
struct StepDownQuery {
    /// How long to stay a follower, e.g. `30s` [default: `--step-down-hold-off`].
    hold_off: Option<String>,
}

/// Releases the lease and keeps this process a follower for the hold-off, so another process
/// takes over: for rolling upgrades.
async fn step_down(
    State(state): State<AdminState>,
    query: Result<Query<StepDownQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::invalid_query(&rejection))?;
    let hold_off = match query.hold_off.as_deref().map(humantime::parse_duration) {
        None => state.default_hold_off,
        Some(Ok(hold_off)) if !hold_off.is_zero() && hold_off <= MAX_STEP_DOWN_HOLD_OFF => hold_off,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "hold_off must be a positive duration of at most 24h, such as 30s",
            ));
        }
    };
    state
        .service
        .step_down(hold_off)
        .await
        .map_err(|error| service_stopped(&error))?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "stepped_down": true, "hold_off_ms": u64::try_from(hold_off.as_millis()).unwrap_or(u64::MAX) })),
    )
        .into_response())
}

/// The service takes no more requests: the process is shutting down.
fn service_stopped(error: &poa_core::ServiceError) -> ApiError {
    ApiError::new(ErrorCode::ServiceStopped, error.to_string())
}

/// An operator's word that no producer holds more than this process's head, for a shared log
/// that lost blocks (docs/operations.md, "The shared log lost blocks").
async fn vouch_for_head(State(state): State<AdminState>) -> Result<Response, ApiError> {
    state
        .service
        .vouch_for_head()
        .await
        .map_err(|error| service_stopped(&error))?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "vouched_for_height": state.service.status().height.get() })),
    )
        .into_response())
}

async fn health(State(state): State<ApiState>) -> Response {
    if let poa_core::Role::Stopped = state.service.status().role {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopped\n").into_response();
    }
    // A node list that matches no membership record of the Redis nodes: this process neither
    // leads nor follows until an operator fixes the list or the record.
    match state.reconciliation.lease_status().membership {
        Some(mismatch) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("membership mismatch: {mismatch}\n"),
        )
            .into_response(),
        None => (StatusCode::OK, "ok\n").into_response(),
    }
}

/// 200 while this process leads: its last cycle led and, with a lease, the lease is still
/// valid by the local clock. 503 otherwise, so a load balancer can follow the leader.
async fn leader(State(state): State<ApiState>) -> Response {
    if is_leader(&state) {
        (StatusCode::OK, "leader\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "follower\n").into_response()
    }
}

fn is_leader(state: &ApiState) -> bool {
    let lease = state.reconciliation.lease_status();
    let lease_valid = lease.nodes.is_empty()
        || lease
            .valid_for
            .is_some_and(|valid_for| !valid_for.is_zero());
    state.service.status().is_leader() && lease_valid
}

async fn status(State(state): State<ApiState>) -> Response {
    let status = state.service.status();
    let lease = state.reconciliation.lease_status();
    let body = json!({
        "height": status.height.get(),
        "head_id": status.head_id.to_hex(),
        "is_leader": is_leader(&state),
        "role": status.role.as_str(),
        "epoch": lease.epoch.map(|epoch| epoch.get()),
        "trigger": crate::status_json::trigger_json(state.trigger),
        "lease": crate::status_json::lease_json(&lease),
        "blocks_produced": status.blocks_produced,
        "blocks_imported": status.blocks_imported,
        "pending_transactions": state.pool.pending_count(),
        "last_error": status.last_error,
        "standing_aside": status.standing_aside,
        "chain_id": state.chain_spec.chain_id.get(),
        "authority": state.chain_spec.authority.to_string(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn latest_block(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let block = state
        .chain
        .head()
        .await
        .map_err(|error| storage_failure(&error))?;
    Ok((StatusCode::OK, axum::Json(block_view(&block))).into_response())
}

async fn block_at(
    State(state): State<ApiState>,
    height: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let height = requested_height(height)?;
    match state.chain.block_at(height).await {
        Ok(Some(block)) => Ok((StatusCode::OK, axum::Json(block_view(&block))).into_response()),
        Ok(None) => Err(block_not_found(height)),
        Err(error) => Err(storage_failure(&error)),
    }
}

/// The `{height}` of a block route.
pub(crate) fn requested_height(
    height: Result<Path<u64>, PathRejection>,
) -> Result<BlockHeight, ApiError> {
    height
        .map(|Path(height)| BlockHeight::new(height))
        .map_err(|rejection| ApiError::invalid_height(&rejection))
}

/// 404 for a height this process's chain does not hold.
pub(crate) fn block_not_found(height: BlockHeight) -> ApiError {
    ApiError::new(
        ErrorCode::BlockNotFound,
        format!("no block at height {height} in this process's chain"),
    )
}

/// With `--manual`, runs a production cycle now: imports what the chain lacks, then produces
/// if this process leads. With another trigger it refuses (409): the trigger alone sets the
/// block rate, and a request never raises it.
async fn produce_block(State(state): State<AdminState>) -> Result<Response, ApiError> {
    if state.trigger != Trigger::Manual {
        return Err(ApiError::new(
            ErrorCode::TriggerNotManual,
            format!(
                "the trigger is {}: blocks come at its rate, and this request produces only with --manual",
                state.trigger
            ),
        ));
    }
    let outcome = state
        .service
        .produce_block()
        .await
        .map_err(|error| service_stopped(&error))?;
    match outcome {
        CycleOutcome::Produced { height, id, transactions } => Ok((
            StatusCode::OK,
            axum::Json(json!({ "outcome": "produced", "height": height.get(), "id": id.to_hex(), "transaction_count": transactions })),
        )
            .into_response()),
        CycleOutcome::Follower => Err(ApiError::new(ErrorCode::NotLeader, "another process holds the lease")
            .with_context("outcome", "follower")),
        CycleOutcome::Imported { count } => {
            Ok((StatusCode::ACCEPTED, axum::Json(json!({ "outcome": "imported", "count": count }))).into_response())
        }
        CycleOutcome::Idle => Ok((StatusCode::ACCEPTED, axum::Json(json!({ "outcome": "idle" }))).into_response()),
        CycleOutcome::Failed { step, error } => Err(ApiError::new(ErrorCode::ProductionFailed, error)
            .with_context("outcome", "failed")
            .with_context("step", step)),
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        warn!(error = %error, "metrics encoding failed");
        return ApiError::new(
            ErrorCode::MetricsUnavailable,
            format!("the metrics could not be encoded: {error}"),
        )
        .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// 500 for a failed read of the local chain database; the cause goes to the log.
pub(crate) fn storage_failure(error: &dyn std::error::Error) -> ApiError {
    warn!(error = %error, "local chain read failed");
    ApiError::new(ErrorCode::StorageFailure, "local chain read failed")
}

/// The JSON view of a block; ids are lowercase hex.
pub(crate) fn block_view(block: &SealedBlock) -> Value {
    let header = &block.block.header;
    json!({
        "height": header.height.get(),
        "id": block.id().to_hex(),
        "parent_id": header.parent_id.to_hex(),
        "timestamp": header.timestamp.as_unix_millis(),
        "transactions_root": header.transactions_root.to_hex(),
        "transaction_count": header.transaction_count,
        "transactions": block.block.transactions.iter().map(|transaction| transaction.id().to_hex()).collect::<Vec<_>>(),
        "seal": match block.seal {
            Seal::Genesis => "genesis",
            Seal::Authority(_) => "authority",
        },
    })
}

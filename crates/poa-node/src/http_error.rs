//! The one shape of every error the HTTP listeners answer, public and admin alike:
//! `{"error": {"code": "...", "message": "..."}}`, with a stable snake_case `code` a tool can
//! branch on and a `message` for people. Each code has one status. Some answers carry context
//! beside `error` (a transaction's `id`, a production cycle's `outcome`), never inside it.
//!
//! This module also answers what the router and extractors would otherwise answer in plain
//! text: unknown routes, methods a route does not take, path and query parameters that do not
//! parse. The probes `/health` and `/leader` are not errors: their status is the answer, and
//! they stay plain text for load balancers and supervisors.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// What went wrong, as a stable code: renaming one breaks the tools that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// No route has this path on this listener.
    RouteNotFound,
    /// The route exists but not with this method; `Allow` names the methods it takes.
    MethodNotAllowed,
    /// The `{height}` of the path is not a block height.
    InvalidHeight,
    /// The query string does not parse.
    InvalidQuery,
    /// The request body could not be read (the client stopped sending, say).
    BodyUnreadable,
    /// No block at this height in this process's chain.
    BlockNotFound,
    /// A transaction with no bytes.
    EmptyTransaction,
    /// A transaction over the pool's size limit.
    TransactionTooLarge,
    /// The pool holds as many transactions as it may.
    PoolFull,
    /// The transaction is already pending in the pool.
    TransactionPending,
    /// The local chain already committed the transaction.
    TransactionCommitted,
    /// The transaction outlived `--transaction-ttl`.
    TransactionExpired,
    /// The `{id}` of the path is not a transaction id (64 hex characters).
    InvalidTransactionId,
    /// This process neither holds the transaction pending nor has committed it.
    TransactionUnknown,
    /// A relay batch over its size limit.
    RelayBatchTooLarge,
    /// A relay batch that does not decode.
    InvalidRelayBatch,
    /// Every bulk permit is taken (`--http-max-bulk-requests`); retry after `Retry-After`.
    TooManyBulkRequests,
    /// The request was not read and answered within `--http-request-timeout`.
    RequestTimeout,
    /// The local chain database could not be read.
    StorageFailure,
    /// The metrics could not be encoded.
    MetricsUnavailable,
    /// The node runs without `--redis-url`, so it has no shared block log to act on.
    NoSharedBlockLog,
    /// `POST /admin/produce` without `--manual`: the trigger alone sets the block rate.
    TriggerNotManual,
    /// Another process holds the lease.
    NotLeader,
    /// A production cycle failed at a step (named beside `error`).
    ProductionFailed,
    /// The production service has stopped (the process is shutting down).
    ServiceStopped,
}

impl ErrorCode {
    /// Every code, in the order of the README's table.
    #[cfg(test)]
    pub(crate) const ALL: &[Self] = &[
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::InvalidHeight,
        Self::InvalidQuery,
        Self::BodyUnreadable,
        Self::BlockNotFound,
        Self::EmptyTransaction,
        Self::TransactionTooLarge,
        Self::PoolFull,
        Self::TransactionPending,
        Self::TransactionCommitted,
        Self::TransactionExpired,
        Self::InvalidTransactionId,
        Self::TransactionUnknown,
        Self::RelayBatchTooLarge,
        Self::InvalidRelayBatch,
        Self::TooManyBulkRequests,
        Self::RequestTimeout,
        Self::StorageFailure,
        Self::MetricsUnavailable,
        Self::NoSharedBlockLog,
        Self::TriggerNotManual,
        Self::NotLeader,
        Self::ProductionFailed,
        Self::ServiceStopped,
    ];

    /// The code as answers spell it.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidHeight => "invalid_height",
            Self::InvalidQuery => "invalid_query",
            Self::BodyUnreadable => "body_unreadable",
            Self::BlockNotFound => "block_not_found",
            Self::EmptyTransaction => "empty_transaction",
            Self::TransactionTooLarge => "transaction_too_large",
            Self::PoolFull => "pool_full",
            Self::TransactionPending => "transaction_pending",
            Self::TransactionCommitted => "transaction_committed",
            Self::TransactionExpired => "transaction_expired",
            Self::InvalidTransactionId => "invalid_transaction_id",
            Self::TransactionUnknown => "transaction_unknown",
            Self::RelayBatchTooLarge => "relay_batch_too_large",
            Self::InvalidRelayBatch => "invalid_relay_batch",
            Self::TooManyBulkRequests => "too_many_bulk_requests",
            Self::RequestTimeout => "request_timeout",
            Self::StorageFailure => "storage_failure",
            Self::MetricsUnavailable => "metrics_unavailable",
            Self::NoSharedBlockLog => "no_shared_block_log",
            Self::TriggerNotManual => "trigger_not_manual",
            Self::NotLeader => "not_leader",
            Self::ProductionFailed => "production_failed",
            Self::ServiceStopped => "service_stopped",
        }
    }

    /// The status every answer with this code has.
    pub(crate) const fn status(self) -> StatusCode {
        match self {
            Self::InvalidHeight
            | Self::InvalidQuery
            | Self::BodyUnreadable
            | Self::EmptyTransaction
            | Self::InvalidTransactionId
            | Self::InvalidRelayBatch => StatusCode::BAD_REQUEST,
            Self::RouteNotFound | Self::BlockNotFound | Self::TransactionUnknown => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TransactionPending
            | Self::TransactionCommitted
            | Self::NoSharedBlockLog
            | Self::TriggerNotManual
            | Self::NotLeader => StatusCode::CONFLICT,
            Self::TransactionExpired => StatusCode::GONE,
            Self::TransactionTooLarge | Self::RelayBatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::PoolFull => StatusCode::TOO_MANY_REQUESTS,
            Self::StorageFailure | Self::MetricsUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooManyBulkRequests | Self::ProductionFailed | Self::ServiceStopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// An error answer: the code's status and `{"error": {"code", "message"}}`, and any context
/// fields beside `error`.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    context: Map<String, Value>,
}

impl ApiError {
    /// An answer with `code` and a message for people.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            context: Map::new(),
        }
    }

    /// The same answer with `key` beside `error` (a transaction's `id`, say).
    pub(crate) fn with_context(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// A `{height}` path parameter that is not a block height.
    pub(crate) fn invalid_height(rejection: &PathRejection) -> Self {
        Self::new(
            ErrorCode::InvalidHeight,
            format!(
                "the height must be a whole number from 0, such as /blocks/1234 ({})",
                rejection.body_text()
            ),
        )
    }

    /// A query string that does not parse.
    pub(crate) fn invalid_query(rejection: &QueryRejection) -> Self {
        Self::new(
            ErrorCode::InvalidQuery,
            format!("the query string does not parse: {}", rejection.body_text()),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.context;
        body.insert(
            "error".to_owned(),
            serde_json::json!({ "code": self.code.as_str(), "message": self.message }),
        );
        (self.code.status(), axum::Json(Value::Object(body))).into_response()
    }
}

/// The router's answer for a path no route has.
pub(crate) async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!(
            "no route {method} {} on this listener (the README's HTTP API lists them)",
            uri.path()
        ),
    )
}

/// The router's answer for a route that does not take the request's method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} does not take {method}: the Allow header names the methods it takes",
            uri.path()
        ),
    )
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn error_codes__when_listed__then_each_is_distinct_snake_case_and_in_the_readme() {
        // given
        let readme = include_str!("../../../README.md");

        // when
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();

        // then
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), codes.len());
        for (code, listed) in ErrorCode::ALL.iter().zip(&codes) {
            assert!(
                listed.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{listed}"
            );
            let row = format!("| `{listed}` | {} |", code.status().as_u16());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}

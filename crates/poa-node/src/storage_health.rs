//! The local chain database's health as the node shows it: `/health` answers 503 while the
//! store is not healthy (an I/O error being recovered from, a detached or failed file), and the
//! node stops when the store fails for good, so a supervisor restarts it.
//!
//! The store decides every transition ([`adapter_chain::StorageHealth`]); this module only
//! reads it. It sits in front of the HTTP router as a layer, so the handlers stay unaware of it.

use adapter_chain::StorageHealth;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// `router` with `GET /health` answering 503 and the store's state while the local chain
/// database is not healthy.
pub(crate) fn guard_health(router: Router, health: watch::Receiver<StorageHealth>) -> Router {
    router.layer(middleware::from_fn_with_state(
        health,
        refuse_health_while_failing,
    ))
}

async fn refuse_health_while_failing(
    State(health): State<watch::Receiver<StorageHealth>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/health" {
        let current = health.borrow().clone();
        if !current.is_healthy() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("local chain storage {current}\n"),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Resolves with the cause once the store has failed for good; never while it is healthy,
/// recovering or detached.
pub(crate) async fn failed_for_good(mut health: watch::Receiver<StorageHealth>) -> String {
    // The borrow of the watched value ends before any further await: the node runs as a task
    // that may move between threads.
    let cause = match health.wait_for(StorageHealth::is_failed).await.as_deref() {
        Ok(StorageHealth::Failed { cause }) => Some(cause.clone()),
        Ok(other) => Some(other.to_string()),
        // The store was dropped: nothing more can fail.
        Err(_) => None,
    };
    match cause {
        Some(cause) => cause,
        None => std::future::pending().await,
    }
}

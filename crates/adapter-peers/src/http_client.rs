//! [`PeerHttpClient`]: the one HTTP client of the adapter, async on the runtime's workers, with
//! pooled keep-alive connections (hyper-util's client on the hyper that axum already brings).
//!
//! Every exchange is bounded as a whole (connect, send, and reading the answer body) by the
//! request timeout, and the body is always read to its end within a size cap: an answer read to
//! the end leaves its connection reusable, so a steady relay keeps a few connections per peer
//! instead of opening one per request. A timed-out exchange drops its connection.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{POOL_IDLE_TIMEOUT, PeerConfig};
use crate::error::PeerRequestError;

/// A complete answer: its status and its whole body.
#[derive(Debug, Clone)]
pub(crate) struct PeerResponse {
    /// The HTTP status code.
    pub(crate) status: u16,
    /// The body, read to its end.
    pub(crate) body: Bytes,
}

/// The pooled client; cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub(crate) struct PeerHttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_response_bytes: u64,
}

impl PeerHttpClient {
    /// A client bounded by `config`'s request timeout and answer size, keeping up to
    /// `idle_per_peer` idle connections to each peer.
    pub(crate) fn new(config: &PeerConfig, idle_per_peer: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.request_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(idle_per_peer)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            timeout: config.request_timeout,
            max_response_bytes: config.max_response_bytes,
        }
    }

    /// `GET url`.
    ///
    /// # Errors
    ///
    /// [`PeerRequestError`] when no complete answer arrived in time or within the size cap.
    pub(crate) async fn get(&self, url: &str) -> Result<PeerResponse, PeerRequestError> {
        self.exchange(Method::GET, url, Vec::new(), Bytes::new())
            .await
    }

    /// `POST url` with `body` and extra `headers`.
    ///
    /// # Errors
    ///
    /// [`PeerRequestError`] when no complete answer arrived in time or within the size cap.
    pub(crate) async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, &'static str)>,
        body: Bytes,
    ) -> Result<PeerResponse, PeerRequestError> {
        self.exchange(Method::POST, url, headers, body).await
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(&'static str, &'static str)>,
        body: Bytes,
    ) -> Result<PeerResponse, PeerRequestError> {
        let uri: Uri = url.parse().map_err(|_| PeerRequestError::InvalidUrl {
            url: url.to_owned(),
        })?;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| PeerRequestError::Failed {
                reason: error.to_string(),
            })?;
        let limit = self.max_response_bytes;
        let exchange =
            async {
                let response = self.client.request(request).await.map_err(|error| {
                    PeerRequestError::Failed {
                        reason: error_chain(&error),
                    }
                })?;
                let status = response.status().as_u16();
                let cap = usize::try_from(limit).unwrap_or(usize::MAX);
                let body = Limited::new(response.into_body(), cap)
                    .collect()
                    .await
                    .map_err(|error| {
                        if error.is::<http_body_util::LengthLimitError>() {
                            PeerRequestError::TooLarge { limit }
                        } else {
                            PeerRequestError::Failed {
                                reason: format!("reading the answer failed: {error}"),
                            }
                        }
                    })?
                    .to_bytes();
                Ok(PeerResponse { status, body })
            };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| PeerRequestError::TimedOut {
                timeout: self.timeout,
            })?
    }
}

/// The error and its sources on one line: hyper-util's own message ("client error (Connect)")
/// names only the stage.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

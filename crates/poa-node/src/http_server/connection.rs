//! One connection of a listener: hyper's HTTP/1 connection over the socket with the header-read
//! timer, every request bounded by the request timeout, a watchdog that closes the connection
//! when no byte has moved for the idle timeout, and the two ways to end it early (evicted to
//! make room at the cap, or the listener stopping).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::HttpLimits;
use crate::http_error::{ApiError, ErrorCode};

/// The most bytes hyper buffers per connection for reading or writing: an answer a client does
/// not read stays in the socket's buffers and at most this much of the process's memory.
const CONNECTION_BUFFER_BYTES: usize = 64 * 1024;

/// Everything one connection's task needs.
pub(super) struct ConnectionTask {
    pub(super) name: &'static str,
    pub(super) stream: TcpStream,
    pub(super) router: Router,
    pub(super) limits: HttpLimits,
    /// Requests in flight, read by the listener's cap.
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Notified when the listener closes this connection to make room.
    pub(super) evict: Arc<Notify>,
    pub(super) stop: CancellationToken,
}

impl ConnectionTask {
    /// Serves the connection to its end; returns the bound that closed it, if one did
    /// (`header_timeout` or `idle_timeout`; an eviction is counted by the listener).
    pub(super) async fn run(self) -> Option<&'static str> {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(ActivityIo {
            inner: self.stream,
            activity: Arc::clone(&activity),
        });
        let service = ConnectionService {
            router: self.router,
            in_flight: Arc::clone(&self.in_flight),
            request_timeout: self.limits.request_timeout,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(CONNECTION_BUFFER_BYTES);
        let mut connection = pin!(builder.serve_connection(io, service));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    return match result {
                        Ok(()) => None,
                        Err(error) if error.is_timeout() => Some("header_timeout"),
                        Err(error) => {
                            debug!(server = self.name, error = %error, "http connection ended with an error");
                            None
                        }
                    };
                }
                () = self.evict.notified() => {
                    // Chosen while no request was in flight; one may have started since, and
                    // then it finishes before the connection closes.
                    if self.in_flight.load(Ordering::Acquire) == 0 {
                        return None;
                    }
                    connection.as_mut().graceful_shutdown();
                }
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = activity.idle_for(self.limits.idle_timeout) => return Some("idle_timeout"),
            }
        }
    }
}

/// When a connection last moved a byte.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last byte read or written.
    last_millis: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
            let deadline = self.started + last.saturating_add(timeout);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The socket, noting every byte that moves.
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(context, buffer);
        if matches!(poll, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(context, bytes);
        if matches!(poll, Poll::Ready(Ok(written)) if written > 0) {
            this.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(context, buffers);
        if matches!(poll, Poll::Ready(Ok(written)) if written > 0) {
            this.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

/// The router as hyper calls it on one connection: counts the request in flight until its
/// answer body is done, and bounds reading the request and producing the answer.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    in_flight: Arc<AtomicUsize>,
    request_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(&self.in_flight);
        let mut router = self.router.clone();
        let timeout = self.request_timeout;
        Box::pin(async move {
            let answer = tower_service::Service::call(&mut router, request);
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => request_timed_out(timeout),
            };
            Ok(response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _in_flight: guard,
                })
            }))
        })
    }
}

/// 408, and the connection closes after it.
fn request_timed_out(timeout: Duration) -> Response<Body> {
    (
        [(header::CONNECTION, "close")],
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request was not read and answered within {} (--http-request-timeout)",
                humantime::format_duration(timeout)
            ),
        ),
    )
        .into_response()
}

/// One request in flight on a connection, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer body that keeps its request counted in flight until it is done or dropped.
struct GuardedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

//! [`FaultProxy`]: a loopback TCP proxy in front of one upstream address whose behaviour a test
//! switches at any time ([`ProxyMode`]), for existing and new connections alike.
//!
//! It owns the proxied connections and nothing else: it does not parse what it forwards (it
//! knows nothing of RESP), and it never drops bytes on a live connection except in the
//! explicitly lossy [`ProxyMode::Blackhole`], because real TCP delays bytes but never loses them.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::background::BackgroundListener;
use crate::loopback::redis_url;

/// Bound on connecting to the upstream for a new client connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest chunk read from one side at a time.
const CHUNK_SIZE: usize = 16 * 1024;

/// What the proxy does with the bytes of every connection, from the moment it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways, as if the proxy were not there.
    Pass,
    /// Keep every connection open and forward nothing either way (a pause, a half-alive node).
    /// Bytes keep being read and buffered; they are forwarded, in order, once the mode allows.
    Hold,
    /// Close every existing connection with a TCP reset (SO_LINGER 0) and reset each new one as
    /// soon as it is accepted.
    Reset,
    /// Forward both ways, each chunk delayed by the duration from when it was read, in order.
    /// A request-reply round trip therefore takes at least twice the duration.
    Latency(Duration),
    /// Keep every connection open, discard what arrives and forward nothing. Unlike `Hold`, the
    /// discarded bytes are lost for good, so going back to `Pass` leaves a RESP stream out of
    /// step: use it for connections that are expected to be abandoned.
    Blackhole,
    /// Forward requests freely, but close the connection with a reset once this many more
    /// bytes have gone back to the client: a link that dies in the middle of a reply, after the
    /// request landed (the "unknown outcome" of a write). Each connection open when the mode is
    /// set, and each new one, gets the full allowance.
    CloseAfter(usize),
}

impl ProxyMode {
    /// How long a chunk waits before it may be written, or `None` when nothing may be written.
    fn forwarding_delay(self) -> Option<Duration> {
        match self {
            Self::Pass | Self::CloseAfter(_) => Some(Duration::ZERO),
            Self::Latency(delay) => Some(delay),
            Self::Hold | Self::Reset | Self::Blackhole => None,
        }
    }
}

/// A TCP proxy on `127.0.0.1` in front of `upstream`, starting in [`ProxyMode::Pass`]. Each
/// accepted connection gets its own upstream connection, opened on accept. Dropping the proxy
/// closes the listener and every connection.
///
/// It serves from its own thread, so it works from `#[test]` and any `#[tokio::test]` flavour.
#[derive(Debug)]
pub struct FaultProxy {
    listener: BackgroundListener,
    mode: watch::Sender<ProxyMode>,
    upstream: SocketAddr,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port, forwarding to `upstream`. Panics if no port can
    /// be bound. The upstream need not be up yet: it is only dialled when a client connects.
    pub fn start(upstream: SocketAddr) -> Self {
        let (mode, modes) = watch::channel(ProxyMode::Pass);
        let listener = BackgroundListener::start("fault-proxy", move |client| {
            if *modes.borrow() == ProxyMode::Reset {
                close_with_reset(&client);
            } else {
                tokio::spawn(relay(client, upstream, modes.clone()));
            }
        });
        Self {
            listener,
            mode,
            upstream,
        }
    }

    /// The proxy's listening address (point clients here).
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// `redis://127.0.0.1:<proxy port>`, to configure a client through the proxy.
    pub fn url(&self) -> String {
        redis_url(self.addr())
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Switches the mode for existing and new connections; connections react within
    /// milliseconds, asynchronously.
    pub fn set_mode(&self, mode: ProxyMode) {
        tracing::debug!(addr = %self.addr(), ?mode, "fault proxy mode set");
        self.mode.send_replace(mode);
    }

    /// Client connections accepted so far, including those reset on accept; a connection is
    /// counted shortly after the client's `connect` returns, so poll with [`crate::wait_for`].
    pub fn accepted_connections(&self) -> usize {
        self.listener.accepted_connections()
    }
}

/// Makes the kernel answer with RST instead of FIN when the socket is dropped.
fn close_with_reset(socket: &TcpStream) {
    if let Err(err) = socket.set_zero_linger() {
        tracing::debug!(error = %err, "cannot set zero linger");
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mut modes: watch::Receiver<ProxyMode>) {
    let connected = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let mut upstream = match connected.await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(err)) => {
            tracing::debug!(%upstream, error = %err, "fault proxy cannot reach upstream");
            return close_with_reset(&client);
        }
        Err(_) => {
            tracing::debug!(%upstream, "fault proxy upstream connect timed out");
            return close_with_reset(&client);
        }
    };
    let mut client = client;
    match forward_until_closed(&mut client, &mut upstream, &mut modes).await {
        Ok(Ending::Closed) => {}
        Ok(Ending::Reset) => {
            close_with_reset(&client);
            close_with_reset(&upstream);
        }
        Err(err) => {
            // Pass the failure on as abruptly as it came.
            tracing::debug!(error = %err, "fault proxy connection failed");
            close_with_reset(&client);
            close_with_reset(&upstream);
        }
    }
}

/// How a proxied connection ended without an I/O error.
enum Ending {
    /// Both sides closed their end and everything was forwarded (or the proxy is gone).
    Closed,
    /// The mode became `Reset`.
    Reset,
}

/// Runs one connection as a single task, so a mode change reaches both directions at once.
/// Readiness plus `try_read`/`try_write` keeps every `select!` branch cancel-safe.
async fn forward_until_closed(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    modes: &mut watch::Receiver<ProxyMode>,
) -> io::Result<Ending> {
    let mut to_upstream = Flow::default();
    let mut to_client = Flow::default();
    let mut buf = vec![0_u8; CHUNK_SIZE];
    // Reply bytes this connection may still forward under `CloseAfter`; `None` in other modes.
    let mut allowance: Option<usize> = None;
    loop {
        let mode = *modes.borrow_and_update();
        if mode == ProxyMode::Reset {
            return Ok(Ending::Reset);
        }
        allowance = match mode {
            ProxyMode::CloseAfter(bytes) => Some(allowance.unwrap_or(bytes)),
            _ => None,
        };
        // The allowance is spent and a reply is waiting: the link dies before delivering it.
        if allowance == Some(0) && !to_client.pending.is_empty() {
            return Ok(Ending::Reset);
        }
        let limit = allowance.unwrap_or(usize::MAX);
        if to_upstream.should_forward_close(mode) {
            upstream.shutdown().await?;
            to_upstream.destination_closed = true;
        }
        if to_client.should_forward_close(mode) {
            client.shutdown().await?;
            to_client.destination_closed = true;
        }
        if to_upstream.destination_closed && to_client.destination_closed {
            return Ok(Ending::Closed);
        }
        let now = Instant::now();
        let upstream_due = to_upstream.front_due(mode);
        let client_due = to_client.front_due(mode);
        let wake_at = [upstream_due, client_due]
            .into_iter()
            .flatten()
            .filter(|due| *due > now)
            .min();
        tokio::select! {
            changed = modes.changed() => {
                if changed.is_err() {
                    return Ok(Ending::Closed);
                }
            }
            ready = client.readable(), if !to_upstream.source_closed => {
                ready?;
                to_upstream.receive(client, mode, &mut buf)?;
            }
            ready = upstream.readable(), if !to_client.source_closed => {
                ready?;
                to_client.receive(upstream, mode, &mut buf)?;
            }
            ready = upstream.writable(), if upstream_due.is_some_and(|due| due <= now) => {
                ready?;
                to_upstream.send_front(upstream, usize::MAX)?;
            }
            ready = client.writable(), if client_due.is_some_and(|due| due <= now) => {
                ready?;
                let sent = to_client.send_front(client, limit)?;
                allowance = allowance.map(|left| left.saturating_sub(sent));
            }
            () = tokio::time::sleep_until(wake_at.unwrap_or(now)), if wake_at.is_some() => {}
        }
    }
}

/// Bytes read from one side, waiting to be written to the other.
struct Chunk {
    received_at: Instant,
    bytes: Vec<u8>,
    written: usize,
}

/// One direction of a proxied connection.
#[derive(Default)]
struct Flow {
    pending: VecDeque<Chunk>,
    /// The source sent its FIN.
    source_closed: bool,
    /// That FIN was passed on to the destination.
    destination_closed: bool,
}

impl Flow {
    /// When the oldest pending chunk may be written, if there is one and the mode forwards.
    fn front_due(&self, mode: ProxyMode) -> Option<Instant> {
        let delay = mode.forwarding_delay()?;
        self.pending.front().map(|chunk| chunk.received_at + delay)
    }

    /// A FIN is passed on only after every byte before it, and only when the mode forwards.
    fn should_forward_close(&self, mode: ProxyMode) -> bool {
        self.source_closed
            && !self.destination_closed
            && self.pending.is_empty()
            && mode.forwarding_delay().is_some()
    }

    fn receive(&mut self, source: &TcpStream, mode: ProxyMode, buf: &mut [u8]) -> io::Result<()> {
        match source.try_read(buf) {
            Ok(0) => self.source_closed = true,
            Ok(_) if mode == ProxyMode::Blackhole => {}
            Ok(read) => self.pending.push_back(Chunk {
                received_at: Instant::now(),
                bytes: buf[..read].to_vec(),
                written: 0,
            }),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// Writes at most `limit` bytes of the oldest pending chunk; returns how many were written.
    fn send_front(&mut self, destination: &TcpStream, limit: usize) -> io::Result<usize> {
        let Some(chunk) = self.pending.front_mut() else {
            return Ok(0);
        };
        let end = chunk.bytes.len().min(chunk.written.saturating_add(limit));
        match destination.try_write(&chunk.bytes[chunk.written..end]) {
            Ok(written) => {
                chunk.written += written;
                if chunk.written == chunk.bytes.len() {
                    self.pending.pop_front();
                }
                Ok(written)
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(err) => Err(err),
        }
    }
}

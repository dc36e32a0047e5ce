//! The accept loop shared by the TCP fixtures, run on a dedicated thread with its own
//! current-thread tokio runtime.
//!
//! A dedicated runtime makes the fixtures behave the same from a plain `#[test]`, a
//! current-thread `#[tokio::test]` and a multi-thread one, and keeps them serving while the test
//! blocks its own thread (a blocking RESP request through a proxy would otherwise deadlock).
//! The thread is owned: dropping the [`BackgroundListener`] stops the accept loop, drops the
//! runtime (which cancels every connection task and closes its sockets) and joins the thread.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Pause after a failed `accept` (for example out of file descriptors), to avoid spinning.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// A loopback listener whose connections are handed, one by one, to a handler running on the
/// fixture's own runtime; counts the connections it accepts.
#[derive(Debug)]
pub(crate) struct BackgroundListener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundListener {
    /// Binds `127.0.0.1:0` and starts accepting on a thread called `name`. `handle` runs on that
    /// thread's runtime for each accepted connection, so it may `tokio::spawn` the work.
    pub(crate) fn start<H>(name: &str, mut handle: H) -> Self
    where
        H: FnMut(TcpStream) + Send + 'static,
    {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .unwrap_or_else(|err| panic!("{name}: cannot bind a loopback port: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("{name}: cannot read the bound address: {err}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("{name}: cannot build a tokio runtime: {err}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread_name = name.to_owned();
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            tracing::error!(fixture = thread_name, error = %err, "cannot register listener");
                            return;
                        }
                    };
                    let accept_each = async {
                        loop {
                            match listener.accept().await {
                                Ok((socket, _)) => {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                    handle(socket);
                                }
                                Err(err) => {
                                    tracing::debug!(fixture = thread_name, error = %err, "accept failed");
                                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = stop => {}
                        () = accept_each => {}
                    }
                });
                // Dropping the runtime here cancels every connection task and closes its sockets.
            })
            .unwrap_or_else(|err| panic!("{name}: cannot start the fixture thread: {err}"));
        Self {
            addr,
            accepted,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far (each counted once the accept loop takes it, shortly after
    /// the client's `connect` returns).
    pub(crate) fn accepted_connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BackgroundListener {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the loop already ended; joining is still right.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(addr = %self.addr, "fixture thread panicked");
        }
    }
}

//! [`HalfAliveListener`]: a loopback peer that accepts every TCP connection, reads and discards
//! whatever arrives and never writes a byte, like the cloud Redis node of the fuel-core incident
//! that completed handshakes and then went silent. It must never answer, not even an error.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::background::BackgroundListener;
use crate::loopback::redis_url;

/// A TCP listener on `127.0.0.1` that accepts, reads and never replies. Connections stay open
/// until the client closes them or the listener is dropped, which closes the listener and every
/// accepted socket.
///
/// It serves from its own thread, so it works from `#[test]` and any `#[tokio::test]` flavour.
#[derive(Debug)]
pub struct HalfAliveListener {
    listener: BackgroundListener,
}

impl HalfAliveListener {
    /// Binds a free loopback port and starts accepting. Panics if no port can be bound.
    pub fn start() -> Self {
        let listener = BackgroundListener::start("half-alive-listener", |socket| {
            tokio::spawn(discard_forever(socket));
        });
        Self { listener }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// `redis://127.0.0.1:<port>`, to configure a client against this silent node.
    pub fn url(&self) -> String {
        redis_url(self.addr())
    }

    /// Connections accepted so far; a connection is counted shortly after the client's
    /// `connect` returns, so poll with [`crate::wait_for`] rather than asserting at once.
    pub fn accepted_connections(&self) -> usize {
        self.listener.accepted_connections()
    }
}

async fn discard_forever(mut socket: TcpStream) {
    let mut sink = [0_u8; 4096];
    // Reading keeps the client's writes flowing; the socket closes when the client closes it.
    while let Ok(read) = socket.read(&mut sink).await {
        if read == 0 {
            break;
        }
    }
}

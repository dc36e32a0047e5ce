//! Integration tests of the fixtures against real `redis-server` processes and real sockets.
//! One binary; every test builds its own fixtures, so they all run in parallel.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

mod fault_proxy;
mod half_alive;
mod process;
mod redis_server;
mod wait;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use poa_test_support::resp;

/// Bound that only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(5);
/// How long "no answer" is awaited before concluding there is none.
const SILENCE: Duration = Duration::from_millis(300);
/// The exact bytes of Redis's reply to `PING`.
const PONG: &[u8] = b"+PONG\r\n";

/// A raw connection, for tests that keep one connection across fault changes.
fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, HANG_GUARD).expect("connect to the fixture")
}

fn send_ping(stream: &mut TcpStream) {
    stream
        .write_all(&resp::encode_command(&[b"PING"]))
        .expect("write PING");
}

/// Reads until the bytes received end a line, or fails on timeout (`WouldBlock`/`TimedOut`),
/// close (`UnexpectedEof`) or reset.
fn read_line(stream: &mut TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(timeout))?;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 512];
    while !received.ends_with(b"\r\n") {
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => received.extend_from_slice(&chunk[..read]),
        }
    }
    Ok(received)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether a process with this pid exists (reaped children do not).
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

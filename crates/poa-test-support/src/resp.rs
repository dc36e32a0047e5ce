//! A minimal RESP2 client for test assertions: encode one command as an array of bulk strings,
//! parse one reply of any RESP2 type (nested arrays included), one connection per request.
//!
//! It exists so tests can seed and inspect Redis keys without depending on `fred`; it is not a
//! Redis client for production code and knows nothing about Redis commands.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::RespError;

#[cfg(test)]
mod tests;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RespValue {
    /// A simple string (`+OK`).
    Simple(String),
    /// An error reply (`-ERR ...`), with the prefix word kept (`ERR`, `WRONGTYPE`, `NOSCRIPT`...).
    Error(String),
    /// An integer (`:42`).
    Integer(i64),
    /// A bulk string (`$3\r\nfoo`).
    Bulk(Vec<u8>),
    /// A null bulk string (`$-1`) or a null array (`*-1`).
    Null,
    /// An array (`*2\r\n...`), possibly nested.
    Array(Vec<RespValue>),
}

impl RespValue {
    /// A bulk string, for terse assertions: `assert_eq!(reply, RespValue::bulk("v"))`.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Bulk(bytes.into())
    }

    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bulk(bytes) => Some(bytes),
            Self::Simple(text) => Some(text.as_bytes()),
            Self::Error(_) | Self::Integer(_) | Self::Null | Self::Array(_) => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Self::Integer(value) => Some(*value),
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[RespValue]> {
        match self {
            Self::Array(values) => Some(values),
            _ => None,
        }
    }
}

/// Encodes a command as a RESP array of bulk strings, the form every Redis command takes.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends one command on a fresh blocking connection and reads one reply.
///
/// `timeout` bounds the whole exchange (connect, write and read). Blocking: from async code prefer
/// [`request_async`], although a short blocking call is harmless when the peer is another process.
///
/// # Errors
///
/// [`RespError::TimedOut`] when nothing complete arrives in time, [`RespError::Closed`] when the
/// peer closes first, [`RespError::Io`] when connecting or the socket fails, and
/// [`RespError::Protocol`] when the reply is not RESP2. An error *reply* is `Ok(RespValue::Error)`.
pub fn request(
    addr: SocketAddr,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<RespValue, RespError> {
    request_as(addr, None, args, timeout)
}

/// [`request`] on a connection first authenticated with `AUTH user password` when `auth` is
/// given (both commands are sent at once); a refused `AUTH` is returned as its error reply.
///
/// # Errors
///
/// As [`request`].
pub fn request_as(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<RespValue, RespError> {
    let started = Instant::now();
    let io_error = |source| RespError::from_io(addr, timeout, source);
    let remaining = || {
        timeout
            .checked_sub(started.elapsed())
            .filter(|left| !left.is_zero())
            .ok_or(RespError::TimedOut { addr, timeout })
    };
    let (payload, mut replies_to_skip) = payload(auth, args);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io_error)?;
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(io_error)?;
    stream.write_all(&payload).map_err(io_error)?;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(value) = next_reply(addr, &mut received, &mut replies_to_skip)? {
            return Ok(value);
        }
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(io_error)?;
        match stream.read(&mut chunk).map_err(io_error)? {
            0 => return Err(RespError::Closed { addr }),
            read => received.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Sends one command on a fresh tokio connection and reads one reply; needs a tokio runtime
/// with the time driver enabled (any `#[tokio::test]`).
///
/// # Errors
///
/// As [`request`].
pub async fn request_async(
    addr: SocketAddr,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<RespValue, RespError> {
    request_as_async(addr, None, args, timeout).await
}

/// [`request_as`] without blocking the runtime thread.
///
/// # Errors
///
/// As [`request`].
pub async fn request_as_async(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<RespValue, RespError> {
    let io_error = |source| RespError::from_io(addr, timeout, source);
    let (payload, mut replies_to_skip) = payload(auth, args);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(io_error)?;
        stream.write_all(&payload).await.map_err(io_error)?;
        let mut received = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            if let Some(value) = next_reply(addr, &mut received, &mut replies_to_skip)? {
                return Ok(value);
            }
            match stream.read(&mut chunk).await.map_err(io_error)? {
                0 => return Err(RespError::Closed { addr }),
                read => received.extend_from_slice(&chunk[..read]),
            }
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(RespError::TimedOut { addr, timeout }))
}

/// The bytes to send, and how many replies precede the command's own (the `AUTH` reply).
fn payload(auth: Option<(&str, &str)>, args: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut payload = Vec::new();
    let mut skip = 0;
    if let Some((user, password)) = auth {
        payload.extend(encode_command(&[
            b"AUTH",
            user.as_bytes(),
            password.as_bytes(),
        ]));
        skip = 1;
    }
    payload.extend(encode_command(args));
    (payload, skip)
}

/// The command's reply once complete. A reply before it (`AUTH`) is consumed, and returned
/// instead when it is an error (the command then ran unauthenticated and tells nothing).
fn next_reply(
    addr: SocketAddr,
    received: &mut Vec<u8>,
    replies_to_skip: &mut usize,
) -> Result<Option<RespValue>, RespError> {
    loop {
        match parse(received) {
            Ok(Parsed::Complete { value, consumed }) if *replies_to_skip > 0 => {
                if matches!(value, RespValue::Error(_)) {
                    return Ok(Some(value));
                }
                received.drain(..consumed);
                *replies_to_skip -= 1;
            }
            Ok(Parsed::Complete { value, .. }) => return Ok(Some(value)),
            Ok(Parsed::Incomplete) => return Ok(None),
            Err(detail) => return Err(RespError::Protocol { addr, detail }),
        }
    }
}

/// The outcome of parsing a buffer that may hold only part of a reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// One whole value, and how many bytes it took.
    Complete { value: RespValue, consumed: usize },
    /// More bytes are needed; nothing is wrong yet.
    Incomplete,
}

/// Parses one RESP2 value from the start of `buf`; `Err` carries what is invalid.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, String> {
    let Some((line, after_line)) = read_line(buf) else {
        return Ok(Parsed::Incomplete);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err("empty line where a type byte was expected".to_owned());
    };
    let text = || String::from_utf8(rest.to_vec()).map_err(|_| "non-utf8 line".to_owned());
    let complete = |value| {
        Ok(Parsed::Complete {
            value,
            consumed: after_line,
        })
    };
    match kind {
        b'+' => complete(RespValue::Simple(text()?)),
        b'-' => complete(RespValue::Error(text()?)),
        b':' => complete(RespValue::Integer(parse_int(rest)?)),
        b'$' => match usize::try_from(parse_int(rest)?) {
            Err(_) => null_or_invalid(rest, after_line),
            Ok(len) => {
                let end = after_line.checked_add(len).ok_or("bulk length overflows")?;
                match buf.get(end..end.saturating_add(2)) {
                    None => Ok(Parsed::Incomplete),
                    Some(b"\r\n") => Ok(Parsed::Complete {
                        value: RespValue::Bulk(buf[after_line..end].to_vec()),
                        consumed: end.saturating_add(2),
                    }),
                    Some(_) => Err("bulk string not terminated by CRLF".to_owned()),
                }
            }
        },
        b'*' => match usize::try_from(parse_int(rest)?) {
            Err(_) => null_or_invalid(rest, after_line),
            Ok(count) => {
                let mut values = Vec::with_capacity(count.min(1024));
                let mut consumed = after_line;
                for _ in 0..count {
                    match parse(&buf[consumed..])? {
                        Parsed::Incomplete => return Ok(Parsed::Incomplete),
                        Parsed::Complete {
                            value,
                            consumed: used,
                        } => {
                            values.push(value);
                            consumed = consumed.saturating_add(used);
                        }
                    }
                }
                Ok(Parsed::Complete {
                    value: RespValue::Array(values),
                    consumed,
                })
            }
        },
        other => Err(format!("unknown resp2 type byte 0x{other:02x}")),
    }
}

/// A negative length is only valid as `-1`, RESP2's null.
fn null_or_invalid(rest: &[u8], consumed: usize) -> Result<Parsed, String> {
    if rest == b"-1" {
        Ok(Parsed::Complete {
            value: RespValue::Null,
            consumed,
        })
    } else {
        Err(format!("negative length {}", String::from_utf8_lossy(rest)))
    }
}

fn parse_int(digits: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("invalid integer {:?}", String::from_utf8_lossy(digits)))
}

/// The first line without its CRLF, and the index just past the CRLF.
fn read_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|pair| pair == b"\r\n")?;
    Some((&buf[..end], end.saturating_add(2)))
}

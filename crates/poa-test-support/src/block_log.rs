//! [`RedisServer::append_log_entry`]: an entry written straight into a node's block stream and
//! heights index, laid out as the protocol's write script lays them out (docs/protocol.md,
//! "Keys on every node") but past every check the script makes: what anyone who reaches a node
//! can write, for tests of forged, foreign and garbage entries.

use crate::redis_server::RedisServer;
use crate::resp::RespValue;

/// One entry of a node's block log, as its fields are stored.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// The height the entry claims.
    pub height: u64,
    /// The block id it claims, 64 hex digits.
    pub id: &'a str,
    /// The fencing epoch it claims.
    pub epoch: u64,
    /// The encoded block (or anything else).
    pub data: &'a [u8],
}

impl RedisServer {
    /// Appends `entry` to the stream `<key>:block:stream` and indexes it in
    /// `<key>:heights:index` under `<height>:<id>:<stream entry id>`, as the write script does.
    /// Panics when the server refuses either command.
    pub fn append_log_entry(&self, key: &str, entry: LogEntry<'_>) {
        let stream = format!("{key}:block:stream");
        let index = format!("{key}:heights:index");
        let height = entry.height.to_string();
        let epoch = entry.epoch.to_string();
        let stream_entry = match self.command(&[
            b"XADD",
            stream.as_bytes(),
            b"*",
            b"height",
            height.as_bytes(),
            b"id",
            entry.id.as_bytes(),
            b"epoch",
            epoch.as_bytes(),
            b"data",
            entry.data,
            b"timestamp",
            b"0",
        ]) {
            RespValue::Bulk(stream_entry) => String::from_utf8_lossy(&stream_entry).into_owned(),
            other => panic!("XADD answered {other:?}"),
        };
        let member = format!("{height}:{}:{stream_entry}", entry.id);
        match self.command(&[
            b"ZADD",
            index.as_bytes(),
            height.as_bytes(),
            member.as_bytes(),
        ]) {
            RespValue::Integer(_) => {}
            other => panic!("ZADD answered {other:?}"),
        }
    }
}

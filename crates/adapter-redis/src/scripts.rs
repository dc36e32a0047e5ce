//! The server-side scripts (`lua/*.lua`, embedded with `include_str!`) and the typed outcomes
//! their replies decode into.
//!
//! Exactly one decode function per script turns a reply (or the call's failure) into an
//! outcome; [`reply_code`] is the only place that looks at error text (the `LOCK_HELD:`,
//! `FENCING_ERROR:`, `HEIGHT_EXISTS:`, `HEIGHT_TRIMMED:` and `MEMBERSHIP:` prefixes, and `NOSCRIPT`). Nothing here performs I/O: `node.rs` runs
//! the scripts and hands the replies to these functions.

use std::sync::LazyLock;
use std::time::Duration;

use fred::bytes::Bytes;
use fred::types::Value;
use fred::types::scripts::Script;
use poa_ports::{BlockHeight, BlockId, Epoch};
use poa_quorum::{OwnerReply, PromoteReply, WriteReply};

mod membership;

pub(crate) use membership::{
    HeldMembership, InstallOutcome, decode_claim_server_id, decode_install_membership,
    decode_read_membership,
};

/// A Lua script with its name (for logs and metrics) and SHA-1 (for `EVALSHA`).
#[derive(Debug)]
pub struct LuaScript {
    /// The operation name: `renew_lease`, `promote`, ...
    pub name: &'static str,
    /// The script text and its SHA-1.
    pub(crate) script: Script,
}

impl LuaScript {
    /// The script's full text as the adapter loads it (`SCRIPT LOAD`), the membership check in
    /// front for a checked script.
    pub fn lua(&self) -> &str {
        self.script.lua().map_or("", |lua| &**lua)
    }

    /// The script's SHA-1, what the adapter calls it by (`EVALSHA`).
    pub fn sha1(&self) -> &str {
        self.script.sha1()
    }

    /// A script run as it is written (the membership scripts and `release`).
    fn new(name: &'static str, lua: &'static str) -> Self {
        Self {
            name,
            script: Script::from_lua(lua),
        }
    }

    /// A script of the protocol behind the membership check (`lua/membership_check.lua`): its
    /// first two keys and arguments are the caller's membership, and the script below sees the
    /// rest.
    fn checked(name: &'static str, lua: &'static str) -> Self {
        Self {
            name,
            script: Script::from_lua(format!("{MEMBERSHIP_CHECK}{lua}")),
        }
    }
}

/// The check every script of the protocol but `release` starts with.
pub(crate) const MEMBERSHIP_CHECK: &str = include_str!("../lua/membership_check.lua");

/// Every script of the protocol (`docs/protocol.md`, "Server-side scripts"), hashed once per
/// process: the keys and arguments of each are in the comment at the top of its `lua/` file,
/// and a checked script takes the membership check's two keys and two arguments first
/// (`lua/membership_check.lua`).
///
/// Public because the benchmark harness measures the physical floors with the very scripts the
/// adapter loads (the raw `write_block` on one node, on N nodes until a quorum): a floor run
/// with another script would not be a floor.
#[derive(Debug)]
pub struct Scripts {
    /// Whether this token holds the lease; re-arms its TTL if it does (checked).
    pub renew_lease: LuaScript,
    /// Takes the lease for a new leadership or continues this token's (checked).
    pub promote: LuaScript,
    /// Deletes the lease if this token holds it (not checked).
    pub release: LuaScript,
    /// The fenced, height-unique append of one block (checked).
    pub write_block: LuaScript,
    /// The highest height stored (checked).
    pub read_latest: LuaScript,
    /// Stream entries from a height on (checked).
    pub read_from: LuaScript,
    /// The block each height of a range names (checked).
    pub read_heights: LuaScript,
    /// Removes entries proven invalid (checked).
    pub remove_entries: LuaScript,
    /// The node's server id and membership record (not checked).
    pub read_membership: LuaScript,
    /// Writes a server id on a node that holds none (not checked).
    pub claim_server_id: LuaScript,
    /// Installs a membership record (not checked).
    pub install_membership: LuaScript,
}

impl Scripts {
    /// Every script, in the order a node loads them at its first connection.
    pub fn all(&self) -> [&LuaScript; 11] {
        [
            &self.renew_lease,
            &self.promote,
            &self.release,
            &self.write_block,
            &self.read_latest,
            &self.read_from,
            &self.read_heights,
            &self.remove_entries,
            &self.read_membership,
            &self.claim_server_id,
            &self.install_membership,
        ]
    }
}

/// The scripts, hashed on first use: the ones every node client of the adapter loads and calls.
pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    renew_lease: LuaScript::checked("renew_lease", include_str!("../lua/renew_lease.lua")),
    promote: LuaScript::checked("promote", include_str!("../lua/promote.lua")),
    release: LuaScript::new("release", include_str!("../lua/release.lua")),
    write_block: LuaScript::checked("write_block", include_str!("../lua/write_block.lua")),
    read_latest: LuaScript::checked("read_latest", include_str!("../lua/read_latest.lua")),
    read_from: LuaScript::checked("read_from", include_str!("../lua/read_from.lua")),
    read_heights: LuaScript::checked("read_heights", include_str!("../lua/read_heights.lua")),
    remove_entries: LuaScript::checked("remove_entries", include_str!("../lua/remove_entries.lua")),
    read_membership: LuaScript::new(
        "read_membership",
        include_str!("../lua/read_membership.lua"),
    ),
    claim_server_id: LuaScript::new(
        "claim_server_id",
        include_str!("../lua/claim_server_id.lua"),
    ),
    install_membership: LuaScript::new(
        "install_membership",
        include_str!("../lua/install_membership.lua"),
    ),
});

/// Why a call to one node produced no usable reply. Every variant but `UnexpectedReply` is an
/// unknown outcome: the command may still have run (or may still run) on the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NodeError {
    /// No reply within the node timeout.
    #[error("no reply within {after:?}")]
    TimedOut {
        /// The bound that expired.
        after: Duration,
    },
    /// The connection failed or was closed.
    #[error("connection failed: {reason}")]
    Transport {
        /// What the client reported.
        reason: String,
    },
    /// The node answered with an error that is not a domain refusal.
    #[error("node error: {reason}")]
    Server {
        /// The error text.
        reason: String,
    },
    /// The node refused the caller's membership (`MEMBERSHIP:`): its server id or its record
    /// is not the one the caller joined. A refusal, never a vote; the caller reads the
    /// membership again.
    #[error("{reason}")]
    Membership {
        /// What the node answered, `MEMBERSHIP:` and why.
        reason: String,
    },
    /// The node refused this process the command: authentication (`WRONGPASS`, `NOAUTH`) or
    /// the ACL (`NOPERM`, or a command a script calls). Not a vote, and retrying cannot help
    /// until the settings or the server change.
    #[error("refused: {reason}")]
    Denied {
        /// What the node answered.
        reason: String,
    },
    /// The reply did not have the shape the script returns.
    #[error("unexpected reply to {script}: {reason}")]
    UnexpectedReply {
        /// The script.
        script: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl NodeError {
    /// Whether the node's connection must be reset so the next call reconnects: after a
    /// timeout or a transport error, never after a domain refusal or a malformed reply.
    pub(crate) fn needs_reset(&self) -> bool {
        matches!(self, Self::TimedOut { .. } | Self::Transport { .. })
    }

    /// Whether the node refused the caller's membership.
    pub(crate) fn is_membership(&self) -> bool {
        matches!(self, Self::Membership { .. })
    }

    /// Whether the outcome of the command is unknown (timed out before a reply).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, Self::TimedOut { .. })
    }
}

/// A call's failure as `node.rs` reports it, before decoding.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The outer bound expired.
    TimedOut(Duration),
    /// The client returned an error (a server error reply, a transport error or its own
    /// command timeout).
    Client(fred::error::Error),
}

/// A domain refusal a script answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    LockHeld,
    Fenced { reason: String },
    HeightExists,
    HeightTrimmed,
}

const LOCK_HELD: &str = "LOCK_HELD:";
const FENCING_ERROR: &str = "FENCING_ERROR:";
const HEIGHT_EXISTS: &str = "HEIGHT_EXISTS:";
const HEIGHT_TRIMMED: &str = "HEIGHT_TRIMMED:";
const NOSCRIPT: &str = "NOSCRIPT";
const MEMBERSHIP: &str = "MEMBERSHIP:";
/// Error codes of an authentication or ACL refusal outside a script.
const DENIED: [&str; 3] = ["NOPERM", "WRONGPASS", "NOAUTH"];
/// How Redis 7 words an ACL refusal of a command a script calls (behind `ERR`).
const DENIED_IN_SCRIPT: &str = "can't run this command";

/// An error reply this crate recognises by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyCode {
    /// A script's domain refusal.
    Refusal(Refusal),
    /// The node does not have the script (a restart or `SCRIPT FLUSH`): it did not run.
    NoScript,
    /// The node refused the caller's membership.
    Membership(String),
    /// The node refused the command: authentication or the ACL.
    Denied(String),
}

/// The only function that looks at error text: the script prefixes and `NOSCRIPT`.
fn reply_code(error: &fred::error::Error) -> Option<ReplyCode> {
    let details = error.details();
    if details.starts_with(NOSCRIPT) {
        return Some(ReplyCode::NoScript);
    }
    if DENIED.iter().any(|code| details.starts_with(code)) || details.contains(DENIED_IN_SCRIPT) {
        return Some(ReplyCode::Denied(details.to_owned()));
    }
    // Redis may put a generic code in front of a script's error text.
    let text = details.strip_prefix("ERR ").unwrap_or(details).trim_start();
    if text.starts_with(MEMBERSHIP) {
        return Some(ReplyCode::Membership(text.to_owned()));
    }
    let refusal = if text.starts_with(LOCK_HELD) {
        Refusal::LockHeld
    } else if let Some(reason) = text.strip_prefix(FENCING_ERROR) {
        Refusal::Fenced {
            reason: reason.trim().to_owned(),
        }
    } else if text.starts_with(HEIGHT_EXISTS) {
        Refusal::HeightExists
    } else if text.starts_with(HEIGHT_TRIMMED) {
        Refusal::HeightTrimmed
    } else {
        return None;
    };
    Some(ReplyCode::Refusal(refusal))
}

/// Classifies a call's failure: a domain refusal, else a [`NodeError`] by the client's error
/// kind.
fn classify_refusal(error: &CallError) -> Result<Refusal, NodeError> {
    let error = match error {
        CallError::TimedOut(after) => return Err(NodeError::TimedOut { after: *after }),
        CallError::Client(error) => error,
    };
    match reply_code(error) {
        Some(ReplyCode::Refusal(refusal)) => return Ok(refusal),
        Some(ReplyCode::Membership(reason)) => return Err(NodeError::Membership { reason }),
        Some(ReplyCode::Denied(reason)) => return Err(NodeError::Denied { reason }),
        Some(ReplyCode::NoScript) | None => {}
    }
    use fred::error::ErrorKind;
    Err(match error.kind() {
        ErrorKind::Timeout => NodeError::TimedOut {
            after: Duration::ZERO,
        },
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Protocol | ErrorKind::Routing => {
            NodeError::Transport {
                reason: error.to_string(),
            }
        }
        _ => NodeError::Server {
            reason: error.to_string(),
        },
    })
}

/// Whether the node lost the script (restart, `SCRIPT FLUSH`) and it must be loaded again.
pub(crate) fn is_noscript(error: &fred::error::Error) -> bool {
    reply_code(error) == Some(ReplyCode::NoScript)
}

/// A refusal a script never answers with, reported as a malformed reply.
fn unexpected_refusal(script: &'static str, refusal: &Refusal) -> NodeError {
    NodeError::UnexpectedReply {
        script,
        reason: format!("{refusal:?}"),
    }
}

fn unexpected(script: &'static str, value: &Value) -> NodeError {
    NodeError::UnexpectedReply {
        script,
        reason: format!("{value:?}"),
    }
}

fn as_integer(script: &'static str, value: &Value) -> Result<i64, NodeError> {
    match value {
        Value::Integer(number) => Ok(*number),
        other => Err(unexpected(script, other)),
    }
}

/// Decodes a reply of a script that returns 1 or 0.
fn decode_flag(script: &'static str, reply: Result<Value, CallError>) -> Result<bool, NodeError> {
    match reply {
        Ok(value) => match as_integer(script, &value)? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(unexpected(script, &value)),
        },
        Err(error) => Err(match classify_refusal(&error) {
            Ok(refusal) => unexpected_refusal(script, &refusal),
            Err(node_error) => node_error,
        }),
    }
}

/// One node's answer to `renew_lease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnerOutcome {
    /// The node holds this process's token.
    Owner,
    /// The lease is free or held by another token.
    NotOwner,
    /// No usable answer.
    Unavailable(NodeError),
}

impl OwnerOutcome {
    /// The answer as the ownership tally counts it.
    pub(crate) fn reply(&self) -> OwnerReply {
        match self {
            Self::Owner => OwnerReply::Owner,
            Self::NotOwner => OwnerReply::NotOwner,
            Self::Unavailable(_) => OwnerReply::Unavailable,
        }
    }
}

/// Decodes a `renew_lease` reply.
pub(crate) fn decode_renew_lease(reply: Result<Value, CallError>) -> OwnerOutcome {
    match decode_flag("renew_lease", reply) {
        Ok(true) => OwnerOutcome::Owner,
        Ok(false) => OwnerOutcome::NotOwner,
        Err(error) => OwnerOutcome::Unavailable(error),
    }
}

/// One node's answer to `promote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PromoteOutcome {
    /// The node granted (or already held) the lease for this token, at this epoch.
    Granted(Epoch),
    /// Another token holds the lease on this node.
    HeldByAnother,
    /// No usable answer; the grant may still have happened.
    Unavailable(NodeError),
}

impl PromoteOutcome {
    /// The answer as the promote tally counts it.
    pub(crate) fn reply(&self) -> PromoteReply {
        match self {
            Self::Granted(epoch) => PromoteReply::Granted(*epoch),
            Self::HeldByAnother => PromoteReply::HeldByAnother,
            Self::Unavailable(_) => PromoteReply::Unavailable,
        }
    }

    /// Whether the node may now hold the lease for this process: it granted, or it gave no
    /// usable answer (a timed-out promote may still have run, or may still run). Only a
    /// refusal proves that it does not.
    pub(crate) fn may_hold_grant(&self) -> bool {
        self.reply().may_hold_grant()
    }
}

/// Decodes a `promote` reply.
pub(crate) fn decode_promote(reply: Result<Value, CallError>) -> PromoteOutcome {
    const SCRIPT: &str = "promote";
    match reply {
        Ok(value) => match as_integer(SCRIPT, &value)
            .and_then(|epoch| u64::try_from(epoch).map_err(|_| unexpected(SCRIPT, &value)))
        {
            Ok(epoch) => PromoteOutcome::Granted(Epoch::new(epoch)),
            Err(error) => PromoteOutcome::Unavailable(error),
        },
        Err(error) => match classify_refusal(&error) {
            Ok(Refusal::LockHeld) => PromoteOutcome::HeldByAnother,
            Ok(refusal) => PromoteOutcome::Unavailable(unexpected_refusal(SCRIPT, &refusal)),
            Err(node_error) => PromoteOutcome::Unavailable(node_error),
        },
    }
}

/// One node's answer to `release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReleaseOutcome {
    /// The lease held this token and was deleted.
    Released,
    /// The lease did not hold this token; nothing changed.
    NotOwner,
    /// No usable answer.
    Failed(NodeError),
}

/// Decodes a `release` reply.
pub(crate) fn decode_release(reply: Result<Value, CallError>) -> ReleaseOutcome {
    match decode_flag("release", reply) {
        Ok(true) => ReleaseOutcome::Released,
        Ok(false) => ReleaseOutcome::NotOwner,
        Err(error) => ReleaseOutcome::Failed(error),
    }
}

/// One node's answer to `write_block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// The block was appended.
    Written,
    /// This very block was already stored at this height (an earlier write whose reply was
    /// lost, or a repair): counts toward the quorum.
    AlreadyStored,
    /// Another block is stored at this height.
    HeightTaken,
    /// The height is at or below the highest height this node trimmed from its index: it no
    /// longer knows what it held there, so it takes nothing.
    HeightTrimmed,
    /// The lease is not ours on this node, or our epoch is stale.
    Fenced {
        /// What the node reported.
        reason: String,
    },
    /// No usable answer; the write may still land.
    Failed(NodeError),
}

impl WriteOutcome {
    /// The answer as the write tally counts it.
    pub(crate) fn reply(&self) -> WriteReply {
        match self {
            Self::Written => WriteReply::Written,
            Self::AlreadyStored => WriteReply::AlreadyStored,
            Self::HeightTaken | Self::HeightTrimmed => WriteReply::HeightRefused,
            Self::Fenced { .. } => WriteReply::Fenced,
            Self::Failed(NodeError::Denied { .. }) => WriteReply::Denied,
            Self::Failed(_) => WriteReply::Failed,
        }
    }
}

/// Decodes a `write_block` reply.
pub(crate) fn decode_write_block(reply: Result<Value, CallError>) -> WriteOutcome {
    const SCRIPT: &str = "write_block";
    match reply {
        Ok(Value::Integer(0)) => WriteOutcome::AlreadyStored,
        Ok(Value::String(_) | Value::Bytes(_)) => WriteOutcome::Written,
        Ok(other) => WriteOutcome::Failed(unexpected(SCRIPT, &other)),
        Err(error) => match classify_refusal(&error) {
            Ok(Refusal::Fenced { reason }) => WriteOutcome::Fenced { reason },
            Ok(Refusal::HeightExists) => WriteOutcome::HeightTaken,
            Ok(Refusal::HeightTrimmed) => WriteOutcome::HeightTrimmed,
            Ok(refusal) => WriteOutcome::Failed(unexpected_refusal(SCRIPT, &refusal)),
            Err(node_error) => WriteOutcome::Failed(node_error),
        },
    }
}

/// The server clock in a `write_block` reply that appended: the milliseconds part of the new
/// stream entry's id (`<ms>-<seq>`, taken from the server's clock by `XADD *`).
pub(crate) fn entry_id_millis(reply: &Value) -> Option<u64> {
    let id = reply.as_str()?;
    let (millis, _) = id.split_once('-')?;
    millis.parse().ok()
}

/// What `read_latest` answered: the highest stored height and the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatestRead {
    /// The highest stored height, `None` for an empty node.
    pub(crate) height: Option<BlockHeight>,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub(crate) server_millis: u64,
}

/// Decodes a `read_latest` reply: `{height, seconds, microseconds}`.
pub(crate) fn decode_read_latest(reply: Result<Value, CallError>) -> Result<LatestRead, NodeError> {
    const SCRIPT: &str = "read_latest";
    let value = reply_of_read(SCRIPT, reply)?;
    let Value::Array(parts) = &value else {
        return Err(unexpected(SCRIPT, &value));
    };
    let [height, seconds, micros] = parts.as_slice() else {
        return Err(unexpected(SCRIPT, &value));
    };
    let server_millis = server_millis(SCRIPT, seconds, micros)?;
    let height = as_integer(SCRIPT, height)?;
    let height = if height < 0 {
        None
    } else {
        Some(BlockHeight::new(
            u64::try_from(height).map_err(|_| unexpected(SCRIPT, &value))?,
        ))
    };
    Ok(LatestRead {
        height,
        server_millis,
    })
}

/// A `TIME` reply's seconds and microseconds as milliseconds since the Unix epoch.
fn server_millis(script: &'static str, seconds: &Value, micros: &Value) -> Result<u64, NodeError> {
    let part = |value: &Value| {
        u64::try_from(as_integer(script, value)?).map_err(|_| unexpected(script, value))
    };
    Ok(part(seconds)?
        .saturating_mul(1_000)
        .saturating_add(part(micros)? / 1_000))
}

/// One stream entry as stored, before its payload is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    /// The height the writer stored it under.
    pub(crate) height: BlockHeight,
    /// The writer's epoch.
    pub(crate) epoch: Epoch,
    /// The block id the writer stored it under.
    pub(crate) id: BlockId,
    /// The encoded sealed block.
    pub(crate) data: Bytes,
    /// The stream entry's id, which names this very entry (two entries may carry one block
    /// id: an honest header under a forged seal).
    pub(crate) entry_id: String,
    /// For an entry whose data is longer than the largest block the log carries: its length
    /// (the read left the data out, and `data` is empty).
    pub(crate) oversized: Option<u64>,
}

/// What `read_from` returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StreamRead {
    /// Entries whose height, epoch and id parse, lowest heights first.
    pub(crate) entries: Vec<StreamEntry>,
    /// The node's highest entry, when it lies above `entries`: evidence of how far the node's
    /// log reaches, whatever the read window.
    pub(crate) top: Option<StreamEntry>,
    /// Entries and index members with a missing or unparsable field (skipped, counted).
    pub(crate) malformed: usize,
    /// `None` when the node returned everything it holds from the height asked for; otherwise
    /// the highest height its read examined (it may hold more above).
    pub(crate) covered_to: Option<BlockHeight>,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub(crate) server_millis: u64,
}

/// Decodes a `remove_entries` reply: how many entries and members were removed.
pub(crate) fn decode_remove_entries(reply: Result<Value, CallError>) -> Result<u64, NodeError> {
    const SCRIPT: &str = "remove_entries";
    let value = reply_of_read(SCRIPT, reply)?;
    u64::try_from(as_integer(SCRIPT, &value)?).map_err(|_| unexpected(SCRIPT, &value))
}

/// Decodes a `read_from` reply: `{rows, top, skipped, covered_to, seconds, microseconds}`.
pub(crate) fn decode_read_from(reply: Result<Value, CallError>) -> Result<StreamRead, NodeError> {
    const SCRIPT: &str = "read_from";
    let [rows, top, skipped, covered_to, seconds, micros] = parts_of(SCRIPT, reply)?;
    let server_millis = server_millis(SCRIPT, &seconds, &micros)?;
    let skipped = usize::try_from(as_integer(SCRIPT, &skipped)?).unwrap_or(usize::MAX);
    let covered_to = match as_integer(SCRIPT, &covered_to)? {
        height if height < 0 => None,
        height => Some(BlockHeight::new(
            u64::try_from(height).map_err(|_| unexpected(SCRIPT, &covered_to))?,
        )),
    };
    let mut read = StreamRead {
        malformed: skipped,
        covered_to,
        server_millis,
        ..StreamRead::default()
    };
    for row in rows_of(rows) {
        match decode_entry(row) {
            Some(entry) => read.entries.push(entry),
            None => read.malformed = read.malformed.saturating_add(1),
        }
    }
    // An empty top is an empty table, which may come back as an empty array or as nil.
    if let Value::Array(fields) = &top
        && !fields.is_empty()
    {
        match decode_entry(top) {
            Some(entry) => read.top = Some(entry),
            None => read.malformed = read.malformed.saturating_add(1),
        }
    }
    Ok(read)
}

/// What `read_heights` returned: the block each index member names, unverified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeightsRead {
    /// The height and block id of every member that parses, lowest heights first.
    pub(crate) claims: Vec<(BlockHeight, BlockId)>,
    /// Members that did not parse, in the script or here (skipped, counted).
    pub(crate) malformed: usize,
}

/// Decodes a `read_heights` reply: `{rows, skipped}`, each row `{height, block id hex}`.
pub(crate) fn decode_read_heights(
    reply: Result<Value, CallError>,
) -> Result<HeightsRead, NodeError> {
    const SCRIPT: &str = "read_heights";
    let [rows, skipped] = parts_of(SCRIPT, reply)?;
    let mut read = HeightsRead {
        malformed: usize::try_from(as_integer(SCRIPT, &skipped)?).unwrap_or(usize::MAX),
        ..HeightsRead::default()
    };
    for row in rows_of(rows) {
        match decode_claim(row) {
            Some(claim) => read.claims.push(claim),
            None => read.malformed = read.malformed.saturating_add(1),
        }
    }
    Ok(read)
}

fn decode_claim(row: Value) -> Option<(BlockHeight, BlockId)> {
    let Value::Array(fields) = row else {
        return None;
    };
    let [height, id]: [Value; 2] = fields.try_into().ok()?;
    Some((
        BlockHeight::new(height.as_str()?.parse().ok()?),
        id.as_str()?.parse().ok()?,
    ))
}

/// The reply of a script that refuses nothing (a read): any refusal is unexpected.
fn reply_of_read(
    script: &'static str,
    reply: Result<Value, CallError>,
) -> Result<Value, NodeError> {
    reply.map_err(|error| match classify_refusal(&error) {
        Ok(refusal) => unexpected_refusal(script, &refusal),
        Err(node_error) => node_error,
    })
}

/// The `N` parts of a read's array reply.
fn parts_of<const N: usize>(
    script: &'static str,
    reply: Result<Value, CallError>,
) -> Result<[Value; N], NodeError> {
    match reply_of_read(script, reply)? {
        Value::Array(parts) => parts
            .try_into()
            .map_err(|parts| unexpected(script, &Value::Array(parts))),
        other => Err(unexpected(script, &other)),
    }
}

/// The rows of an array reply; an empty Lua table may come back as nil.
fn rows_of(value: Value) -> Vec<Value> {
    match value {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    }
}

fn decode_entry(row: Value) -> Option<StreamEntry> {
    let Value::Array(fields) = row else {
        return None;
    };
    let mut fields = fields.into_iter();
    let [height, epoch, id, data, entry_id] = std::array::from_fn(|_| fields.next());
    let oversized = match (fields.next(), fields.next()) {
        (None, _) => None,
        (Some(length), None) => Some(u64::try_from(length.as_i64()?).ok()?),
        (Some(_), Some(_)) => return None,
    };
    let text = |value: Option<Value>| value?.as_str().map(|text| text.into_owned());
    Some(StreamEntry {
        height: BlockHeight::new(text(height)?.parse().ok()?),
        epoch: Epoch::new(text(epoch)?.parse().ok()?),
        id: text(id)?.parse().ok()?,
        data: data?.into_bytes()?,
        entry_id: text(entry_id)?,
        oversized,
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use fred::error::{Error, ErrorKind};

    use super::*;

    fn server_error(text: &'static str) -> Result<Value, CallError> {
        Err(CallError::Client(Error::new(ErrorKind::Unknown, text)))
    }

    #[test]
    fn decode_promote__when_each_reply_kind__then_maps_to_outcome() {
        assert_eq!(
            decode_promote(Ok(Value::Integer(7))),
            PromoteOutcome::Granted(Epoch::new(7))
        );
        assert_eq!(
            decode_promote(server_error("LOCK_HELD: another leader holds the lock")),
            PromoteOutcome::HeldByAnother
        );
        assert!(matches!(
            decode_promote(Err(CallError::TimedOut(Duration::from_millis(5)))),
            PromoteOutcome::Unavailable(NodeError::TimedOut { .. })
        ));
        assert!(matches!(
            decode_promote(Ok(Value::Integer(-1))),
            PromoteOutcome::Unavailable(NodeError::UnexpectedReply { .. })
        ));
    }

    #[test]
    fn decode_write_block__when_each_reply_kind__then_maps_to_outcome() {
        assert_eq!(
            decode_write_block(Ok(Value::String("1-0".into()))),
            WriteOutcome::Written
        );
        assert_eq!(
            decode_write_block(Ok(Value::Integer(0))),
            WriteOutcome::AlreadyStored
        );
        assert_eq!(
            decode_write_block(server_error("HEIGHT_EXISTS: height 3 holds another block")),
            WriteOutcome::HeightTaken
        );
        assert_eq!(
            decode_write_block(server_error("FENCING_ERROR: token is stale")),
            WriteOutcome::Fenced {
                reason: "token is stale".into()
            }
        );
        assert!(matches!(
            decode_write_block(Err(CallError::Client(Error::new(ErrorKind::IO, "reset")))),
            WriteOutcome::Failed(NodeError::Transport { .. })
        ));
        assert!(matches!(
            decode_write_block(server_error("ERR something else")),
            WriteOutcome::Failed(NodeError::Server { .. })
        ));
    }

    #[test]
    fn entry_id_millis__when_an_entry_id_or_another_reply__then_its_millis_or_none() {
        assert_eq!(
            entry_id_millis(&Value::String("1765000000123-4".into())),
            Some(1_765_000_000_123)
        );
        assert_eq!(entry_id_millis(&Value::Integer(0)), None);
        assert_eq!(entry_id_millis(&Value::String("garbage".into())), None);
    }

    #[test]
    fn is_noscript__when_node_lost_the_script__then_true_and_never_for_a_refusal() {
        let error = |text: &'static str| Error::new(ErrorKind::Unknown, text);
        assert!(is_noscript(&error(
            "NOSCRIPT No matching script. Please use EVAL."
        )));
        assert!(!is_noscript(&error(
            "HEIGHT_EXISTS: height 3 holds another block"
        )));
        assert!(!is_noscript(&error("ERR something else")));
        assert!(matches!(
            decode_renew_lease(server_error("NOSCRIPT No matching script")),
            OwnerOutcome::Unavailable(NodeError::Server { .. })
        ));
    }

    #[test]
    fn node_error__when_timed_out_or_transport__then_needs_reset_else_not() {
        assert!(
            NodeError::TimedOut {
                after: Duration::ZERO
            }
            .needs_reset()
        );
        assert!(NodeError::Transport { reason: "x".into() }.needs_reset());
        assert!(!NodeError::Server { reason: "x".into() }.needs_reset());
    }

    #[test]
    fn decode_read_from__when_an_entry_came_without_its_oversized_data__then_keeps_its_length() {
        // given: the row the script answers for an entry longer than the bound
        let id = BlockId::from_bytes([3; 32]);
        let row = Value::Array(vec![
            Value::String("5".into()),
            Value::String("2".into()),
            Value::String(id.to_hex().into()),
            Value::String("".into()),
            Value::String("1-0".into()),
            Value::Integer(4_194_304),
        ]);
        let reply = Ok(Value::Array(vec![
            Value::Array(vec![row]),
            Value::Array(vec![]),
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(1_700_000_000),
            Value::Integer(0),
        ]));

        // when
        let read = decode_read_from(reply).unwrap();

        // then
        assert_eq!(read.malformed, 0);
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].oversized, Some(4_194_304));
        assert!(read.entries[0].data.is_empty());
    }

    #[test]
    fn decode_read_from__when_an_entry_is_malformed__then_skips_and_counts_it() {
        // given
        let id = BlockId::from_bytes([3; 32]);
        let good = Value::Array(vec![
            Value::String("5".into()),
            Value::String("2".into()),
            Value::String(id.to_hex().into()),
            Value::Bytes(Bytes::from_static(b"payload")),
            Value::String("1-0".into()),
        ]);
        let bad = Value::Array(vec![
            Value::String("x".into()),
            Value::String("2".into()),
            Value::String("".into()),
            Value::String("".into()),
            Value::String("2-0".into()),
        ]);

        let reply = |rows: Vec<Value>, top: Value, skipped: i64, covered_to: i64| {
            Ok(Value::Array(vec![
                Value::Array(rows),
                top,
                Value::Integer(skipped),
                Value::Integer(covered_to),
                Value::Integer(1_700_000_000),
                Value::Integer(0),
            ]))
        };

        // when
        let read = decode_read_from(reply(
            vec![good.clone(), bad.clone()],
            Value::Array(vec![]),
            2,
            -1,
        ))
        .unwrap();
        let capped = decode_read_from(reply(vec![], good, 0, 7)).unwrap();
        let bad_top = decode_read_from(reply(vec![], bad, 0, -1)).unwrap();

        // then: a malformed row and two malformed index members are counted
        assert_eq!(read.malformed, 3);
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].height, BlockHeight::new(5));
        assert_eq!(read.entries[0].epoch, Epoch::new(2));
        assert_eq!(read.entries[0].id, id);
        assert_eq!((read.top, read.covered_to), (None, None));
        assert_eq!(capped.top.map(|top| top.id), Some(id));
        assert_eq!(capped.covered_to, Some(BlockHeight::new(7)));
        assert_eq!((bad_top.top, bad_top.malformed), (None, 1));
    }

    #[test]
    fn decode_read_latest__when_empty_or_height__then_none_or_some_with_the_server_time() {
        let reply = |height: i64| {
            Ok(Value::Array(vec![
                Value::Integer(height),
                Value::Integer(1_700_000_000),
                Value::Integer(250_000),
            ]))
        };
        assert_eq!(
            decode_read_latest(reply(-1)),
            Ok(LatestRead {
                height: None,
                server_millis: 1_700_000_000_250
            })
        );
        assert_eq!(
            decode_read_latest(reply(9)).map(|read| read.height),
            Ok(Some(BlockHeight::new(9)))
        );
        assert!(decode_read_latest(Ok(Value::Integer(9))).is_err());
    }

    #[test]
    fn decode_read_heights__when_a_row_is_malformed__then_skips_and_counts_it() {
        // given: one claim, one row whose id is not a block id, and two members the script
        // already skipped
        let id = BlockId::from_bytes([4; 32]);
        let row = |height: &str, id: &str| {
            Value::Array(vec![
                Value::String(height.to_owned().into()),
                Value::String(id.to_owned().into()),
            ])
        };
        let reply = Ok(Value::Array(vec![
            Value::Array(vec![row("9", &id.to_hex()), row("10", "abc")]),
            Value::Integer(2),
        ]));

        // when
        let read = decode_read_heights(reply).unwrap();
        let empty = decode_read_heights(Ok(Value::Array(vec![Value::Null, Value::Integer(0)])));

        // then
        assert_eq!(read.claims, vec![(BlockHeight::new(9), id)]);
        assert_eq!(read.malformed, 3);
        assert_eq!(empty.unwrap(), HeightsRead::default());
        assert!(decode_read_heights(Ok(Value::Integer(1))).is_err());
    }
}

//! The decoders of the membership scripts (`read_membership`, `claim_server_id`,
//! `install_membership`): one per script, as for the others.

use fred::types::Value;
use poa_quorum::{JointSides, MembershipRecord, ServerId};

use super::{CallError, NodeError, Refusal, classify_refusal, unexpected, unexpected_refusal};

/// What a node holds: its server id and its membership record, each if any, and whether a
/// lease is held there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldMembership {
    pub(crate) server_id: Option<ServerId>,
    pub(crate) record: Option<MembershipRecord>,
    pub(crate) lease_held: bool,
}

/// Decodes a `read_membership` reply: `{id, generation, digest, members, size, budget,
/// lease, old, new}` (`old` and `new` name a joint record's sets). A
/// record whose fields do not parse, or whose digest is not its members', was not written by a
/// producer: the reply is reported as malformed (the node then has no say).
pub(crate) fn decode_read_membership(
    reply: Result<Value, CallError>,
) -> Result<HeldMembership, NodeError> {
    const SCRIPT: &str = "read_membership";
    let value = reply.map_err(|error| refusal_as_error(SCRIPT, &error))?;
    let Value::Array(parts) = &value else {
        return Err(unexpected(SCRIPT, &value));
    };
    let texts = parts
        .iter()
        .map(|part| part.as_str().map(|text| text.to_string()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| unexpected(SCRIPT, &value))?;
    let [
        id,
        generation,
        digest,
        members,
        size,
        budget,
        lease,
        old,
        new,
    ]: [String; 9] = texts.try_into().map_err(|_| unexpected(SCRIPT, &value))?;
    let server_id = match id.as_str() {
        "" => None,
        text => Some(
            ServerId::parse(text).ok_or_else(|| NodeError::UnexpectedReply {
                script: SCRIPT,
                reason: format!("the server id {text:?} is not 32 hex digits"),
            })?,
        ),
    };
    let lease_held = !lease.is_empty();
    if generation.is_empty() && digest.is_empty() {
        return Ok(HeldMembership {
            server_id,
            record: None,
            lease_held,
        });
    }
    let malformed = || NodeError::UnexpectedReply {
        script: SCRIPT,
        reason: format!(
            "the membership record (generation {generation:?}, digest {digest:?}) does not parse or its digest is not its members'"
        ),
    };
    let parse_ids = |text: &str| {
        text.split(',')
            .filter(|member| !member.is_empty())
            .map(ServerId::parse)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(malformed)
    };
    let members = parse_ids(&members)?;
    let mut record = MembershipRecord::new(
        generation.parse().map_err(|_| malformed())?,
        members,
        size.parse().map_err(|_| malformed())?,
        budget.parse().map_err(|_| malformed())?,
    );
    if !old.is_empty() || !new.is_empty() {
        record.joint = Some(JointSides::new(parse_ids(&old)?, parse_ids(&new)?));
    }
    if record.digest() != digest {
        return Err(malformed());
    }
    Ok(HeldMembership {
        server_id,
        record: Some(record),
        lease_held,
    })
}

/// Decodes a `claim_server_id` reply: the id the node holds afterwards.
pub(crate) fn decode_claim_server_id(
    reply: Result<Value, CallError>,
) -> Result<ServerId, NodeError> {
    const SCRIPT: &str = "claim_server_id";
    let value = reply.map_err(|error| refusal_as_error(SCRIPT, &error))?;
    value
        .as_str()
        .and_then(|text| ServerId::parse(&text))
        .ok_or_else(|| unexpected(SCRIPT, &value))
}

/// One node's answer to `install_membership`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InstallOutcome {
    /// The node holds the record now (it took it, or held it already).
    Holds,
    /// The node refused it: it holds another record or generation (`MEMBERSHIP:`), or a lease
    /// the installer does not hold (`LOCK_HELD:`).
    Refused {
        /// What the node answered.
        reason: String,
    },
    /// No usable answer; the record may still be installed.
    Failed(NodeError),
}

/// Decodes an `install_membership` reply.
pub(crate) fn decode_install_membership(reply: Result<Value, CallError>) -> InstallOutcome {
    const SCRIPT: &str = "install_membership";
    match reply {
        Ok(Value::Integer(0 | 1)) => InstallOutcome::Holds,
        Ok(other) => InstallOutcome::Failed(unexpected(SCRIPT, &other)),
        Err(error) => match classify_refusal(&error) {
            Ok(Refusal::LockHeld) => InstallOutcome::Refused {
                reason: "LOCK_HELD: the lease is held by another process".to_owned(),
            },
            Ok(refusal) => InstallOutcome::Failed(unexpected_refusal(SCRIPT, &refusal)),
            Err(NodeError::Membership { reason }) => InstallOutcome::Refused { reason },
            Err(node_error) => InstallOutcome::Failed(node_error),
        },
    }
}

/// A call's failure as a [`NodeError`]: these scripts answer no domain refusal.
fn refusal_as_error(script: &'static str, error: &CallError) -> NodeError {
    match classify_refusal(error) {
        Ok(refusal) => unexpected_refusal(script, &refusal),
        Err(node_error) => node_error,
    }
}

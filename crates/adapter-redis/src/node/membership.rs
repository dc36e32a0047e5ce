//! A node's membership calls: reading its server id and record, claiming an id, installing a
//! record. They run without the membership check in front (they are how a process learns the
//! membership it then passes to every other script).

use fred::types::Value;
use poa_quorum::{MembershipRecord, ServerId};

use super::{CallClass, RedisNode};
use crate::scripts::{self, HeldMembership, InstallOutcome, NodeError, SCRIPTS};

impl RedisNode {
    /// This node's server id and membership record.
    pub(crate) async fn read_membership(&self) -> Result<HeldMembership, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = &self.context.keys;
        let keys = vec![
            keys.server_id.clone(),
            keys.membership.clone(),
            keys.lease.clone(),
        ];
        let outcome = scripts::decode_read_membership(
            self.call_unchecked(&scripts.read_membership, keys, Vec::new())
                .await,
        );
        let class = match &outcome {
            Ok(_) => CallClass::Ok,
            Err(error) => self.failed(error),
        };
        self.observe(scripts.read_membership.name, class);
        outcome
    }

    /// Gives this node the server id `new` unless it holds one (other than `retired`, which
    /// `new` overwrites); returns the id it holds afterwards.
    pub(crate) async fn claim_server_id(
        &self,
        new: &ServerId,
        retired: Option<&ServerId>,
    ) -> Result<ServerId, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = vec![self.context.keys.server_id.clone()];
        let args = vec![
            Value::from(new.as_str()),
            Value::from(retired.map_or("", ServerId::as_str)),
        ];
        let outcome = scripts::decode_claim_server_id(
            self.call_unchecked(&scripts.claim_server_id, keys, args)
                .await,
        );
        let class = match &outcome {
            Ok(_) => CallClass::Ok,
            Err(error) => self.failed(error),
        };
        self.observe(scripts.claim_server_id.name, class);
        outcome
    }

    /// Installs `record` over `previous_digest` (empty: only on a node without a record whose id
    /// is a member), fenced by `token` (empty: an operator, only while no lease is held here,
    /// unless `change_step`: a membership change's step, taken over a held lease it fences).
    pub(crate) async fn install_membership(
        &self,
        record: &MembershipRecord,
        previous_digest: &str,
        token: &str,
        change_step: bool,
    ) -> InstallOutcome {
        let scripts = &*SCRIPTS;
        let keys = &self.context.keys;
        let keys = vec![
            keys.membership.clone(),
            keys.server_id.clone(),
            keys.lease.clone(),
        ];
        let joined = |ids: &[ServerId]| {
            ids.iter()
                .map(ServerId::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        let (old, new) = record.joint.as_ref().map_or_else(
            || (String::new(), String::new()),
            |sides| (joined(&sides.old), joined(&sides.new)),
        );
        let args = vec![
            Value::from(record.generation.to_string()),
            Value::from(record.digest()),
            Value::from(joined(&record.members)),
            Value::from(record.size.to_string()),
            Value::from(record.budget.to_string()),
            Value::from(previous_digest),
            Value::from(token),
            Value::from(old),
            Value::from(new),
            Value::from(if change_step { "1" } else { "" }),
        ];
        let outcome = scripts::decode_install_membership(
            self.call_unchecked(&scripts.install_membership, keys, args)
                .await,
        );
        let class = match &outcome {
            InstallOutcome::Holds => CallClass::Ok,
            InstallOutcome::Refused { .. } => CallClass::Refused,
            InstallOutcome::Failed(error) => self.failed(error),
        };
        self.observe(scripts.install_membership.name, class);
        outcome
    }
}

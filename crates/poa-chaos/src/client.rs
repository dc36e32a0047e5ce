//! A small blocking HTTP client for the node API (`/status`, `/blocks/{h}`,
//! `POST /transactions`) and its admin API (`POST /admin/step-down`), every call bounded by one
//! timeout.
//!
//! It turns replies into the few facts the harness needs and maps every failure (refused,
//! timed out, not JSON) to `None`: a node under fault not answering is an expected outcome here,
//! never an error. It knows nothing of faults or invariants.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

/// What `/status` says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeStatus {
    /// Height of the local chain head.
    pub(crate) height: u64,
    /// Id of the local chain head, hex.
    pub(crate) head_id: String,
    /// Whether the node leads with a valid lease.
    pub(crate) is_leader: bool,
    /// Whether the node holds the lease (it has an epoch), producing or not: a leader stopped
    /// at a blocked height keeps it.
    pub(crate) holds_lease: bool,
    /// The last cycle's failure, if the last cycle failed.
    pub(crate) last_error: Option<String>,
    /// Why the node stands aside from the lease (it cannot keep its chain current), if it does:
    /// stable while it lasts, where `last_error` shows whichever cycle failed last.
    pub(crate) standing_aside: Option<String>,
    /// What each Redis node answers while its calls fail (`lease.nodes[].last_error`), for the
    /// nodes whose calls fail.
    pub(crate) redis_errors: Vec<String>,
    /// Transactions waiting in its pool.
    pub(crate) pending: u64,
}

/// One block as `/blocks/{h}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockSummary {
    /// The block id, hex.
    pub(crate) id: String,
    /// The ids of its transactions, hex.
    pub(crate) transactions: Vec<String>,
}

/// A blocking client whose every request gives up after `timeout`.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: Agent,
}

impl Client {
    /// A client bounded by `timeout` per request.
    pub(crate) fn new(timeout: Duration) -> Self {
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self { agent }
    }

    /// The node's status, or `None` when it does not answer.
    pub(crate) fn status(&self, node: SocketAddr) -> Option<NodeStatus> {
        let (status, body) = self.get(node, "/status")?;
        if status != 200 {
            return None;
        }
        Some(NodeStatus {
            height: body.get("height")?.as_u64()?,
            head_id: body.get("head_id")?.as_str()?.to_owned(),
            is_leader: body.get("is_leader")?.as_bool()?,
            holds_lease: body.get("epoch").is_some_and(|epoch| !epoch.is_null()),
            last_error: body
                .get("last_error")
                .and_then(Value::as_str)
                .map(str::to_owned),
            standing_aside: body
                .get("standing_aside")
                .and_then(Value::as_str)
                .map(str::to_owned),
            redis_errors: body
                .pointer("/lease/nodes")
                .and_then(Value::as_array)
                .map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|node| node.get("last_error").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            pending: body
                .get("pending_transactions")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }

    /// The block at `height`: `Some(None)` when the node answers that it has none, `None` when
    /// it does not answer.
    pub(crate) fn block(&self, node: SocketAddr, height: u64) -> Option<Option<BlockSummary>> {
        let (status, body) = self.get(node, &format!("/blocks/{height}"))?;
        match status {
            200 => {
                let id = body.get("id")?.as_str()?.to_owned();
                let transactions = body
                    .get("transactions")?
                    .as_array()?
                    .iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect();
                Some(Some(BlockSummary { id, transactions }))
            }
            404 => Some(None),
            _ => None,
        }
    }

    /// Asks the node on `admin` to step down for `hold_off`; whether it answered 200.
    pub(crate) fn step_down(&self, admin: SocketAddr, hold_off: Duration) -> bool {
        let hold_off = humantime::format_duration(hold_off);
        self.agent
            .post(format!(
                "http://{admin}/admin/step-down?hold_off={hold_off}"
            ))
            .send_empty()
            .is_ok_and(|response| response.status().as_u16() == 200)
    }

    /// Submits a transaction; the id when the node accepted it.
    pub(crate) fn submit(&self, node: SocketAddr, payload: &[u8]) -> Option<String> {
        let response = self
            .agent
            .post(format!("http://{node}/transactions"))
            .send(payload);
        let (status, body) = read(response)?;
        (status == 202)
            .then(|| body.get("id")?.as_str().map(str::to_owned))
            .flatten()
    }

    fn get(&self, node: SocketAddr, path: &str) -> Option<(u16, Value)> {
        read(self.agent.get(format!("http://{node}{path}")).call())
    }
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Option<(u16, Value)> {
    let mut response = response.ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

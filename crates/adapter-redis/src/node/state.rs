//! A node's state for the whole life of the process (`ok`, `timed_out`, `refused` with the
//! reason, `unreachable`), from the replies to its calls and from its client's connection
//! attempts alike: shown in the status, as the `poa_node_state` gauge, and logged once per
//! change, never once per call.
//!
//! The client reports a failed connection attempt (the first one or any reconnection) only on
//! its error stream; that stream is drained whenever a call completes and whenever the status
//! is read, so a password changed or a certificate expired after startup is named at the next
//! reconnect. A refusal in a reply (an ACL that denies a command) is kept per family of
//! operations until one of that family succeeds: reads that still work do not hide writes the
//! ACL refuses. Owns no I/O beyond reading the client's events.

use std::sync::{Mutex, PoisonError};

use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::Server;
use poa_ports::NodeState;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

use super::CallClass;
use super::client_config::connection_condition;
use super::errors::{FAMILIES, Family};
use crate::metrics::{Metrics, NodeStateLabels};
use crate::scripts::NodeError;

/// A node's state and the events that move it.
#[derive(Debug)]
pub(super) struct NodeHealth {
    node: String,
    /// Whether the node's URL is `rediss://` (for the hint of a scheme that does not match).
    tls: bool,
    client: Client,
    errors: Mutex<Receiver<(fred::error::Error, Option<Server>)>>,
    health: Mutex<Health>,
    /// How the call being observed failed (set by `failing`, taken by `note`).
    pending: Mutex<Option<CallFailure>>,
    gauges: MetricFamily<NodeStateLabels, Gauge>,
}

impl NodeHealth {
    /// Subscribes to `client`'s errors before it connects, so the first connection's failures
    /// are seen too, and exposes the node (`node`, at `url`) as `unknown` until something
    /// answers or fails.
    pub(super) fn new(node: &str, url: &str, client: &Client, metrics: &Metrics) -> Self {
        let health = Self {
            node: node.to_owned(),
            tls: url.starts_with("rediss://"),
            client: client.clone(),
            errors: Mutex::new(client.error_rx()),
            health: Mutex::new(Health::default()),
            pending: Mutex::new(None),
            gauges: metrics.node_state.clone(),
        };
        health.expose(NodeState::Unknown);
        health
    }

    /// The node's state and why, after taking in what the client reported since last asked.
    pub(super) fn state(&self) -> (NodeState, Option<String>) {
        self.take_connection_events();
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let shown = health.shown();
        (shown.state, shown.reason)
    }

    /// How a failed call is labelled: a timeout behind a connection the node refuses or that
    /// cannot be made is that connection's failure, not a node that is slow to answer.
    pub(super) fn class_of(&self, error: &NodeError) -> CallClass {
        self.take_connection_events();
        let connection_fails = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connection
            .as_ref()
            .is_some_and(|shown| {
                matches!(shown.state, NodeState::Refused | NodeState::Unreachable)
            });
        match CallClass::of_error(error) {
            CallClass::TimedOut if connection_fails => CallClass::Failed,
            class => class,
        }
    }

    /// Records how the call being observed failed.
    pub(super) fn failing(&self, error: &NodeError) {
        let failure = match error {
            NodeError::Denied { reason } => CallFailure::Denied(reason.clone()),
            NodeError::TimedOut { .. } => CallFailure::TimedOut(error.to_string()),
            NodeError::Transport { .. } => CallFailure::Transport,
            NodeError::Server { .. }
            | NodeError::Membership { .. }
            | NodeError::UnexpectedReply { .. } => CallFailure::Answered,
        };
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
    }

    /// Takes in how `operation` ended (and what the client reported meanwhile); logs and
    /// exposes a change of state.
    pub(super) fn note(&self, operation: &'static str, class: CallClass) {
        let failure = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let event = match (class, failure) {
            (CallClass::Ok | CallClass::Refused, _) | (_, None) => Event::Answered { operation },
            (_, Some(CallFailure::Denied(reason))) => Event::Denied {
                operation,
                reason: format!("{operation}: {reason}"),
            },
            (_, Some(CallFailure::TimedOut(reason))) => Event::TimedOut { reason },
            (_, Some(CallFailure::Answered)) => Event::FailedAnswer,
            (_, Some(CallFailure::Transport)) => Event::ConnectionLost,
        };
        self.take_connection_events();
        self.apply(event);
    }

    /// Takes in the connection attempts the client reported since last asked: the last failed
    /// one stands until the client is connected again.
    fn take_connection_events(&self) {
        let mut last_failure = None;
        {
            let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match errors.try_recv() {
                    // `None`: a connection attempt failed; `Some(server)`: an open connection
                    // broke, which the next attempt judges.
                    Ok((error, None)) => last_failure = Some(error),
                    Ok((_, Some(_))) | Err(TryRecvError::Lagged(_)) => {}
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
        }
        if self.client.is_connected() {
            self.apply(Event::Connected);
        } else if let Some(error) = last_failure {
            let (state, reason) = connection_condition(&error, self.tls);
            self.apply(Event::ConnectionFailed(Shown {
                state,
                reason: Some(reason),
            }));
        }
    }

    fn apply(&self, event: Event) {
        let change = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(event);
        if let Some(Change { from, to }) = change {
            self.log(&to);
            self.gauges.get_or_create(&self.labels(from.state)).set(0);
            self.gauges.get_or_create(&self.labels(to.state)).set(1);
        }
    }

    fn log(&self, to: &Shown) {
        let node = self.node.as_str();
        let reason = to.reason.as_deref().unwrap_or_default();
        match to.state {
            NodeState::Refused => tracing::error!(
                node,
                state = to.state.label(),
                reason,
                "redis node refuses this process: fix its credentials, acl or certificates (operations guide, runbook: a redis node refuses this process)"
            ),
            NodeState::Unreachable => tracing::error!(
                node,
                state = to.state.label(),
                reason,
                "redis node unreachable (operations guide, runbook: a redis node is down)"
            ),
            NodeState::TimedOut => tracing::error!(
                node,
                state = to.state.label(),
                reason,
                "redis node does not answer in time (operations guide, runbook: a half-alive node)"
            ),
            NodeState::Ok => tracing::info!(node, "redis node answers again"),
            NodeState::Unknown => {}
        }
    }

    fn expose(&self, state: NodeState) {
        for each in NodeState::ALL {
            self.gauges
                .get_or_create(&self.labels(each))
                .set(i64::from(each == state));
        }
    }

    fn labels(&self, state: NodeState) -> NodeStateLabels {
        NodeStateLabels {
            node: self.node.clone(),
            state: state.label(),
        }
    }
}

/// How a call failed, as the state sees it.
#[derive(Debug)]
enum CallFailure {
    /// The node refused the command (ACL, authentication).
    Denied(String),
    /// No reply in time.
    TimedOut(String),
    /// The node answered with an error that says nothing about reaching it.
    Answered,
    /// The connection broke: the next connection attempt says why.
    Transport,
}

/// Something that tells about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A call got its answer.
    Answered { operation: &'static str },
    /// A call got an error answer that is not a refusal (a key of the wrong type, a membership
    /// the node does not hold): the node answers, the operation's family is not cleared.
    FailedAnswer,
    /// The node refused `operation`'s command.
    Denied {
        operation: &'static str,
        reason: String,
    },
    /// A call got no reply in time.
    TimedOut { reason: String },
    /// An open connection broke.
    ConnectionLost,
    /// The client is connected.
    Connected,
    /// The client's last connection attempt failed, as `Shown` says.
    ConnectionFailed(Shown),
}

/// A state with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: NodeState,
    reason: Option<String>,
}

/// A change of the shown state.
#[derive(Debug, PartialEq, Eq)]
struct Change {
    from: Shown,
    to: Shown,
}

/// What is known about a node, and the state last shown.
#[derive(Debug)]
struct Health {
    /// The last failed connection attempt, until the client is connected again.
    connection: Option<Shown>,
    /// Per family of operations, what the node refused, until one of the family succeeds.
    denied: [Option<String>; FAMILIES],
    /// The last call that got no reply in time, until one gets an answer.
    timed_out: Option<String>,
    /// Whether anything answered yet.
    answered: bool,
    shown: Shown,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            connection: None,
            denied: Default::default(),
            timed_out: None,
            answered: false,
            shown: Shown {
                state: NodeState::Unknown,
                reason: None,
            },
        }
    }
}

impl Health {
    /// Takes in `event`; returns the change of the shown state, if it is news: another state,
    /// or another reason for a refusal (a password fixed and an ACL still wrong). A timeout or
    /// an unreachable node whose error text varies is not news.
    fn apply(&mut self, event: Event) -> Option<Change> {
        match event {
            Event::Answered { operation } => {
                let family = Family::of(operation);
                if family.success_clears {
                    self.denied[family.index] = None;
                }
                self.reached();
            }
            Event::FailedAnswer => self.reached(),
            Event::Denied { operation, reason } => {
                self.denied[Family::of(operation).index] = Some(reason);
                self.reached();
            }
            Event::TimedOut { reason } => self.timed_out = Some(reason),
            Event::ConnectionLost => {}
            Event::Connected => self.connection = None,
            Event::ConnectionFailed(shown) => self.connection = Some(shown),
        }
        let now = self.derived();
        let news = now.state != self.shown.state
            || (now.state == NodeState::Refused && now.reason != self.shown.reason);
        let from = std::mem::replace(&mut self.shown, now.clone());
        news.then_some(Change { from, to: now })
    }

    /// The node answered: it is connected and not slow.
    fn reached(&mut self) {
        self.connection = None;
        self.timed_out = None;
        self.answered = true;
    }

    /// The connection's failure first (every call waits behind it), then what the node
    /// refuses, then a call without a reply.
    fn derived(&self) -> Shown {
        if let Some(connection) = &self.connection {
            return connection.clone();
        }
        if let Some(reason) = self.denied.iter().flatten().next() {
            return Shown {
                state: NodeState::Refused,
                reason: Some(reason.clone()),
            };
        }
        if let Some(reason) = &self.timed_out {
            return Shown {
                state: NodeState::TimedOut,
                reason: Some(reason.clone()),
            };
        }
        let state = if self.answered {
            NodeState::Ok
        } else {
            NodeState::Unknown
        };
        Shown {
            state,
            reason: None,
        }
    }

    fn shown(&self) -> Shown {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

    fn refused(reason: &str) -> Event {
        Event::ConnectionFailed(Shown {
            state: NodeState::Refused,
            reason: Some(reason.to_owned()),
        })
    }

    fn answered(operation: &'static str) -> Event {
        Event::Answered { operation }
    }

    fn timed_out() -> Event {
        Event::TimedOut {
            reason: "no reply within 150ms".to_owned(),
        }
    }

    #[test]
    fn apply__when_reconnects_are_refused_and_calls_time_out_behind_them__then_refused_said_once() {
        // given
        let mut health = Health::default();
        health.apply(answered("read_latest"));

        // when: attempt after attempt refused, the calls queued behind them time out
        let changes: Vec<Option<Change>> = (0..3)
            .flat_map(|_| [refused(WRONGPASS), timed_out()])
            .map(|event| health.apply(event))
            .collect();

        // then
        assert_eq!(
            changes[0].as_ref().map(|change| change.to.state),
            Some(NodeState::Refused)
        );
        assert!(changes[1..].iter().all(Option::is_none), "{changes:?}");
        assert_eq!(health.shown().reason.as_deref(), Some(WRONGPASS));
    }

    #[test]
    fn apply__when_the_acl_denies_writes_and_reads_succeed__then_stays_refused_until_a_write_succeeds()
     {
        // given
        let mut health = Health::default();
        health.apply(Event::Denied {
            operation: "write_block",
            reason: "write_block: NOPERM".to_owned(),
        });

        // when
        let reads = [answered("read_latest"), answered("renew_lease")]
            .into_iter()
            .map(|event| health.apply(event))
            .collect::<Vec<_>>();

        // then
        assert!(reads.iter().all(Option::is_none), "{reads:?}");
        assert_eq!(health.shown().state, NodeState::Refused);
        let written = health.apply(answered("write_block"));
        assert_eq!(written.map(|change| change.to.state), Some(NodeState::Ok));
    }

    #[test]
    fn apply__when_connected_again_after_refusals__then_ok_once() {
        // given
        let mut health = Health::default();
        health.apply(answered("read_latest"));
        health.apply(refused(WRONGPASS));

        // when
        let first = health.apply(Event::Connected);
        let second = health.apply(answered("read_latest"));

        // then
        assert_eq!(first.map(|change| change.to.state), Some(NodeState::Ok));
        assert_eq!(second, None);
    }

    #[test]
    fn apply__when_timeouts_alternate_with_answers__then_each_change_is_said_once() {
        // given
        let mut health = Health::default();

        // when
        let changes: Vec<Option<NodeState>> = [
            answered("read_latest"),
            timed_out(),
            timed_out(),
            answered("read_latest"),
            answered("read_latest"),
        ]
        .into_iter()
        .map(|event| health.apply(event).map(|change| change.to.state))
        .collect();

        // then
        assert_eq!(
            changes,
            vec![
                Some(NodeState::Ok),
                Some(NodeState::TimedOut),
                None,
                Some(NodeState::Ok),
                None
            ]
        );
    }
}

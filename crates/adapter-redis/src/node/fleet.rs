//! Connecting the configured nodes as one fleet: a client per URL, the first connections made
//! concurrently within a bound, and one server never counted twice.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::task::TaskTracker;

use super::{NodeContext, NodeHandle, RedisNode};
use crate::config::{RedisConfig, ValidatedConfig};
use crate::error::Error;
use crate::membership::MembershipState;
use crate::metrics::Metrics;

/// Nodes connected outside the port (an operator's command): metrics on a registry of
/// their own, their own task tracker, and a membership that joined nothing yet.
#[derive(Debug)]
pub(crate) struct DetachedFleet {
    pub(crate) nodes: Arc<[NodeHandle]>,
    pub(crate) config: ValidatedConfig,
    pub(crate) tracker: TaskTracker,
    pub(crate) membership: Arc<MembershipState>,
}

impl DetachedFleet {
    /// Validates `config` and connects its nodes as the adapter does, with `token` as the
    /// owner token of every lease script.
    pub(crate) async fn connect(config: RedisConfig, token: String) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let config = config.validate()?;
        // A registry of their own: these metrics must not mix with a running node's.
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let tracker = TaskTracker::new();
        let membership = Arc::new(MembershipState::new(
            config.quorum,
            config.budget,
            config.node_timeout,
            Arc::clone(&metrics),
        ));
        let context = Arc::new(NodeContext::new(&config, token, Arc::clone(&membership)));
        let (nodes, _) = connect_nodes(&config, &context, &metrics, &tracker).await?;
        Ok(Self {
            nodes,
            config,
            tracker,
            membership,
        })
    }
}

impl Drop for DetachedFleet {
    fn drop(&mut self) {
        self.tracker.close();
    }
}

/// Builds one client per configured node and connects them concurrently, each within two node
/// timeouts. Returns the nodes (in configuration order) and how many connected; the others
/// keep reconnecting in the background and have no vote until they answer.
pub(crate) async fn connect_nodes(
    config: &ValidatedConfig,
    context: &Arc<NodeContext>,
    metrics: &Arc<Metrics>,
    tracker: &TaskTracker,
) -> Result<(Arc<[NodeHandle]>, usize), Error> {
    let nodes = config
        .urls
        .iter()
        .enumerate()
        .map(|(index, url)| {
            RedisNode::build(
                index,
                url,
                Arc::clone(context),
                Arc::clone(metrics),
                tracker.clone(),
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nodes: Arc<[NodeHandle]> = nodes.into();
    let bound = config.node_timeout.saturating_mul(2);
    let mut connecting = tokio::task::JoinSet::new();
    for node in nodes.iter() {
        let node = NodeHandle::clone(node);
        connecting.spawn(async move { node.connect_within(bound).await });
    }
    let mut connected = 0usize;
    while let Some(result) = connecting.join_next().await {
        connected = connected.saturating_add(usize::from(matches!(result, Ok(true))));
    }
    refuse_one_server_twice(config, &nodes)?;
    Ok((nodes, connected))
}

/// Refuses two URLs that reach the same server (spellings the configuration cannot tell apart:
/// `localhost` and `127.0.0.1`, a DNS alias), by the `run_id` each node reported at its first
/// connection: that server would count twice toward every quorum.
fn refuse_one_server_twice(config: &ValidatedConfig, nodes: &[NodeHandle]) -> Result<(), Error> {
    for (position, node) in nodes.iter().enumerate() {
        let Some(run_id) = node.run_id() else {
            continue;
        };
        if let Some((first_position, first)) = nodes[..position]
            .iter()
            .enumerate()
            .find(|(_, earlier)| earlier.run_id().as_ref() == Some(&run_id))
        {
            return Err(Error::SameServerTwice {
                first: first.name().to_owned(),
                first_list: config.list_of(first_position),
                second: node.name().to_owned(),
                second_list: config.list_of(position),
                run_id,
            });
        }
    }
    Ok(())
}

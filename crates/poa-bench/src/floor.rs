//! The floors' client: Redis nodes driven with fred directly, over the client the adapter builds
//! for each of its nodes (`adapter_redis::node_client`: the same timeouts, single attempt, Nagle
//! off, reconnection policy and security), calling the scripts the adapter loads
//! (`adapter_redis::SCRIPTS`, by the same SHA-1) with the keys and arguments each script's
//! header documents, on blocks encoded by the chain's codec as a publish encodes them. What one
//! call costs here is what the adapter's own call costs on the wire, without the adapter's
//! per-call bookkeeping (its outer bound, metrics and node state): the physical limit its
//! numbers are read against.
//!
//! Set-up goes through production's own paths: the membership is written by
//! `adapter_redis::init_membership` (what an operator runs on a fresh fleet), and the lease is
//! taken with the `promote` script under a token of the series' own. Nothing here relaxes a
//! rule: every write is fenced and unique per height on the server, as the adapter's are. Owns
//! no report and decides nothing about quorums.

use std::sync::Arc;

use adapter_chain::{ReferenceChain, SealedBlock};
use adapter_redis::{Keys, LuaScript, SCRIPTS, node_client};
use anyhow::{Context, Result, anyhow, bail};
use fred::bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use fred::types::{ConnectHandle, Value};
use poa_ports::{BlockCodec, Epoch};

use crate::blocks::redis_config;

/// The nodes of one series under a key prefix of its own, each with its own client.
#[derive(Debug)]
pub(crate) struct FloorNodes {
    nodes: Vec<Arc<FloorNode>>,
}

impl FloorNodes {
    /// Writes the membership of `urls` under `lease_key` (a fresh prefix) as an operator does,
    /// then connects one client per node as the adapter builds it and loads the scripts the
    /// floors call.
    ///
    /// # Errors
    /// Fails when the configuration is invalid, the membership cannot be written, a node does
    /// not connect, or a node's SHA-1 of a script is not the adapter's.
    pub(crate) async fn connect(urls: Vec<String>, lease_key: String) -> Result<Self> {
        let config = redis_config(urls, lease_key.clone());
        let validated = config.clone().validate()?;
        let membership = adapter_redis::init_membership(config.clone())
            .await
            .context("cannot write the floor's membership")?;
        let mut nodes = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let client = node_client(&validated, url)?;
            let connection = client
                .init()
                .await
                .with_context(|| format!("cannot connect to {url}"))?;
            let mut node = FloorNode {
                client,
                connection: Some(connection),
                keys: validated.keys().clone(),
                server_id: String::new(),
                digest: membership.digest.clone(),
                token: format!("floor:{lease_key}"),
                ttl_millis: i64::try_from(config.lease_ttl.as_millis()).unwrap_or(i64::MAX),
                stream_max_len: config.stream_max_len,
                index_retention: validated.index_retention(),
            };
            node.load(&SCRIPTS.promote).await?;
            node.load(&SCRIPTS.write_block).await?;
            node.server_id = node
                .client
                .get::<Option<String>, _>(&node.keys.server_id)
                .await?
                .ok_or_else(|| anyhow!("{url} holds no server id after the membership init"))?;
            nodes.push(Arc::new(node));
        }
        Ok(Self { nodes })
    }

    /// The node at `index`, in the order of the URLs.
    ///
    /// # Errors
    /// Fails when there is no such node.
    pub(crate) fn node(&self, index: usize) -> Result<&Arc<FloorNode>> {
        self.nodes.get(index).ok_or_else(|| {
            anyhow!(
                "the floor has {} nodes, not {}",
                self.nodes.len(),
                index + 1
            )
        })
    }

    /// Every node, in the order of the URLs.
    pub(crate) fn nodes(&self) -> &[Arc<FloorNode>] {
        &self.nodes
    }
}

/// One node: its client and what its script calls carry.
#[derive(Debug)]
pub(crate) struct FloorNode {
    client: Client,
    /// The client's connection task, stopped when the node is dropped.
    connection: Option<ConnectHandle>,
    keys: Keys,
    /// The server id this node claimed at the membership init (the membership check's).
    server_id: String,
    /// The digest of the membership record written at the init.
    digest: String,
    token: String,
    ttl_millis: i64,
    stream_max_len: u64,
    index_retention: u64,
}

impl FloorNode {
    /// Loads `script` and checks the node hashes it as the adapter does, so an `EVALSHA` here
    /// runs exactly the adapter's script.
    async fn load(&self, script: &LuaScript) -> Result<()> {
        let sha: String = self.client.script_load(script.lua()).await?;
        if sha != script.sha1() {
            bail!(
                "the node hashes {} as {sha}, the adapter as {}",
                script.name,
                script.sha1()
            );
        }
        Ok(())
    }

    /// One `PING` round trip.
    ///
    /// # Errors
    /// Fails when the node does not answer `PONG` (within the node timeout, fred's bound).
    pub(crate) async fn ping(&self) -> Result<()> {
        let reply: String = self.client.ping(None).await?;
        if reply != "PONG" {
            bail!("PING answered {reply}");
        }
        Ok(())
    }

    /// Takes (or re-arms) the lease on this node alone with the series' token (the `promote`
    /// script) and returns the node's epoch, what the raw writes there are fenced by.
    ///
    /// # Errors
    /// Fails when another token holds the lease or the node does not answer.
    pub(crate) async fn take_lease(&self) -> Result<Epoch> {
        let keys = self.checked_keys([&self.keys.lease, &self.keys.epoch]);
        let args = self.checked_args([
            Value::from(self.token.as_str()),
            Value::Integer(self.ttl_millis),
            Value::from("0"),
        ]);
        let epoch: i64 = self
            .client
            .evalsha(SCRIPTS.promote.sha1(), keys, args)
            .await
            .context("promote failed")?;
        Ok(Epoch::new(u64::try_from(epoch)?))
    }

    /// One raw `write_block` call of `block` fenced by `epoch`, the block encoded here as a
    /// publish encodes it: exactly what a publish sends to each node.
    ///
    /// # Errors
    /// Fails when the write is refused (fenced, the height holds another block) or unanswered.
    pub(crate) async fn write_block(&self, epoch: Epoch, block: &SealedBlock) -> Result<()> {
        let data = Bytes::from(<ReferenceChain as BlockCodec>::encode_block(block));
        let keys = self.checked_keys([
            &self.keys.lease,
            &self.keys.epoch,
            &self.keys.stream,
            &self.keys.index,
            &self.keys.trim_floor,
        ]);
        let args = self.checked_args([
            Value::from(epoch.get().to_string()),
            Value::from(self.token.as_str()),
            Value::from(block.height().get().to_string()),
            Value::from(block.id().to_hex()),
            Value::Bytes(data),
            Value::Integer(self.ttl_millis),
            Value::from(self.stream_max_len.to_string()),
            Value::from(self.index_retention.to_string()),
            Value::from(""),
        ]);
        // The new entry's id, or 0 when this block is already stored at its height.
        let _: Value = self
            .client
            .evalsha(SCRIPTS.write_block.sha1(), keys, args)
            .await
            .with_context(|| format!("write_block of height {} failed", block.height()))?;
        Ok(())
    }

    /// The membership check's two keys, then the script's own.
    fn checked_keys<const N: usize>(&self, keys: [&String; N]) -> Vec<String> {
        [&self.keys.server_id, &self.keys.membership]
            .into_iter()
            .chain(keys)
            .cloned()
            .collect()
    }

    /// The membership check's two arguments (this node's server id, the record's digest), then
    /// the script's own.
    fn checked_args<const N: usize>(&self, args: [Value; N]) -> Vec<Value> {
        [
            Value::from(self.server_id.as_str()),
            Value::from(self.digest.as_str()),
        ]
        .into_iter()
        .chain(args)
        .collect()
    }
}

impl Drop for FloorNode {
    /// Stops the connection task, which closes the socket.
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.abort();
        }
    }
}

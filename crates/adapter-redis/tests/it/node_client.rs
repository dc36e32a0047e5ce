//! What the adapter exposes of its nodes for the benchmarks' floors: the fred client every node
//! is built with (`node_client`), the scripts it loads (`SCRIPTS`) and the key names (`Keys`).
//! Driven with fred directly, as the floors drive them, against real redis-servers and a
//! half-alive listener: they are enough to run the fenced write, and they bound every call.

use std::time::Duration;

use adapter_chain::ReferenceChain;
use adapter_redis::{Keys, SCRIPTS, ValidatedConfig, node_client};
use fred::bytes::Bytes;
use fred::clients::Client;
use fred::error::ErrorKind;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use fred::types::Value;
use poa_ports::BlockCodec;

use crate::support::{block, config, epoch_of, servers, stream_len, urls, with_half_alive};

/// Far above the node timeout: only a call that is not bounded reaches it.
const HANG_BOUND: Duration = Duration::from_secs(5);

/// One node under `config`, its membership written as an operator does, driven as the floors
/// drive it with its own owner token.
struct RawNode {
    client: Client,
    keys: Keys,
    server_id: String,
    digest: String,
    token: String,
    config: ValidatedConfig,
}

impl RawNode {
    async fn connect(url: String, key: &str, digest: String, token: &str) -> Self {
        let config = config(vec![url.clone()], key).validate().unwrap();
        let client = node_client(&config, &url).unwrap();
        client.init().await.unwrap();
        let keys = config.keys().clone();
        let server_id: String = client.get(&keys.server_id).await.unwrap();
        Self {
            client,
            keys,
            server_id,
            digest,
            token: token.to_owned(),
            config,
        }
    }

    fn checked_keys(&self, keys: &[&String]) -> Vec<String> {
        [&self.keys.server_id, &self.keys.membership]
            .into_iter()
            .chain(keys.iter().copied())
            .cloned()
            .collect()
    }

    fn checked_args(&self, args: Vec<Value>) -> Vec<Value> {
        [
            Value::from(self.server_id.as_str()),
            Value::from(self.digest.as_str()),
        ]
        .into_iter()
        .chain(args)
        .collect()
    }

    async fn promote(&self) -> Result<i64, fred::error::Error> {
        let keys = self.checked_keys(&[&self.keys.lease, &self.keys.epoch]);
        let args = self.checked_args(vec![
            Value::from(self.token.as_str()),
            Value::Integer(2_000),
            Value::from("0"),
        ]);
        self.client
            .evalsha(SCRIPTS.promote.sha1(), keys, args)
            .await
    }

    async fn write_block(&self, epoch: i64, height: u64, variant: u64) -> Result<Value, String> {
        let block = block(height, variant);
        let keys = self.checked_keys(&[
            &self.keys.lease,
            &self.keys.epoch,
            &self.keys.stream,
            &self.keys.index,
            &self.keys.trim_floor,
        ]);
        let args = self.checked_args(vec![
            Value::from(epoch.to_string()),
            Value::from(self.token.as_str()),
            Value::from(height.to_string()),
            Value::from(block.id().to_hex()),
            Value::Bytes(Bytes::from(ReferenceChain::encode_block(&block))),
            Value::Integer(2_000),
            Value::from("1000"),
            Value::from(self.config.index_retention().to_string()),
            Value::from(""),
        ]);
        self.client
            .evalsha(SCRIPTS.write_block.sha1(), keys, args)
            .await
            .map_err(|error| error.details().to_owned())
    }
}

/// The membership of `url`'s one node under `key`, as an operator writes it; its digest.
async fn membership(url: &str, key: &str) -> String {
    adapter_redis::init_membership(config(vec![url.to_owned()], key))
        .await
        .unwrap()
        .digest
}

#[tokio::test]
async fn scripts__when_loaded_on_a_node__then_the_node_hashes_each_as_the_adapter_calls_it() {
    // given
    let servers = servers(1);
    let config = config(urls(&servers), "client:scripts").validate().unwrap();
    let client = node_client(&config, &servers[0].url()).unwrap();
    client.init().await.unwrap();

    for script in SCRIPTS.all() {
        // when
        let sha: String = client.script_load(script.lua()).await.unwrap();

        // then
        assert_eq!(sha, script.sha1(), "{}", script.name);
    }
}

#[tokio::test]
async fn write_block_script__when_driven_over_node_client_with_the_lease__then_lands_once_per_height()
 {
    // given
    let servers = servers(1);
    let key = "client:write";
    let digest = membership(&servers[0].url(), key).await;
    let node = RawNode::connect(servers[0].url(), key, digest, "raw-writer").await;
    let epoch = node.promote().await.unwrap();

    // when
    let first = node.write_block(epoch, 1, 0).await;
    let again = node.write_block(epoch, 1, 0).await;
    let other = node.write_block(epoch, 1, 1).await;

    // then
    assert!(matches!(first, Ok(Value::String(_))), "{first:?}");
    assert_eq!(
        again,
        Ok(Value::Integer(0)),
        "the same block twice is stored once"
    );
    assert!(
        matches!(&other, Err(reason) if reason.starts_with("HEIGHT_EXISTS:")),
        "{other:?}"
    );
    assert_eq!(stream_len(&servers[0], key), 1);
    assert_eq!(epoch_of(&servers[0], key), u64::try_from(epoch).unwrap());
}

#[tokio::test]
async fn write_block_script__when_another_token_holds_the_lease__then_promote_and_write_are_refused()
 {
    // given
    let servers = servers(1);
    let key = "client:fenced";
    let digest = membership(&servers[0].url(), key).await;
    let holder = RawNode::connect(servers[0].url(), key, digest.clone(), "holder").await;
    let epoch = holder.promote().await.unwrap();
    let intruder = RawNode::connect(servers[0].url(), key, digest, "intruder").await;

    // when
    let promote = intruder.promote().await;
    let write = intruder.write_block(epoch, 1, 0).await;

    // then
    let refusal = promote.unwrap_err();
    assert!(refusal.details().starts_with("LOCK_HELD:"), "{refusal:?}");
    assert!(
        matches!(&write, Err(reason) if reason.starts_with("FENCING_ERROR:")),
        "{write:?}"
    );
    assert_eq!(stream_len(&servers[0], key), 0);
}

#[tokio::test]
async fn node_client__when_the_node_is_half_alive__then_a_call_times_out_at_the_node_timeout() {
    // given: a listener that accepts TCP and never answers
    let (_listener, all) = with_half_alive(&[]);
    let config = config(all.clone(), "client:half").validate().unwrap();
    let client = node_client(&config, &all[0]).unwrap();
    let _connection = client.connect();

    // when
    let ping = tokio::time::timeout(HANG_BOUND, client.ping::<String>(None)).await;

    // then: fred's own command timeout (the node timeout) ends it, not the test's bound
    let error = ping
        .expect("a call over node_client is bounded")
        .unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::Timeout, "{error:?}");
}

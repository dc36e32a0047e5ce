//! The demo's processes: three `redis-server`s (from `poa-test-support`) and three `poa-node`
//! processes on loopback, each node in its own directory under one temporary directory that
//! is removed when the fleet is dropped. Nodes are observed only through their HTTP API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use poa_test_support::RedisServer;
use serde_json::Value;

use crate::error::DemoError;

/// How long a node may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Bound of one HTTP request to a node.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a SIGTERMed node may take to exit before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The settings every node of the demo runs with: fast blocks and a short lease, so a takeover
/// is visible within seconds.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(1);
const NODE_FLAGS: &[&str] = &[
    "--block-time",
    "200ms",
    "--lease-ttl",
    "1s",
    "--node-timeout",
    "100ms",
    "--retry-delay",
    "50ms",
    "--max-retry-delay-offset",
    "50ms",
];

/// What a node's `/status` says, reduced to what the view shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeView {
    /// Whether the process still runs.
    pub(crate) alive: bool,
    /// Whether `/status` answered.
    pub(crate) answered: bool,
    pub(crate) height: u64,
    pub(crate) role: String,
    pub(crate) is_leader: bool,
    pub(crate) epoch: Option<u64>,
    pub(crate) blocks_produced: u64,
    /// The last outcome against each Redis node, in configuration order.
    pub(crate) redis: Vec<String>,
}

/// One `poa-node` process.
pub(crate) struct NodeProcess {
    pub(crate) name: String,
    pub(crate) http: String,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl NodeProcess {
    fn start(
        name: String,
        binary: &Path,
        data_dir: &Path,
        args: &[String],
    ) -> Result<Self, DemoError> {
        let failed = |reason: String| DemoError::Start {
            what: name.clone(),
            reason,
        };
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "warn,poa_node=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| failed(format!("{}: {error}", binary.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no stdout".to_owned()))?;
        let (address_sender, address) = mpsc::channel();
        // Reads the log to the end so the node never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && let Some(http) = event.get("http").and_then(Value::as_str)
                {
                    let _ = address_sender.send(http.to_owned());
                }
            }
        });
        let http = match address.recv_timeout(START_DEADLINE) {
            Ok(http) => http,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("it did not start listening".to_owned()));
            }
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            name,
            http,
            child: Some(child),
            agent,
        })
    }

    fn get(&self, path: &str) -> Option<(u16, Value)> {
        let mut response = self
            .agent
            .get(&format!("http://{}{path}", self.http))
            .call()
            .ok()?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().ok()?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The node's view; a dead or silent node is shown as such.
    pub(crate) fn view(&self) -> NodeView {
        let alive = self.child.is_some();
        let Some((200, status)) = alive.then(|| self.get("/status")).flatten() else {
            return NodeView {
                alive,
                role: if alive { "no answer" } else { "killed" }.to_owned(),
                ..NodeView::default()
            };
        };
        let redis = status["lease"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|node| node["last_outcome"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        NodeView {
            alive,
            answered: true,
            height: status["height"].as_u64().unwrap_or(0),
            role: status["role"].as_str().unwrap_or("?").to_owned(),
            is_leader: status["is_leader"].as_bool().unwrap_or(false),
            epoch: status["epoch"].as_u64(),
            blocks_produced: status["blocks_produced"].as_u64().unwrap_or(0),
            redis,
        }
    }

    /// The id of the block at `height`, if the node holds it.
    pub(crate) fn block_id(&self, height: u64) -> Option<String> {
        match self.get(&format!("/blocks/{height}")) {
            Some((200, block)) => block["id"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded), then SIGKILL if it is still there.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three Redis nodes and three producers.
pub(crate) struct Fleet {
    pub(crate) nodes: Vec<NodeProcess>,
    // Dropped after the nodes (field order), so no node outlives its Redis nodes.
    redis: Vec<RedisServer>,
    dir: Option<tempfile::TempDir>,
}

impl Fleet {
    /// Starts three redis-servers and three nodes sharing them.
    pub(crate) fn start(binary: &Path, size: usize) -> Result<Self, DemoError> {
        let redis: Vec<RedisServer> = (0..size).map(|_| RedisServer::start()).collect();
        let dir = tempfile::Builder::new()
            .prefix("poa-demo-")
            .tempdir()
            .map_err(|error| DemoError::Start {
                what: "the demo directory".to_owned(),
                reason: error.to_string(),
            })?;
        let mut args: Vec<String> = NODE_FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        if supports_flag(binary, "--admin-http") {
            // Every node's admin API on its own free loopback port.
            args.extend(["--admin-http".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        for server in &redis {
            args.extend(["--redis-url".to_owned(), server.url()]);
        }
        let mut nodes = Vec::with_capacity(size);
        for index in 1..=size {
            let data_dir: PathBuf = dir.path().join(format!("node-{index}"));
            nodes.push(NodeProcess::start(
                format!("node {index}"),
                binary,
                &data_dir,
                &args,
            )?);
        }
        Ok(Self {
            nodes,
            redis,
            dir: Some(dir),
        })
    }

    /// The Redis nodes' addresses, for the view's header.
    pub(crate) fn redis_urls(&self) -> Vec<String> {
        self.redis.iter().map(RedisServer::url).collect()
    }

    /// Stops every node (SIGTERM), then the Redis nodes, and removes the directory.
    pub(crate) fn stop(mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            node.stop();
        }
        self.nodes.clear();
        self.redis.clear();
        match self.dir.take() {
            Some(dir) => dir.close().map_err(|error| error.to_string()),
            None => Ok(()),
        }
    }
}

/// Whether `binary --help` mentions `flag` (so the demo runs against older builds too).
fn supports_flag(binary: &Path, flag: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(flag))
}

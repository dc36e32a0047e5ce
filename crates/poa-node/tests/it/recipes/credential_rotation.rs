//! docs/operations.md 7.16 and 7.17 run as written, with real redis-servers (ACL users, and
//! TLS with client certificates for 7.17) and two real poa-node processes producing throughout:
//! the password rotated through a second ACL password, then the CA and every certificate
//! rotated through a CA trusted next to the old one, the producers restarted between the
//! recipes as the prose says. No producer ever sees a node `refused`, the chain goes on with one
//! block per height, and at the end a producer with the old credentials is refused by every
//! node, so the rotation happened. And the password's removal run with a producer left on the
//! old one: the recipe gives the node the old password back and stops, and that producer
//! answers there again without a restart.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use poa_test_support::{RedisServer, TestCertificates, TlsFiles};

use super::{HANG, KillOnDrop, Shell, body_of, height_of, id_at, recipe, status_of, with_ports};
use crate::support::{binary, eventually};

/// The producers' HTTP addresses, as the recipes name them.
const PRODUCERS: [&str; 2] = ["127.0.0.1:4001", "127.0.0.1:4002"];
const ADMIN_PASSWORD: &str = "admin0secret";
const OLD_PASSWORD: &str = "old0secret";
const NEW_PASSWORD: &str = "new0secret";

/// A redis-server whose `default` user is off, with the producers' user `poa` (the old
/// password) and the operator's `admin`, serving TLS with `tls` when given.
fn redis_node(tls: Option<TlsFiles>) -> RedisServer {
    let mut builder = RedisServer::builder()
        .acl_user(format!("poa on >{OLD_PASSWORD} ~* &* +@all"))
        .acl_user(format!("admin on >{ADMIN_PASSWORD} ~* &* +@all"))
        .disable_default_user();
    if let Some(files) = tls {
        builder = builder.tls(files);
    }
    builder.start()
}

/// A producer process on a fixed HTTP address and its own data directory, restarted with other
/// flags as an operator would.
struct Producer {
    http: &'static str,
    data_dir: PathBuf,
    process: Option<KillOnDrop>,
}

impl Producer {
    fn start(http: &'static str, dir: &Path, flags: &[String]) -> Self {
        let mut producer = Self {
            http,
            data_dir: dir.join(http.replace([':', '.'], "-")),
            process: None,
        };
        producer.spawn(flags);
        producer
    }

    fn spawn(&mut self, flags: &[String]) {
        let mut node = Command::new(binary());
        node.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http", self.http, "--admin-http", "127.0.0.1:0"])
            .args(["--block-time", "100ms"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data_dir.with_extension("stderr")).unwrap());
        self.process = Some(KillOnDrop(node.spawn().unwrap()));
        assert!(
            eventually(HANG, || all_nodes_ok(self.http)),
            "{} does not see every node ok: {}\n{}",
            self.http,
            body_of(&format!("http://{}/status", self.http)),
            std::fs::read_to_string(self.data_dir.with_extension("stderr")).unwrap_or_default()
        );
    }

    /// Stops the process with SIGTERM (a leader hands the lease over) and starts it again.
    fn restart(&mut self, flags: &[String]) {
        if let Some(mut process) = self.process.take() {
            let pid = Pid::from_raw(i32::try_from(process.0.id()).unwrap());
            kill(pid, Signal::SIGTERM).unwrap();
            process.0.wait().unwrap();
        }
        self.spawn(flags);
    }

    fn is_leader(&self) -> bool {
        status_of(&format!("http://{}/leader", self.http)) == Some(200)
    }
}

/// The lines of `poa_node_state` that are 1 at `http`: one per node, naming its state.
fn node_states(http: &str) -> Vec<String> {
    body_of(&format!("http://{http}/metrics"))
        .lines()
        .filter(|line| line.starts_with("poa_node_state{") && line.ends_with("} 1"))
        .map(str::to_owned)
        .collect()
}

fn all_nodes_ok(http: &str) -> bool {
    let states = node_states(http);
    states.len() == 3 && states.iter().all(|line| line.contains("state=\"ok\""))
}

/// Polls both producers' node states until stopped, keeping every `refused` line it sees.
struct RefusalWatch {
    stop: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl RefusalWatch {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, refused) = (Arc::clone(&stop), Arc::clone(&refused));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for http in PRODUCERS {
                        for line in node_states(http) {
                            if line.contains("state=\"refused\"") {
                                refused.lock().unwrap().push(format!("{http}: {line}"));
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Self {
            stop,
            refused,
            thread: Some(thread),
        }
    }

    /// Stops polling; returns every refusal seen.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.refused.lock().unwrap().clone()
    }
}

impl Drop for RefusalWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The fleet's height: the highest head either producer answers.
fn fleet_height() -> u64 {
    PRODUCERS
        .iter()
        .map(|http| height_of(http))
        .max()
        .unwrap_or(0)
}

/// Asserts the fleet produces: its height rises by a few blocks from now.
fn assert_producing(step: &str) {
    let from = fleet_height();
    assert!(
        eventually(HANG, || fleet_height() >= from + 5),
        "{step}: the fleet stopped producing at {from}: {}",
        body_of(&format!("http://{}/status", PRODUCERS[0]))
    );
}

/// Restarts the producers with `flags`, one at a time, the followers first and the leader
/// last, checking after each that the fleet still produces.
fn restart_one_at_a_time(producers: &mut [Producer], flags: &[String], step: &str) {
    producers.sort_by_key(Producer::is_leader);
    for producer in producers.iter_mut() {
        producer.restart(flags);
        assert_producing(&format!("{step}, {} restarted", producer.http));
    }
}

/// Runs the recipe under `heading` with the Redis ports it names replaced by `ports` and
/// `environment` set, and returns its output after checking it exited 0.
fn run_allowing_rollback(
    heading: &str,
    ports: &[u16],
    environment: &[(&str, &str)],
    dir: &Path,
) -> String {
    let script = with_ports(&recipe("docs/operations.md", heading), ports);
    let mut shell = Shell::start_with_environment(&script, dir, environment);
    let code = shell.wait();
    let output = shell.output();
    assert_eq!(code, 0, "{heading}: {output}");
    output
}

/// As [`run_allowing_rollback`], checking the recipe went through without undoing a step.
fn run(heading: &str, ports: &[u16], environment: &[(&str, &str)], dir: &Path) -> String {
    let output = run_allowing_rollback(heading, ports, environment, dir);
    assert!(!output.contains("run this again"), "{heading}: {output}");
    output
}

/// Asserts a producer started with `flags` on a spare address is refused by every node, its
/// `/status` naming `reason`.
fn assert_refused_by_every_node(flags: &[String], reason: &str, dir: &Path) {
    let http = "127.0.0.1:4003";
    let mut node = Command::new(binary());
    node.arg("--data-dir")
        .arg(dir.join("stale"))
        .args(["--http", http, "--admin-http", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _stale = KillOnDrop(node.spawn().unwrap());
    let refused = || {
        let states = node_states(http);
        states.len() == 3
            && states.iter().all(|line| line.contains("state=\"refused\""))
            && body_of(&format!("http://{http}/status")).contains(reason)
    };
    assert!(
        eventually(HANG, refused),
        "the old credentials are not refused with {reason:?}: {}",
        body_of(&format!("http://{http}/status"))
    );
}

/// Asserts every producer holds the same block at every height up to the fleet's head.
fn assert_one_block_per_height() {
    let top = PRODUCERS
        .iter()
        .map(|http| height_of(http))
        .min()
        .unwrap_or(0);
    assert!(top > 0);
    for height in 1..=top {
        let ids: BTreeSet<String> = PRODUCERS
            .iter()
            .filter_map(|http| id_at(http, height))
            .collect();
        assert_eq!(ids.len(), 1, "height {height} has blocks {ids:?}");
    }
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join(format!("{password}.password"));
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The producers' flags: every node by `url`, the user `poa` with `password`, then `extra`.
fn flags(urls: &[String], password: &Path, extra: &[String]) -> Vec<String> {
    let mut flags: Vec<String> = urls
        .iter()
        .flat_map(|url| ["--redis-url".to_owned(), url.clone()])
        .collect();
    flags.extend(["--redis-username".to_owned(), "poa".to_owned()]);
    flags.extend(["--redis-password-file".to_owned(), path(password)]);
    flags.extend_from_slice(extra);
    flags
}

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Two producers on three plain nodes, with the old password, producing.
struct PasswordFleet {
    _servers: Vec<RedisServer>,
    ports: Vec<u16>,
    urls: Vec<String>,
    dir: tempfile::TempDir,
    old: PathBuf,
    new: PathBuf,
    producers: Vec<Producer>,
}

impl PasswordFleet {
    fn start() -> Self {
        let servers: Vec<RedisServer> = (0..3).map(|_| redis_node(None)).collect();
        let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (
            password_file(dir.path(), OLD_PASSWORD),
            password_file(dir.path(), NEW_PASSWORD),
        );
        let producers = PRODUCERS
            .iter()
            .map(|http| Producer::start(http, dir.path(), &flags(&urls, &old, &[])))
            .collect();
        assert_producing("start");
        Self {
            ports: servers.iter().map(RedisServer::port).collect(),
            _servers: servers,
            urls,
            dir,
            old,
            new,
            producers,
        }
    }

    /// Runs a recipe of 7.16 with the passwords it reads.
    fn run(&self, heading: &str, rollback: bool) -> String {
        let environment = [
            ("REDISCLI_AUTH", ADMIN_PASSWORD),
            ("OLD_PASSWORD", OLD_PASSWORD),
            ("NEW_PASSWORD", NEW_PASSWORD),
        ];
        if rollback {
            run_allowing_rollback(heading, &self.ports, &environment, self.dir.path())
        } else {
            run(heading, &self.ports, &environment, self.dir.path())
        }
    }

    fn flags(&self, password: &Path) -> Vec<String> {
        flags(&self.urls, password, &[])
    }
}

pub(super) fn password_rotation_recipes_of_the_runbook() {
    // given: two producers on three nodes, with the old password
    let mut fleet = PasswordFleet::start();
    let watch = RefusalWatch::start();

    // when: the new password is added, the producers move to it, the old one is removed
    let added = fleet.run("7.16.1", false);
    assert_eq!(added.matches("OK").count(), 3, "{added}");
    let new_flags = fleet.flags(&fleet.new);
    restart_one_at_a_time(&mut fleet.producers, &new_flags, "7.16 step 2");
    fleet.run("7.16.2", false);
    assert_producing("7.16.2");

    // then: no node ever refused a producer, one block per height, the old password is gone
    let refused = watch.finish();
    assert!(refused.is_empty(), "nodes refused: {refused:?}");
    assert_one_block_per_height();
    let old_flags = fleet.flags(&fleet.old);
    assert_refused_by_every_node(&old_flags, "WRONGPASS", fleet.dir.path());
}

pub(super) fn password_removal_recipe_when_a_producer_was_missed() {
    // given: the new password added, and only the follower moved to it
    let mut fleet = PasswordFleet::start();
    fleet.run("7.16.1", false);
    let new_flags = fleet.flags(&fleet.new);
    fleet.producers.sort_by_key(Producer::is_leader);
    fleet.producers[0].restart(&new_flags);
    assert_producing("the follower moved");

    // when: the old password is removed
    let stopped = fleet.run("7.16.2", true);

    // then: the recipe stopped at the first node and gave it the old password back, the missed
    // producer answers there again without a restart, and the fleet produced throughout
    assert!(stopped.contains("run this again"), "{stopped}");
    assert!(
        eventually(HANG, || PRODUCERS.iter().all(|http| all_nodes_ok(http))),
        "a producer stays refused: {:?} {:?}",
        node_states(PRODUCERS[0]),
        node_states(PRODUCERS[1])
    );
    assert_producing("7.16.2 stopped");

    // and once the missed producer moved too, the recipe goes through
    fleet.producers[1].restart(&new_flags);
    fleet.run("7.16.2", false);
    assert_producing("7.16.2 again");
    assert_one_block_per_height();
    let old_flags = fleet.flags(&fleet.old);
    assert_refused_by_every_node(&old_flags, "WRONGPASS", fleet.dir.path());
}

pub(super) fn certificate_rotation_recipes_of_the_runbook() {
    // given: two producers on three TLS nodes that want client certificates, with the old CA
    // and certificates named as the recipes name them
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let old = TestCertificates::generate(&dir.path().join("old"), "old");
    TestCertificates::generate(&tls_dir, "new");
    for (from, to) in [
        (&old.ca, "ca.pem"),
        (&old.server_cert, "server.pem"),
        (&old.server_key, "server-key.pem"),
        (&old.client_cert, "client.pem"),
        (&old.client_key, "client-key.pem"),
    ] {
        std::fs::copy(from, tls_dir.join(to)).unwrap();
    }
    let tls = |name: &str| tls_dir.join(name);
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| {
            redis_node(Some(TlsFiles {
                cert: tls("server.pem"),
                key: tls("server-key.pem"),
                ca: tls("ca.pem"),
                require_client_certificates: true,
            }))
        })
        .collect();
    let ports: Vec<u16> = servers.iter().map(RedisServer::tls_port).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::tls_url).collect();
    let password = password_file(dir.path(), OLD_PASSWORD);
    let tls_flags = |ca: &str, client: &str| {
        flags(
            &urls,
            &password,
            &[
                "--redis-ca-file".to_owned(),
                path(&tls(ca)),
                "--redis-client-cert".to_owned(),
                path(&tls(&format!("{client}.pem"))),
                "--redis-client-key".to_owned(),
                path(&tls(&format!("{client}-key.pem"))),
            ],
        )
    };
    let mut producers: Vec<Producer> = PRODUCERS
        .iter()
        .map(|http| Producer::start(http, dir.path(), &tls_flags("ca.pem", "client")))
        .collect();
    assert_producing("start");
    let watch = RefusalWatch::start();
    let tls_dir_text = path(&tls_dir);
    let environment = [
        ("REDISCLI_AUTH", ADMIN_PASSWORD),
        ("TLS_DIR", tls_dir_text.as_str()),
    ];

    // when: both CAs trusted, then the new certificates, then the old CA removed, the producers
    // restarted after each recipe as its prose says
    run("7.17.1", &ports, &environment, dir.path());
    restart_one_at_a_time(
        &mut producers,
        &tls_flags("both-ca.pem", "client"),
        "7.17 step 1",
    );
    run("7.17.2", &ports, &environment, dir.path());
    restart_one_at_a_time(
        &mut producers,
        &tls_flags("both-ca.pem", "new-client"),
        "7.17 step 2",
    );
    run("7.17.3", &ports, &environment, dir.path());
    restart_one_at_a_time(
        &mut producers,
        &tls_flags("new-ca.pem", "new-client"),
        "7.17 step 3",
    );

    // then: no node ever refused a producer, one block per height; the nodes present their new
    // certificates (a producer trusting only the old CA refuses them) and refuse a client
    // certificate of the old CA
    let refused = watch.finish();
    assert!(refused.is_empty(), "nodes refused: {refused:?}");
    assert_one_block_per_height();
    assert_refused_by_every_node(
        &tls_flags("ca.pem", "new-client"),
        "signed by an unknown authority",
        dir.path(),
    );
    assert_refused_by_every_node(
        &tls_flags("both-ca.pem", "client"),
        "refused the handshake",
        dir.path(),
    );
}

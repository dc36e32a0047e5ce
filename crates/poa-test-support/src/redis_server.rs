//! [`RedisServer`]: a real `redis-server` process on a reserved loopback port, without
//! persistence, that a test can stop, restart (empty, on the same port), restore from a snapshot,
//! freeze and thaw; and
//! [`RedisServerBuilder`] for one that also serves TLS on a second port, enforces ACL users, or
//! keeps an append-only file so that a restart can keep its data.
//!
//! It owns the process, the port reservation and a private working directory holding the
//! server's log. It talks to the server only through the crate's own RESP client: it must not
//! depend on a Redis client crate. Every method blocks the calling thread briefly (the server is
//! another process, so this is safe from any `#[tokio::test]` flavour as well as `#[test]`).

use std::fs::OpenOptions;
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::RespError;
use crate::loopback::{PortReservation, redis_url};
use crate::resp::{self, RespValue};
use crate::spawner;

/// How long a freshly spawned server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Spawns tried before giving up when the port turns out to be taken.
const SPAWN_ATTEMPTS: u32 = 5;
/// Bound of one readiness probe; short, because probes are retried until `READY_TIMEOUT`.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Bound of [`RedisServer::command`]: generous, it only exists to turn a hang into a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's stdout and stderr, appended to across restarts.
const LOG_FILE: &str = "redis-server.log";
/// The directory of the append-only file, under the working directory (`--appenddirname`).
const AOF_DIR: &str = "appendonlydir";
/// The snapshot file `SAVE` writes and a start loads, under the working directory.
const RDB_FILE: &str = "dump.rdb";
/// Lines of the server's log printed when a test panics while the server is alive.
const LOG_LINES_ON_FAILURE: usize = 20;

/// A server's data at one moment, taken by [`RedisServer::snapshot`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    rdb: Vec<u8>,
}

fn remove_if_present(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        panic!("cannot remove {}: {err}", path.display());
    }
}

/// A `redis-server` child process on `127.0.0.1`, started with `--save "" --appendonly no`, so a
/// restart always comes back empty (unless built with [`RedisServerBuilder::append_only`]).
/// Killed (SIGKILL) when dropped, also during a panic.
///
/// All methods take `&self`, so one server can be shared (for example in an `Arc`) between a
/// test and a task that restarts or freezes it.
#[derive(Debug)]
pub struct RedisServer {
    reservation: PortReservation,
    dir: PathBuf,
    process: Mutex<Option<Child>>,
    options: ServerOptions,
}

/// The certificate files of a TLS-serving [`RedisServer`] (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (`--tls-cert-file`).
    pub cert: PathBuf,
    /// The server certificate's private key (`--tls-key-file`).
    pub key: PathBuf,
    /// The CA that signs client certificates (`--tls-ca-cert-file`; required by redis-server).
    pub ca: PathBuf,
    /// Whether clients must present a certificate signed by `ca` (`--tls-auth-clients`).
    pub require_client_certificates: bool,
}

/// Options of a [`RedisServer`] beyond the plain default: TLS and ACL users.
#[derive(Debug, Default)]
struct ServerOptions {
    tls: Option<(TlsFiles, PortReservation)>,
    /// `user` directives, e.g. `poa on >secret ~poa:* +ping`.
    users: Vec<String>,
    /// `AUTH` credentials of the fixture's own connections, when `default` is disabled.
    admin: Option<(String, String)>,
    /// `--appendonly yes --appendfsync always`: every acknowledged write survives a SIGKILL.
    append_only: bool,
    /// `--stream-node-max-entries`, when not the Redis default.
    stream_node_max_entries: Option<u32>,
}

/// Builds a [`RedisServer`] with TLS and ACL users:
/// `RedisServer::builder().tls(files).acl_user("poa on >secret ~poa:* +ping").disable_default_user().start()`.
///
/// The plain port (`url`) stays open for the fixture's own `command`s; with the `default` user
/// disabled the fixture authenticates them as a private admin user.
#[derive(Debug, Default)]
#[must_use]
pub struct RedisServerBuilder {
    tls: Option<TlsFiles>,
    users: Vec<String>,
    disable_default_user: bool,
    append_only: bool,
    stream_node_max_entries: Option<u32>,
}

impl RedisServerBuilder {
    /// Also serve TLS with these files on a second reserved port ([`RedisServer::tls_url`]).
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Adds an ACL user: the arguments of a `user` directive (`ACL SETUSER`), starting with the
    /// name, e.g. `poa on >secret ~poa:* +evalsha`. Words are split at whitespace, so a
    /// password cannot contain any.
    pub fn acl_user(mut self, rules: impl Into<String>) -> Self {
        self.users.push(rules.into());
        self
    }

    /// Turns the `default` user off: every client must authenticate.
    pub fn disable_default_user(mut self) -> Self {
        self.disable_default_user = true;
        self
    }

    /// Persistence as production runs it: an append-only file written before every reply
    /// (`--appendonly yes --appendfsync always`), so [`RedisServer::restart_keeping_data`]
    /// brings back every acknowledged write. [`RedisServer::restart`] still comes back empty (it
    /// removes the file first): a node that lost its disk.
    pub fn append_only(mut self) -> Self {
        self.append_only = true;
        self
    }

    /// Sets `stream-node-max-entries` (Redis default 100): `XTRIM MAXLEN ~` trims whole macro
    /// nodes of this many entries, so a stream keeps fewer than `MAXLEN + entries`. A small value
    /// makes a short stream window precise.
    pub fn stream_node_max_entries(mut self, entries: u32) -> Self {
        self.stream_node_max_entries = Some(entries);
        self
    }

    /// Starts the server; as [`RedisServer::start`].
    pub fn start(self) -> RedisServer {
        let mut users = self.users;
        let admin = self.disable_default_user.then(|| {
            let password = format!(
                "{:016x}{:016x}",
                RandomState::new().hash_one(std::process::id()),
                RandomState::new().hash_one(Instant::now())
            );
            users.push(format!("poa-fixture-admin on >{password} ~* &* +@all"));
            users.push("default off".to_owned());
            ("poa-fixture-admin".to_owned(), password)
        });
        let options = ServerOptions {
            tls: self.tls.map(|files| (files, PortReservation::acquire())),
            users,
            admin,
            append_only: self.append_only,
            stream_node_max_entries: self.stream_node_max_entries,
        };
        RedisServer::start_with(options)
    }
}

impl RedisServer {
    /// Starts a server on a free reserved port and returns once it answers `PING` with `PONG`.
    ///
    /// Blocking (typically a few tens of milliseconds). Panics with instructions when
    /// `redis-server` is not on `PATH`, and with the server's log when it fails to start.
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// A builder for a server with TLS and ACL users.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    fn start_with(options: ServerOptions) -> Self {
        let program = redis_server_program();
        let mut options = Some(options);
        for _ in 0..SPAWN_ATTEMPTS {
            let mut server = Self::new_stopped();
            server.options = options.take().unwrap_or_default();
            match launch(
                program,
                server.port(),
                &server.dir,
                &server.options,
                Start::AsConfigured,
            ) {
                Launch::Ready(child) => {
                    *server.process() = Some(child);
                    return server;
                }
                // Something outside the fixtures listens there: try another port.
                Launch::PortTaken => options = Some(std::mem::take(&mut server.options)),
            }
        }
        panic!("redis-server could not bind any of {SPAWN_ATTEMPTS} reserved loopback ports")
    }

    /// Reserves a port and a working directory without starting the server, for tests where a
    /// configured node is down at first; [`Self::restart`] starts it.
    pub fn new_stopped() -> Self {
        redis_server_program();
        let reservation = PortReservation::acquire();
        let dir = create_work_dir(reservation.port());
        Self {
            reservation,
            dir,
            process: Mutex::new(None),
            options: ServerOptions::default(),
        }
    }

    /// `redis://127.0.0.1:<port>`; stays the same across restarts.
    pub fn url(&self) -> String {
        redis_url(self.addr())
    }

    /// `rediss://127.0.0.1:<tls port>`. Panics unless built with [`RedisServerBuilder::tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port())
    }

    /// The TLS port. Panics unless built with [`RedisServerBuilder::tls`].
    pub fn tls_port(&self) -> u16 {
        match &self.options.tls {
            Some((_, reservation)) => reservation.port(),
            None => panic!(
                "this redis-server serves no tls: build it with RedisServer::builder().tls(..)"
            ),
        }
    }

    /// The server's port; stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.reservation.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// The process id, or `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process().as_ref().map(Child::id)
    }

    /// The file receiving the server's stdout and stderr, for diagnosing a failing test.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Does nothing when already stopped.
    /// Clients then see refused connections; the data is gone for good.
    pub fn stop(&self) {
        kill_and_wait(&mut self.process());
    }

    /// Starts the server again on the same port, empty: stops it first if it is running (even
    /// frozen), removes its append-only file if it has one, and returns once it answers `PING`.
    /// Also starts a [`Self::new_stopped`] server.
    pub fn restart(&self) {
        let mut process = self.process();
        kill_and_wait(&mut process);
        self.remove_data();
        self.launch_into(&mut process);
    }

    /// The server's data as of now (`SAVE`), like an operator's nightly backup, to bring back
    /// later with [`Self::restore`].
    pub fn snapshot(&self) -> Snapshot {
        self.command(&[b"SAVE"]);
        let path = self.dir.join(RDB_FILE);
        let rdb = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("cannot read the snapshot {}: {err}", path.display()));
        remove_if_present(&path);
        Snapshot { rdb }
    }

    /// Stops the server (SIGKILL, even frozen) and starts it again on the same port holding
    /// exactly `snapshot`'s data, as a node restored from a backup comes back: whatever it
    /// acknowledged after the snapshot is gone. Returns once it answers `PING`.
    pub fn restore(&self, snapshot: &Snapshot) {
        let mut process = self.process();
        kill_and_wait(&mut process);
        self.remove_data();
        let path = self.dir.join(RDB_FILE);
        std::fs::write(&path, &snapshot.rdb)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        // With the append-only file on and none present, redis-server starts empty instead of
        // loading the snapshot: start without it, then turn it on (which rewrites the file
        // from the loaded data), as an operator restores such a node.
        self.launch_as(&mut process, Start::FromSnapshot);
        drop(process);
        if self.options.append_only {
            self.command(&[b"CONFIG", b"SET", b"appendfsync", b"always"]);
            self.command(&[b"CONFIG", b"SET", b"appendonly", b"yes"]);
            self.wait_for_append_only_rewrite();
        }
        // Loaded: a later empty restart must not find it again.
        remove_if_present(&path);
    }

    /// Waits until the append-only file rewritten after `CONFIG SET appendonly yes` is done.
    fn wait_for_append_only_rewrite(&self) {
        let started = Instant::now();
        loop {
            let RespValue::Bulk(info) = self.command(&[b"INFO", b"persistence"]) else {
                panic!("INFO persistence did not answer with text");
            };
            let info = String::from_utf8_lossy(&info);
            let done = [
                "aof_enabled:1",
                "aof_rewrite_in_progress:0",
                "aof_rewrite_scheduled:0",
            ]
            .iter()
            .all(|field| info.lines().any(|line| line.trim() == *field));
            if done {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "redis-server on port {} did not finish writing its append-only file",
                self.port()
            );
            thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Removes the append-only file and any snapshot file, so the next start is empty.
    fn remove_data(&self) {
        let aof = self.dir.join(AOF_DIR);
        if let Err(err) = std::fs::remove_dir_all(&aof)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            panic!(
                "cannot remove the append-only file {}: {err}",
                aof.display()
            );
        }
        remove_if_present(&self.dir.join(RDB_FILE));
    }

    /// Starts the server again on the same port with every write it acknowledged: stops it
    /// first if it is running (even frozen), and returns once it answers `PING` (after loading
    /// the append-only file). Panics unless built with [`RedisServerBuilder::append_only`].
    pub fn restart_keeping_data(&self) {
        assert!(
            self.options.append_only,
            "redis-server on port {} has no persistence to keep: build it with RedisServer::builder().append_only()",
            self.port()
        );
        let mut process = self.process();
        kill_and_wait(&mut process);
        self.launch_into(&mut process);
    }

    fn launch_into(&self, process: &mut Option<Child>) {
        self.launch_as(process, Start::AsConfigured);
    }

    fn launch_as(&self, process: &mut Option<Child>, start: Start) {
        let program = redis_server_program();
        for _ in 0..SPAWN_ATTEMPTS {
            match launch(program, self.port(), &self.dir, &self.options, start) {
                Launch::Ready(child) => {
                    *process = Some(child);
                    return;
                }
                // A process outside the fixtures may hold the port briefly: wait and retry.
                Launch::PortTaken => thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!(
            "redis-server could not restart on port {}: another process keeps it bound",
            self.port()
        )
    }

    /// Suspends the server with SIGSTOP: the kernel still accepts connections and buffers
    /// requests, but nothing is answered (a half-alive node). Panics when stopped.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Resumes a frozen server with SIGCONT; it then answers everything it buffered.
    /// Panics when stopped.
    pub fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Sends one command (for example `&[b"SET", b"key", b"value"]`) and returns the reply; an
    /// error reply is `RespValue::Error`, not a panic. Panics when no reply comes within 5 s
    /// or the connection fails (use [`Self::try_command`] when that is expected).
    pub fn command(&self, args: &[&[u8]]) -> RespValue {
        self.try_command(args, COMMAND_TIMEOUT)
            .unwrap_or_else(|err| panic!("{}", self.describe_failure(args, &err)))
    }

    /// Sends one command, bounded by `timeout`, for tests where the server may not answer.
    ///
    /// # Errors
    ///
    /// As [`resp::request`]: `TimedOut` when frozen, `Io` (refused) when stopped.
    pub fn try_command(&self, args: &[&[u8]], timeout: Duration) -> Result<RespValue, RespError> {
        resp::request_as(self.addr(), self.options.auth(), args, timeout)
    }

    /// [`Self::command`] without blocking the runtime thread; needs a tokio runtime.
    pub async fn command_async(&self, args: &[&[u8]]) -> RespValue {
        self.try_command_async(args, COMMAND_TIMEOUT)
            .await
            .unwrap_or_else(|err| panic!("{}", self.describe_failure(args, &err)))
    }

    /// [`Self::try_command`] without blocking the runtime thread; needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`resp::request_async`].
    pub async fn try_command_async(
        &self,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Result<RespValue, RespError> {
        resp::request_as_async(self.addr(), self.options.auth(), args, timeout).await
    }

    fn process(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock must not stop `Drop` from killing the process.
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self, signal: Signal) {
        // Holding the lock keeps the pid from being reaped (and reused) while signalling.
        let process = self.process();
        let Some(child) = process.as_ref() else {
            panic!(
                "cannot send {signal} to redis-server on port {}: it is stopped",
                self.port()
            )
        };
        let pid = i32::try_from(child.id()).map(Pid::from_raw);
        if let Err(err) = pid.map(|pid| kill(pid, signal)) {
            panic!(
                "cannot send {signal} to redis-server pid {}: {err}",
                child.id()
            )
        }
    }

    fn describe_failure(&self, args: &[&[u8]], err: &RespError) -> String {
        let command: Vec<_> = args
            .iter()
            .map(|arg| String::from_utf8_lossy(arg))
            .collect();
        let mut message = format!(
            "redis command `{}` on port {} failed: {err}",
            command.join(" "),
            self.port()
        );
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill_and_wait(&mut self.process());
        if thread::panicking() {
            // Captured by the test harness and shown with the failure.
            let log = read_log_since(&self.log_path(), 0);
            let skip = log.lines().count().saturating_sub(LOG_LINES_ON_FAILURE);
            let tail: Vec<_> = log.lines().skip(skip).collect();
            eprintln!(
                "redis-server on port {} log tail:\n{}",
                self.port(),
                tail.join("\n")
            );
        }
        // Best effort: a leftover directory in the temp dir harms nobody.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ServerOptions {
    fn auth(&self) -> Option<(&str, &str)> {
        self.admin
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    fn args(&self, start: Start) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if self.append_only && start == Start::AsConfigured {
            args.extend(["--appendonly".into(), "yes".into()]);
            args.extend(["--appendfsync".into(), "always".into()]);
            args.extend(["--appenddirname".into(), AOF_DIR.into()]);
        } else {
            args.extend(["--appendonly".into(), "no".into()]);
        }
        if let Some(entries) = self.stream_node_max_entries {
            args.extend([
                "--stream-node-max-entries".into(),
                entries.to_string().into(),
            ]);
        }
        if let Some((files, reservation)) = &self.tls {
            args.extend(["--tls-port".into(), reservation.port().to_string().into()]);
            args.extend(["--tls-cert-file".into(), files.cert.clone().into()]);
            args.extend(["--tls-key-file".into(), files.key.clone().into()]);
            args.extend(["--tls-ca-cert-file".into(), files.ca.clone().into()]);
            let auth_clients = if files.require_client_certificates {
                "yes"
            } else {
                "no"
            };
            args.extend(["--tls-auth-clients".into(), auth_clients.into()]);
        }
        for user in &self.users {
            // redis-server joins the words after `--user` into one `user` directive.
            args.push("--user".into());
            args.extend(user.split_whitespace().map(Into::into));
        }
        args
    }
}

/// How one spawn ended.
enum Launch {
    /// The server answers `PING` and is the process just spawned.
    Ready(Child),
    /// The port was bound by another process; the spawned process is gone.
    PortTaken,
}

/// How a launch treats persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the server's options.
    AsConfigured,
    /// With the append-only file off, so the snapshot file is what loads.
    FromSnapshot,
}

fn launch(program: &Path, port: u16, dir: &Path, options: &ServerOptions, start: Start) -> Launch {
    let log_path = dir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", log_path.display()));
    let log_start = log.metadata().map(|meta| meta.len()).unwrap_or_default();
    let stderr = log
        .try_clone()
        .unwrap_or_else(|err| panic!("cannot share {}: {err}", log_path.display()));
    let mut command = spawner::command_tied_to_process(program);
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--daemonize", "no", "--dir"])
        .arg(dir)
        .args(options.args(start))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    let mut child = spawner::spawn(command)
        .unwrap_or_else(|err| panic!("cannot spawn {}: {err}", program.display()));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = read_log_since(&log_path, log_start);
            if log.contains("Address already in use") {
                return Launch::PortTaken;
            }
            panic!(
                "redis-server on port {port} exited ({status}) before answering PING; log {}:\n{log}",
                log_path.display()
            );
        }
        match probe(addr, child.id(), options.auth()) {
            Probe::Ready => {
                tracing::debug!(
                    port,
                    pid = child.id(),
                    elapsed_ms = elapsed_ms(started),
                    "redis server ready"
                );
                return Launch::Ready(child);
            }
            Probe::AnotherServer => {
                kill_and_wait(&mut Some(child));
                return Launch::PortTaken;
            }
            Probe::NotYet => {}
        }
        if started.elapsed() >= READY_TIMEOUT {
            kill_and_wait(&mut Some(child));
            panic!(
                "redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}; log {}:\n{}",
                log_path.display(),
                read_log_since(&log_path, log_start)
            );
        }
        thread::sleep(PROBE_INTERVAL);
    }
}

/// What a readiness probe found on the port.
enum Probe {
    /// `PING` got `PONG` from the process just spawned.
    Ready,
    /// `PING` got `PONG`, but from a server with another pid.
    AnotherServer,
    /// No `PONG` yet.
    NotYet,
}

fn probe(addr: SocketAddr, pid: u32, auth: Option<(&str, &str)>) -> Probe {
    let pong = RespValue::Simple("PONG".to_owned());
    if resp::request_as(addr, auth, &[b"PING"], PROBE_TIMEOUT).ok() != Some(pong) {
        return Probe::NotYet;
    }
    // A PONG alone could come from a foreign server that won the port while ours failed to bind.
    match resp::request_as(addr, auth, &[b"INFO", b"server"], PROBE_TIMEOUT) {
        Ok(RespValue::Bulk(info)) => {
            let expected = format!("process_id:{pid}\r\n");
            if String::from_utf8_lossy(&info).contains(&expected) {
                Probe::Ready
            } else {
                Probe::AnotherServer
            }
        }
        _ => Probe::NotYet,
    }
}

fn kill_and_wait(process: &mut Option<Child>) {
    if let Some(mut child) = process.take() {
        // SIGKILL also ends a frozen (SIGSTOP) process; an error means it already exited.
        let _ = child.kill();
        if let Err(err) = child.wait() {
            tracing::warn!(pid = child.id(), error = %err, "cannot reap redis server");
        }
    }
}

fn redis_server_program() -> &'static Path {
    static PROGRAM: OnceLock<Option<PathBuf>> = OnceLock::new();
    match PROGRAM.get_or_init(|| spawner::find_on_path("redis-server")) {
        Some(program) => program,
        None => {
            panic!("redis-server not found on PATH: install it (apt-get install -y redis-server)")
        }
    }
}

fn create_work_dir(port: u16) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static STALE_REMOVED: Once = Once::new();
    let parent = std::env::temp_dir().join("poa-test-support-redis");
    STALE_REMOVED.call_once(|| remove_work_dirs_of_dead_processes(&parent));
    let sequence = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("{}-{port}-{sequence}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|err| panic!("cannot create redis work dir {}: {err}", dir.display()));
    dir
}

/// Test processes that were killed never ran `Drop`: their directories (named after their pid)
/// would pile up.
fn remove_work_dirs_of_dead_processes(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|name| name.split('-').next()?.parse::<i32>().ok());
        // ESRCH: no such process. Any other answer (even EPERM) means the owner may be alive.
        if owner.is_some_and(|pid| kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn read_log_since(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    let read = OpenOptions::new()
        .read(true)
        .open(path)
        .and_then(|mut file| {
            file.seek(SeekFrom::Start(offset))?;
            file.read_to_string(&mut text)
        });
    match read {
        Ok(_) => text,
        Err(err) => format!("(log unreadable: {err})"),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

//! A running `poa-node` process for tests: started with JSON logs, its HTTP address read from
//! its log, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// How long a node may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The path of libfaketime's multi-threaded library (Debian's `faketime` package).
fn libfaketime() -> &'static str {
    const CANDIDATES: &[&str] = &[
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ];
    CANDIDATES
        .iter()
        .copied()
        .find(|path| Path::new(path).exists())
        .expect("libfaketime is missing: install it with `apt-get install -y faketime`")
}

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_poa-node")
}

/// A running node.
pub struct Node {
    child: Option<Child>,
    /// The node's own process when `child` is a tool it runs under (`strace`).
    traced: Option<Pid>,
    pub http: String,
    pub admin_http: String,
    /// Every line of its standard output (the JSON log) and standard error.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a node on `data_dir` with `args`, waits until its HTTP API listens. The HTTP API
    /// gets a free port unless `args` names one with `--http`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_command(Command::new(binary()), data_dir, args)
    }

    /// Like [`Node::start`], with `environment` set (a value of `None` removes the variable).
    pub fn start_with_environment(
        data_dir: &Path,
        args: &[&str],
        environment: &[(&str, Option<&str>)],
    ) -> Self {
        let mut command = Command::new(binary());
        for (name, value) in environment {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        Self::start_command(command, data_dir, args)
    }

    /// The environment the process runs with (`/proc/<pid>/environ`), as `NAME=value` strings.
    pub fn environment(&self) -> Vec<String> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.pid())).unwrap();
        environ
            .split(|byte| *byte == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect()
    }

    /// Like [`Node::start`], with the soft limit of open file descriptors set to `soft` (the
    /// hard limit unchanged), as a default systemd or login session would leave it.
    pub fn start_with_descriptor_limit(data_dir: &Path, args: &[&str], soft: u64) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"ulimit -Sn "$0" && exec "$@""#])
            .arg(soft.to_string())
            .arg(binary());
        Self::start_command(command, data_dir, args)
    }

    /// Like [`Node::start`], with the process's wall clock shifted by libfaketime by the offset
    /// written in `offset_file` (for example `+0` or `+86400`), read again at every clock call so
    /// the test can move the clock while the process runs. Monotonic time is left alone.
    pub fn start_with_clock_from(data_dir: &Path, args: &[&str], offset_file: &Path) -> Self {
        let mut command = Command::new(binary());
        command
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", offset_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        Self::start_command(command, data_dir, args)
    }

    /// Like [`Node::start`], under `strace` with every `fsync` and `fdatasync` of the process
    /// held for `delay` before it runs: each commit of the local chain then lasts at least that
    /// long, so a test can act while one runs. Only those calls stop the process (seccomp-bpf).
    pub fn start_with_slow_fsync(data_dir: &Path, args: &[&str], delay: Duration) -> Self {
        let version = Command::new("strace").arg("-V").output();
        assert!(
            version.is_ok_and(|output| output.status.success()),
            "strace is missing: install it with `apt-get install -y strace`"
        );
        let mut command = Command::new("strace");
        command
            .args(["-f", "--seccomp-bpf", "-qq", "-o", "/dev/null"])
            .args(["-e", "trace=fsync,fdatasync"])
            .arg("-e")
            .arg(format!(
                "inject=fsync,fdatasync:delay_enter={}",
                delay.as_micros()
            ))
            .arg(binary());
        let mut node = Self::start_command(command, data_dir, args);
        let strace = node.child.as_ref().unwrap().id();
        let children =
            std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
        let traced = children
            .split_whitespace()
            .next()
            .expect("strace runs no poa-node")
            .parse()
            .unwrap();
        node.traced = Some(Pid::from_raw(traced));
        node
    }

    fn start_command(mut command: Command, data_dir: &Path, args: &[&str]) -> Self {
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let http = if args.contains(&"--http") {
            &[][..]
        } else {
            &["--http", "127.0.0.1:0"][..]
        };
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(http)
            .args(["--admin-http", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start poa-node");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Standard error (the exit reason) joins the log, and still shows in the test's output.
        let lines = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.lock().unwrap().push(line);
            }
        });
        let (address_sender, address) = mpsc::channel();
        let lines = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && let (Some(http), Some(admin)) = (
                        event.get("http").and_then(Value::as_str),
                        event.get("admin_http").and_then(Value::as_str),
                    )
                {
                    let _ = address_sender.send((http.to_owned(), admin.to_owned()));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let (http, admin_http) = match address.recv_timeout(START_DEADLINE) {
            Ok(addresses) => addresses,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "poa-node did not start listening; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child: Some(child),
            traced: None,
            http,
            admin_http,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// GET `path`: the status code and the body as JSON (or `Null` when it is not JSON).
    pub fn get(&self, path: &str) -> (u16, Value) {
        request(
            ureq::get(&self.url(path))
                .config()
                .http_status_as_error(false)
                .build()
                .call(),
        )
    }

    /// GET `path` with every request bounded by `timeout`, retried until a request is answered
    /// or `deadline` passes: the status code, or `None` when nothing was answered in time.
    pub fn get_within(&self, path: &str, timeout: Duration, deadline: Duration) -> Option<u16> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Ok(response) = agent.get(&self.url(path)).call() {
                return Some(response.status().as_u16());
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// POST `body` to `path`.
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        request(
            ureq::post(&self.url(path))
                .config()
                .http_status_as_error(false)
                .build()
                .send(body),
        )
    }

    /// POST to the admin API.
    pub fn post_admin(&self, path_and_query: &str) -> (u16, Value) {
        let url = format!("http://{}{path_and_query}", self.admin_http);
        request(
            ureq::post(&url)
                .config()
                .http_status_as_error(false)
                .build()
                .send(&[] as &[u8]),
        )
    }

    pub fn height(&self) -> u64 {
        let (status, body) = self.get("/status");
        assert_eq!(status, 200);
        body["height"].as_u64().unwrap()
    }

    /// The id of the block at `height`, if the node holds it.
    pub fn block_id(&self, height: u64) -> Option<String> {
        let (status, body) = self.get(&format!("/blocks/{height}"));
        (status == 200).then(|| body["id"].as_str().unwrap().to_owned())
    }

    /// Whether the process was started and has not been killed or terminated by the test.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_leader(&self) -> bool {
        self.get("/leader").0 == 200
    }

    /// A field of the process's `/proc/<pid>/status`, e.g. `Threads` or `VmRSS`, as a number
    /// (the `kB` unit dropped).
    pub fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in the process status"))
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    pub fn pid(&self) -> Pid {
        self.traced.unwrap_or_else(|| {
            Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap())
        })
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The node first: a tracer that dies lets its tracee run on.
            if let Some(traced) = self.traced.take() {
                let _ = kill(traced, Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("poa-node did not exit after SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path`: the status code and the body as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = ureq::get(&self.url(path))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("http request failed");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// Waits (bounded) for the process to exit on its own; `None` if it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn request(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = result.expect("http request failed");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Runs the binary with `args` until it exits (killed after `deadline`): its status, stdout and
/// stderr. For runs that must stop on their own, such as a refused start.
pub fn run_to_exit(
    args: &[&str],
    deadline: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start poa-node");
    let end = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("poa-node {args:?} did not exit within {deadline:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `count` connections to `address`, each sending what `request` gives for its index (possibly
/// nothing) and then never reading; those the server does not take or closes while the request
/// is written are left out.
pub fn hold_connections<'a>(
    address: std::net::SocketAddr,
    count: usize,
    request: impl Fn(usize) -> &'a [u8],
) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..count)
        .filter_map(|index| {
            let mut stream =
                std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
            stream.write_all(request(index)).ok()?;
            Some(stream)
        })
        .collect()
}

/// `count` free loopback addresses (`127.0.0.1:port`), all reserved at once so no two are the
/// same, then released for the processes that will listen on them.
pub fn reserve_addresses(count: usize) -> Vec<String> {
    let reserved: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    reserved
        .iter()
        .map(|listener| listener.local_addr().unwrap().to_string())
        .collect()
}

/// Raises this test process's soft descriptor limit to at least `needed` (within the hard
/// limit), so it can hold that many sockets.
pub fn allow_descriptors(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= needed,
        "this test needs {needed} descriptors; the hard limit is {hard}"
    );
    if soft < needed {
        setrlimit(Resource::RLIMIT_NOFILE, needed, hard).unwrap();
    }
}

/// Polls `predicate` every 20 ms until it holds or `deadline` passes.
pub fn eventually(deadline: Duration, mut predicate: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if predicate() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    predicate()
}

/// Flags of a producer in a fleet on `redis_urls`: the given block time and lease TTL, short
/// Redis timeouts and retries, then `extra`.
pub fn fleet_flags(
    redis_urls: &[String],
    block_time: &str,
    lease_ttl: &str,
    extra: &[&str],
) -> Vec<String> {
    fleet_flags_with_trigger(redis_urls, &["--block-time", block_time], lease_ttl, extra)
}

/// Like [`fleet_flags`], with the trigger's flags given (`--manual`, `--instant`, or
/// `--block-time` and its value).
pub fn fleet_flags_with_trigger(
    redis_urls: &[String],
    trigger: &[&str],
    lease_ttl: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut flags: Vec<String> = trigger
        .iter()
        .chain(&[
            "--lease-ttl",
            lease_ttl,
            "--node-timeout",
            "100ms",
            "--retry-delay",
            "50ms",
            "--max-retry-delay-offset",
            "50ms",
        ])
        .chain(extra)
        .map(|flag| (*flag).to_owned())
        .collect();
    for url in redis_urls {
        flags.push("--redis-url".to_owned());
        flags.push(url.clone());
    }
    flags
}

/// Two producers with `flags` in `dirs`, each on its own loopback address and naming the other
/// as its `--peer`; the second starts once the first leads, so the first returned leads.
pub fn start_peered_pair(dirs: &[tempfile::TempDir; 2], flags: &[String]) -> (Node, Node) {
    let addresses = reserve_addresses(2);
    let start = |index: usize| {
        let peer = format!("http://{}", addresses[1 - index]);
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(["--http", &addresses[index], "--peer", &peer]);
        Node::start(dirs[index].path(), &args)
    };
    let first = start(0);
    assert!(
        eventually(START_DEADLINE, || first.is_leader()),
        "the first node does not lead"
    );
    (first, start(1))
}

/// Runs the binary on `data_dir` with `extra` flags (the admin listener on a free port, and
/// the HTTP API too unless `extra` names one) until it exits, as a start that must be refused:
/// its exit code, stdout and stderr.
pub fn run_refused(data_dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let data_dir = data_dir.display().to_string();
    let mut args = vec!["--data-dir", &data_dir, "--admin-http", "127.0.0.1:0"];
    if !extra.contains(&"--http") {
        args.extend(["--http", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_to_exit(&args, START_DEADLINE);
    (status.code(), stdout, stderr)
}

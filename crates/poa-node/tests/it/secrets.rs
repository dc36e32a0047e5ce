//! No secret in any output: a password planted in the environment, a URL, a settings file or a
//! password file never appears in what the process prints (its log at `trace`, `--help`, its
//! errors) or serves (`/status`, `/metrics`), and a password file that others may read is
//! refused as a key file is.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use poa_test_support::RedisServer;

use crate::support::{Node, binary, eventually};

/// What every test plants and looks for.
const SECRET: &str = "pl4nted-s3cret";
/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(20);

/// Runs the binary with `args` and `env` until it exits: its status code and everything it
/// printed on stdout and stderr.
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start poa-node");
    let end = Instant::now() + HANG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            // Never leave a process behind holding ports for the tests that follow.
            let _ = child.kill();
            let _ = child.wait();
            panic!("poa-node {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), printed)
}

#[test]
fn help__when_the_environment_holds_credentials__then_prints_none_of_them() {
    // given: credentials in the variables an operator's unit file sets
    let url = format!("redis://producer:{SECRET}@127.0.0.1:6379");
    let env = [
        ("POA_REDIS_URLS", url.as_str()),
        ("POA_PEERS", url.as_str()),
        ("POA_REDIS_PASSWORD", SECRET),
        ("POA_REDIS_USERNAME", SECRET),
    ];

    // when
    let (code, printed) = run_with_env(&["--help"], &env);

    // then
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("POA_REDIS_URLS"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
}

#[test]
fn config__when_a_line_holding_a_secret_does_not_parse__then_names_the_line_without_its_text() {
    // given: a password pasted into the settings file, its closing quote missing
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poa.toml");
    std::fs::write(
        &config,
        format!("block-time = \"100ms\"\nredis-password = \"{SECRET}\n"),
    )
    .unwrap();
    let data_dir = dir.path().join("data");

    // when
    let (code, printed) = run_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
    );

    // then
    assert_ne!(code, Some(0), "{printed}");
    assert!(printed.contains("--config"), "{printed}");
    assert!(printed.contains("line 2"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
}

#[test]
fn redis_password_file__when_group_or_others_may_read_it__then_refused_naming_the_fix() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("redis-password");
    std::fs::write(&password_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data_dir = dir.path().join("data");

    // when
    let (code, printed) = run_with_env(
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--redis-url",
            "redis://producer@127.0.0.1:6379",
            "--redis-password-file",
            password_file.to_str().unwrap(),
        ],
        &[],
    );

    // then
    assert_ne!(code, Some(0), "{printed}");
    assert!(printed.contains("--redis-password-file"), "{printed}");
    assert!(printed.contains("chmod 600"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
}

#[test]
fn node__when_it_runs_with_a_password_and_logs_at_trace__then_no_output_or_page_shows_it() {
    // given: a Redis server that only lets the producer's user in, with the planted password
    let redis = RedisServer::builder()
        .acl_user(format!("producer on >{SECRET} ~* &* +@all"))
        .disable_default_user()
        .start();
    let url = redis.url().replacen("redis://", "redis://producer@", 1);
    let dir = tempfile::tempdir().unwrap();

    // when
    let node = Node::start_with_environment(
        dir.path(),
        &["--block-time", "100ms", "--redis-url", &url],
        &[
            ("POA_REDIS_PASSWORD", Some(SECRET)),
            ("RUST_LOG", Some("trace")),
        ],
    );
    assert!(
        eventually(HANG, || node.height() >= 3),
        "the node never produced with the password"
    );
    let (_, status) = node.get_text("/status");
    let (_, metrics) = node.get_text("/metrics");

    // then
    assert!(!status.contains(SECRET), "{status}");
    assert!(!metrics.contains(SECRET), "{metrics}");
    let log = node.log.lock().unwrap();
    assert!(log.len() > 10, "too little logged at trace to judge");
    if let Some(line) = log.iter().find(|line| line.contains(SECRET)) {
        panic!("the log shows the password: {line}");
    }
}

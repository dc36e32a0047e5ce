//! Settings resolution: defaults, precedence of flags over the file, and errors naming the flag.

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::cli::Cli;

fn resolve(args: &[&str]) -> Result<Settings, InvalidSetting> {
    let cli = Cli::try_parse_from(std::iter::once("poa-node").chain(args.iter().copied())).unwrap();
    Settings::resolve(cli.run)
}

fn flag_of(args: &[&str]) -> &'static str {
    resolve(args).expect_err("settings should be refused").flag
}

#[test]
fn resolve__when_no_flags__then_runs_a_single_dev_node_with_one_second_blocks() {
    // when
    let settings = resolve(&[]).unwrap();

    // then
    assert_eq!(settings.data_dir, PathBuf::from("poa-data"));
    assert_eq!(
        settings.trigger,
        Trigger::Interval {
            block_time: Duration::from_secs(1)
        }
    );
    assert_eq!(settings.http, "127.0.0.1:4000".parse().unwrap());
    assert_eq!(settings.admin_http, "127.0.0.1:4100".parse().unwrap());
    assert_eq!(settings.key_source, KeySource::Development);
    assert!(settings.redis.is_none());
    assert_eq!(settings.poll_interval, Duration::from_secs(1));
}

#[test]
fn resolve__when_redis_urls_are_given__then_polls_at_most_a_quarter_ttl() {
    // when
    let settings = resolve(&[
        "--redis-url",
        "redis://127.0.0.1:7001",
        "--redis-url",
        "redis://127.0.0.1:7002",
        "--lease-ttl",
        "2s",
        "--block-time",
        "1s",
    ])
    .unwrap();

    // then
    assert_eq!(settings.redis.unwrap().urls.len(), 2);
    assert_eq!(settings.poll_interval, Duration::from_millis(500));
}

#[test]
fn resolve__when_lease_ttl_is_not_above_node_timeout__then_names_both_flags_and_the_fix() {
    // when
    let error = resolve(&["--lease-ttl", "100ms", "--node-timeout", "200ms"])
        .expect_err("settings should be refused");

    // then
    assert_eq!(error.flag, "--lease-ttl");
    assert_eq!(
        error.to_string(),
        "invalid --lease-ttl: --lease-ttl (100ms) must be larger than --node-timeout (200ms): raise the ttl or lower the timeout"
    );
}

#[test]
fn resolve__when_a_setting_is_invalid__then_names_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--block-time", "0s"], "--block-time"),
        (&["--poll-interval", "0ms"], "--poll-interval"),
        (
            &["--lease-ttl", "100ms", "--node-timeout", "200ms"],
            "--lease-ttl",
        ),
        (&["--lease-ttl", "0s"], "--lease-ttl"),
        (&["--node-timeout", "0s"], "--node-timeout"),
        (&["--max-attempts", "0"], "--max-attempts"),
        (&["--stream-max-len", "0"], "--stream-max-len"),
        (
            &["--quorum-disruption-budget", "1"],
            "--quorum-disruption-budget",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--quorum-disruption-budget",
                "2",
            ],
            "--quorum-disruption-budget",
        ),
        (&["--redis-url", "http://127.0.0.1:1"], "--redis-url"),
        (&["--redis-url", "redis://127.0.0.1:1/0"], "--redis-url"),
        (&["--redis-url", "redis://127.0.0.1:1?db=1"], "--redis-url"),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-url",
                "redis://[::ffff:127.0.0.1]:1",
            ],
            "--redis-url",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--poll-interval",
                "1h",
            ],
            "--poll-interval",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--stream-max-len",
                "1",
            ],
            "--stream-max-len",
        ),
        (
            &["--redis-url", "redis://127.0.0.1:1", "--retry-delay", "2s"],
            "--max-attempts",
        ),
        (&["--key-file", "/nonexistent/poa/key"], "--key-file"),
        (&["--lease-key", " "], "--lease-key"),
    ];
    for (args, flag) in cases {
        assert_eq!(flag_of(args), *flag, "for {args:?}");
    }
}

#[test]
fn resolve__when_a_next_redis_url_value_is_bad__then_the_error_names_next_redis_url() {
    let current = ["--redis-url", "redis://127.0.0.1:1"];
    let bad_next_lists: &[&[&str]] = &[
        &["http://127.0.0.1:2"],
        &["redis://127.0.0.1:notaport"],
        &["redis://127.0.0.1:2/0"],
        &["redis://127.0.0.1:2?db=1"],
        &["redis://poa:s3cret@127.0.0.1:2"],
        &["redis://127.0.0.1:2", "redis://[::ffff:127.0.0.1]:2"],
    ];
    for next in bad_next_lists {
        // given
        let mut args = current.to_vec();
        for url in *next {
            args.extend(["--next-redis-url", url]);
        }

        // when
        let error = resolve(&args).expect_err("settings should be refused");

        // then
        let message = error.to_string();
        assert_eq!(error.flag, "--next-redis-url", "for {next:?}: {message}");
        assert!(
            error.reason.starts_with("--next-redis-url "),
            "for {next:?}: {message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn parse__when_triggers_conflict__then_refuses() {
    assert!(Cli::try_parse_from(["poa-node", "--instant", "--manual"]).is_err());
    assert!(Cli::try_parse_from(["poa-node", "--instant", "--block-time", "1s"]).is_err());
    assert!(Cli::try_parse_from(["poa-node", "--block-time", "-1s"]).is_err());
}

#[test]
fn resolve__when_a_config_file_is_given__then_flags_override_it_and_it_fills_the_rest() {
    // given
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "data-dir = \"/tmp/from-file\"\nblock-time = \"250ms\"\nredis-urls = [\"redis://127.0.0.1:7001\"]\nlease-ttl = \"4s\""
    )
    .unwrap();
    let path = file.path().to_str().unwrap();

    // when
    let settings = resolve(&["--config", path, "--data-dir", "/tmp/from-flag"]).unwrap();

    // then
    assert_eq!(settings.data_dir, PathBuf::from("/tmp/from-flag"));
    assert_eq!(
        settings.trigger,
        Trigger::Interval {
            block_time: Duration::from_millis(250)
        }
    );
    assert_eq!(settings.redis.unwrap().lease_ttl, Duration::from_secs(4));
}

#[test]
fn resolve__when_the_config_file_has_an_unknown_key__then_names_the_config_flag() {
    // given
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "block-tme = \"1s\"").unwrap();

    // when / then
    assert_eq!(
        flag_of(&["--config", file.path().to_str().unwrap()]),
        "--config"
    );
}

#[test]
fn resolve__when_redis_security_is_given__then_reads_the_password_file_and_names_the_flag_of_each_mistake()
 {
    // given
    let mut password_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(password_file, "s3cret").unwrap();
    let password_path = password_file.path().to_str().unwrap();
    let secured = [
        "--redis-url",
        "rediss://poa@127.0.0.1:1",
        "--redis-password-file",
        password_path,
        "--redis-ca-file",
        "/etc/poa/ca.pem",
    ];
    let mistakes: &[(&[&str], &str)] = &[
        (
            &["--redis-url", "redis://poa:s3cret@127.0.0.1:1"],
            "--redis-url",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-username",
                "poa",
            ],
            "--redis-username",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-ca-file",
                "/x",
            ],
            "--redis-ca-file",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-password-file",
                "/nonexistent/poa",
            ],
            "--redis-password-file",
        ),
    ];

    // when
    let settings = resolve(&secured).unwrap();

    // then
    let security = settings.redis.unwrap().security;
    assert_eq!(security.password, Some(RedisPassword::new("s3cret")));
    assert_eq!(security.ca_file, Some(PathBuf::from("/etc/poa/ca.pem")));
    assert!(!format!("{security:?}").contains("s3cret"));
    for (args, flag) in mistakes {
        assert_eq!(flag_of(args), *flag, "for {args:?}");
    }
}

#[test]
fn resolve__when_producers_share_a_host_on_neighbouring_http_ports__then_their_default_admin_ports_never_collide()
 {
    // given / when
    let addresses: Vec<(SocketAddr, SocketAddr)> = ["4001", "4002", "4003"]
        .iter()
        .map(|port| {
            let http = format!("0.0.0.0:{port}");
            let settings = resolve(&["--http", &http]).unwrap();
            (settings.http, settings.admin_http)
        })
        .collect();

    // then: the admin API stays on loopback, 100 above, clear of every HTTP port
    let admin: Vec<String> = addresses
        .iter()
        .map(|(_, admin)| admin.to_string())
        .collect();
    assert_eq!(
        admin,
        ["127.0.0.1:4101", "127.0.0.1:4102", "127.0.0.1:4103"]
    );
    assert!(addresses.iter().all(|(_, admin)| {
        addresses
            .iter()
            .all(|(http, _)| http.port() != admin.port())
    }));
    assert_eq!(
        resolve(&["--http", "127.0.0.1:0"]).unwrap().admin_http,
        "127.0.0.1:0".parse().unwrap()
    );
    assert_eq!(flag_of(&["--http", "127.0.0.1:65500"]), "--admin-http");
}

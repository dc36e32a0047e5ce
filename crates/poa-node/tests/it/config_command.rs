//! `poa-node config`: every setting with where its value came from, in the precedence `run`
//! uses (flag over variable over file over default), secrets redacted, and the verdict.

use std::process::{Command, Stdio};

use crate::support::binary;

/// Runs `poa-node config` with `args` and `env`: exit code, stdout and stderr.
fn config(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = Command::new(binary())
        .arg("config")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run poa-node config");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config__when_flags_variables_and_a_file_set_values__then_prints_each_with_its_source_in_precedence()
 {
    // given: block-time in all three places, lease-ttl in the file and a variable, node-timeout
    // in the file only, stream-max-len nowhere
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("poa.toml");
    std::fs::write(
        &file,
        "block-time = \"1s\"\nlease-ttl = \"4s\"\nnode-timeout = \"50ms\"\nredis-urls = [\"redis://127.0.0.1:6379\"]\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let env = [
        ("POA_BLOCK_TIME", "300ms"),
        ("POA_LEASE_TTL", "2s"),
        ("POA_REDIS_PASSWORD", "pl4nted-s3cret"),
    ];

    // when
    let (code, out, err) = config(&["--config", path, "--block-time", "200ms"], &env);

    // then
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("block-time = \"200ms\"  # flag --block-time"),
        "{out}"
    );
    assert!(
        out.contains("lease-ttl = \"2s\"  # env POA_LEASE_TTL"),
        "{out}"
    );
    assert!(
        out.contains(&format!("node-timeout = \"50ms\"  # file {path}")),
        "{out}"
    );
    assert!(out.contains("# stream-max-len: 1000  # default"), "{out}");
    assert!(
        out.contains("# redis password: <redacted>  # env POA_REDIS_PASSWORD"),
        "{out}"
    );
    assert!(out.contains("# valid"), "{out}");
    assert!(!out.contains("pl4nted-s3cret") && !err.contains("pl4nted-s3cret"));
}

#[test]
fn config__when_a_setting_is_invalid__then_prints_what_it_read_and_names_the_flag() {
    // when
    let (code, out, err) = config(&["--lease-ttl", "0s"], &[]);

    // then
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains("lease-ttl = \"0s\"  # flag --lease-ttl"),
        "{out}"
    );
    assert!(err.contains("--lease-ttl"), "{err}");
}

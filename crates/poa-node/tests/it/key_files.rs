//! The authority key file as an operator handles it: `keygen` creates it for its owner only and
//! never overwrites one, `keygen --print-public` reads the public key back without writing, the
//! node refuses a key file that group or others may read or write, and the secret never shows
//! in the node's log or answers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{Node, binary, eventually, run_to_exit};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(20);

/// Runs `poa-node keygen` with `args` under the file creation mask `umask`.
fn keygen_with_umask(umask: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .args([
            "-c",
            r#"umask "$0" && exec "$@""#,
            umask,
            binary(),
            "keygen",
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Runs `poa-node keygen` with `args`.
fn keygen(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("keygen")
        .args(args)
        .output()
        .unwrap()
}

/// A key file written by `poa-node keygen` in `dir`: its path, and the path as text.
fn generated_key_file(dir: &Path) -> (PathBuf, String) {
    let key_file = dir.join("authority.key");
    let path = key_file.to_str().unwrap().to_owned();
    let output = keygen(&["--key-file", &path]);
    assert!(output.status.success(), "{output:?}");
    (key_file, path)
}

/// The mode bits of `path`.
fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn keygen__when_the_umask_lets_everyone_read__then_still_creates_the_file_for_its_owner_only() {
    for umask in ["000", "022", "077"] {
        // given
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("authority.key");

        // when
        let output = keygen_with_umask(umask, &["--key-file", key_file.to_str().unwrap()]);

        // then
        assert!(output.status.success(), "{output:?}");
        assert_eq!(mode_of(&key_file), 0o600, "umask {umask}");
    }
}

#[test]
fn keygen__when_the_key_file_exists__then_refuses_naming_the_file_and_the_fix_and_keeps_it() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (key_file, path) = generated_key_file(dir.path());
    let path = path.as_str();
    let before = std::fs::read(&key_file).unwrap();

    // when
    let output = keygen(&["--key-file", path]);

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to overwrite existing authority key file {path}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("move it away"), "{stderr}");
    assert!(
        stderr.contains(&format!("poa-node keygen --print-public --key-file {path}")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    assert_eq!(mode_of(&key_file), 0o600);
}

#[test]
fn node__when_the_key_file_is_open_to_group_or_others__then_refuses_naming_file_mode_and_chmod() {
    for mode in [0o640, 0o604, 0o660] {
        // given
        let dir = tempfile::tempdir().unwrap();
        let (key_file, path) = generated_key_file(dir.path());
        let path = path.as_str();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let data_dir = dir.path().join("data");

        // when
        let (status, stdout, stderr) = run_to_exit(
            &[
                "--key-file",
                path,
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--admin-http",
                "127.0.0.1:0",
            ],
            HANG,
        );

        // then
        assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "error: invalid --key-file: authority key file {path} has mode {mode:04o}"
            )),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("`chmod 600 {path}`")), "{stderr}");
        assert!(!data_dir.exists(), "a refused start creates nothing");
        assert_eq!(mode_of(&key_file), mode, "the node never changes the file");
    }
}

#[test]
fn keygen_print_public__when_given_a_key_file__then_prints_the_authority_the_node_reports() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (key_file, path) = generated_key_file(dir.path());
    let path = path.as_str();
    let key_before = std::fs::read(&key_file).unwrap();
    let files_before = listing(dir.path());

    // when
    let output = keygen(&["--print-public", "--key-file", path]);

    // then
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(listing(dir.path()), files_before, "it writes nothing");
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before);
    let node = Node::start(&dir.path().join("data"), &["--key-file", path]);
    let (_, status) = node.get("/status");
    assert_eq!(
        printed,
        format!("{}\n", status["authority"].as_str().unwrap())
    );
}

#[test]
fn keygen_print_public__when_the_key_file_is_missing__then_fails_naming_it_and_creates_nothing() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("absent.key");
    let path = key_file.to_str().unwrap();

    // when
    let output = keygen(&["--print-public", "--key-file", path]);

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("authority key file {path} does not exist")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn keygen_print_public__when_the_key_file_is_open_to_others__then_refuses_as_the_node_does() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (key_file, path) = generated_key_file(dir.path());
    let path = path.as_str();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();

    // when
    let output = keygen(&["--print-public", "--key-file", path]);

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has mode 0644"), "{stderr}");
    assert!(stderr.contains(&format!("`chmod 600 {path}`")), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[test]
fn node__when_running_with_a_key_file__then_never_shows_the_secret() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (key_file, path) = generated_key_file(dir.path());
    let path = path.as_str();
    let secret = std::fs::read_to_string(&key_file).unwrap();
    let secret = secret.trim_end();

    // when
    let node = Node::start(
        &dir.path().join("data"),
        &["--key-file", path, "--block-time", "100ms"],
    );
    assert!(eventually(HANG, || node.height() >= 2));
    let (_, status) = node.get_text("/status");
    let (_, metrics) = node.get_text("/metrics");

    // then
    assert!(node.log_contains(path), "the log names the key file");
    assert!(!node.log_contains(secret));
    assert!(!status.contains(secret));
    assert!(!metrics.contains(secret));
}

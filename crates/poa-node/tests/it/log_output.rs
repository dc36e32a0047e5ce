//! A log that cannot be written (its file on a full disk) never stops the process: log lines
//! are dropped, the node keeps answering and producing once its own files can be written again.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{binary, eventually, reserve_addresses};

fn prlimit_file_size(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success());
}

/// The height `/status` reports, `None` when the node does not answer.
fn height(http: &str) -> Option<u64> {
    let mut response = ureq::get(&format!("http://{http}/status")).call().ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    let status: serde_json::Value = serde_json::from_str(&text).ok()?;
    status["height"].as_u64()
}

#[test]
fn node__when_its_log_file_cannot_be_written__then_keeps_running_and_produces_once_files_can_be_written()
 {
    // given: a node whose standard output and error go to a file, as under `>> node.log 2>&1`
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let http = reserve_addresses(1).remove(0);
    let mut node = Command::new(binary())
        .args(["--data-dir", "poa-data", "--block-time", "50ms"])
        .args(["--http", &http, "--admin-http", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || height(&http)
        .is_some_and(|height| height >= 3)));

    // when: no file of the process can grow (the log's disk is full, and so is the chain's)
    let log_size = std::fs::metadata(dir.path().join("node.log"))
        .unwrap()
        .len();
    prlimit_file_size(node.id(), &log_size.to_string());
    std::thread::sleep(Duration::from_secs(3));

    // then: it is still running and answering; once files can grow again, it produces again
    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    let stalled_at = height(&http).expect("the node still answers");
    prlimit_file_size(node.id(), "unlimited");
    assert!(
        eventually(Duration::from_secs(20), || height(&http)
            .is_some_and(|height| height >= stalled_at + 3)),
        "the node did not produce again"
    );
    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    node.kill().unwrap();
    node.wait().unwrap();
}

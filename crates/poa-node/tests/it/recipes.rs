//! The shell recipes of README.md and docs/, run exactly as written: only the Redis ports are
//! substituted (the recipes name 6379, 6380 and 6381; the tests start their own servers), the
//! variables a recipe says it reads (passwords, a directory of certificates) are set in its
//! environment, and `cargo` on the recipe's PATH is a shim that runs the poa-node binary under
//! test for `cargo run -p poa-node`, and refuses anything else. Every shell block of those documents is
//! either run here or named in [`NOT_RUN_HERE`] with the reason, so a new recipe cannot slip in
//! untested.
//!
//! The recipes bind fixed loopback ports (4000-4003, 4101-4103), so they run one after another
//! in a single test.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use poa_test_support::RedisServer;

use crate::support::{binary, eventually};

mod credential_rotation;
mod load;
mod membership_change;
mod node_emptied;

/// Generous bound that only catches a hang.
const HANG: Duration = Duration::from_secs(30);

/// Shell blocks not run by this file, by document and the heading they sit under, with why.
const NOT_RUN_HERE: &[(&str, &str, &str)] = &[
    (
        "docs/operations.md",
        "9.3",
        "run as written by `check_chain_recipe__when_run_as_written_in_the_operations_guide__then_passes_a_sound_chain_and_fails_a_damaged_one`",
    ),
    (
        "README.md",
        "Watch a takeover",
        "`cargo xtask demo` is run by the demo's own test, `demo__when_run_without_a_terminal__then_reports_a_takeover_and_exits_cleanly`",
    ),
    (
        "README.md",
        "Benchmarks",
        "`cargo xtask bench` builds in release and runs for minutes; `cargo xtask ci` runs `bench --quick`",
    ),
    (
        "docs/benchmarks.md",
        "",
        "`cargo xtask bench` builds in release and runs for minutes; `cargo xtask ci` runs `bench --quick`",
    ),
    (
        "docs/chaos.md",
        "",
        "the chaos harness's long runs take minutes to hours; `cargo xtask ci` runs the same harness on fixed seeds",
    ),
];

/// Shell blocks this file runs, by document and heading.
const RUN_HERE: &[(&str, &str)] = &[
    ("README.md", "Two commands"),
    ("README.md", "Running several producers"),
    ("docs/operations.md", "7.1 "),
    ("docs/operations.md", "7.10"),
    ("docs/operations.md", "7.11"),
    ("docs/operations.md", "7.12"),
    ("docs/operations.md", "7.14.1"),
    ("docs/operations.md", "7.14.2"),
    ("docs/operations.md", "7.16.1"),
    ("docs/operations.md", "7.16.2"),
    ("docs/operations.md", "7.17.1"),
    ("docs/operations.md", "7.17.2"),
    ("docs/operations.md", "7.17.3"),
];

/// One fenced shell block and the heading above it.
#[derive(Debug, Clone)]
struct Recipe {
    document: &'static str,
    heading: String,
    text: String,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every shell block of README.md and docs/*.md.
fn all_recipes() -> Vec<Recipe> {
    let mut documents: Vec<&'static str> = vec!["README.md"];
    for entry in std::fs::read_dir(repository().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            documents.push(Box::leak(format!("docs/{name}").into_boxed_str()));
        }
    }
    let mut recipes = Vec::new();
    for document in documents {
        let text = std::fs::read_to_string(repository().join(document)).unwrap();
        let mut heading = String::new();
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                Some(body) if line.trim_start().starts_with("```") => {
                    recipes.push(Recipe {
                        document,
                        heading: heading.clone(),
                        text: std::mem::take(body),
                    });
                    block = None;
                }
                Some(body) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None if ["```sh", "```bash", "```shell", "```console"].contains(&line.trim()) => {
                    block = Some(String::new());
                }
                None if line.starts_with('#') => {
                    heading = line.trim_start_matches('#').trim().to_owned();
                }
                None => {}
            }
        }
    }
    recipes
}

/// The recipe of `document` under the heading starting with `heading`.
fn recipe(document: &str, heading: &str) -> String {
    let matching: Vec<Recipe> = all_recipes()
        .into_iter()
        .filter(|recipe| recipe.document == document && recipe.heading.starts_with(heading))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "{document} should hold one shell block under {heading:?}"
    );
    matching[0].text.clone()
}

/// A directory whose `cargo` runs the binary under test for `cargo run -p poa-node [-- ARGS]`.
fn cargo_shim(dir: &Path) -> PathBuf {
    let shim_dir = dir.join("shim");
    std::fs::create_dir_all(&shim_dir).unwrap();
    let shim = shim_dir.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n\
             # `cargo run -p poa-node [-- ARGS]`, as the recipes write it: the binary under test.\n\
             if [ \"$1\" = run ] && [ \"$2\" = -p ] && [ \"$3\" = poa-node ]; then\n\
             \x20 shift 3\n\
             \x20 [ \"$1\" = -- ] && shift\n\
             \x20 exec '{}' \"$@\"\n\
             fi\n\
             echo \"cargo shim: not a recipe command: $*\" >&2\n\
             exit 99\n",
            binary()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    shim_dir
}

/// A recipe running under `bash` in its own process group, killed (with every process it
/// started) on drop.
struct Shell {
    child: Child,
    output: PathBuf,
}

impl Shell {
    fn start(script: &str, dir: &Path) -> Self {
        Self::start_with_environment(script, dir, &[])
    }

    /// Like [`Shell::start`], with the variables a recipe reads set in its environment.
    fn start_with_environment(script: &str, dir: &Path, environment: &[(&str, &str)]) -> Self {
        let path = format!(
            "{}:{}",
            cargo_shim(dir).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = dir.join(format!("recipe-{}.log", std::process::id()));
        let log = std::fs::File::create(&output).unwrap();
        let child = Command::new("bash")
            .args(["-c", script])
            .current_dir(dir)
            .env("PATH", path)
            .env("RUST_LOG", "info")
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, output }
    }

    /// Waits for the shell itself to exit (its background processes may run on).
    fn wait(&mut self) -> i32 {
        let end = std::time::Instant::now() + HANG;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < end,
                "recipe did not finish: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.output)
            .and_then(|mut file| file.read_to_string(&mut text))
            .unwrap_or_default();
        text
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The recipe with the Redis ports it names (6379 to 6382) replaced by those of `servers`.
fn with_redis_ports(recipe: &str, servers: &[RedisServer]) -> String {
    let ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    with_ports(recipe, &ports)
}

/// The recipe with the Redis ports it names (6379 to 6382) replaced by `ports`.
fn with_ports(recipe: &str, ports: &[u16]) -> String {
    let mut text = recipe.to_owned();
    for (named, port) in [6379, 6380, 6381, 6382].iter().zip(ports) {
        text = text.replace(&format!(":{named}"), &format!(":{port}"));
    }
    text
}

/// HTTP status of `GET url`, `None` when nothing answers.
fn status_of(url: &str) -> Option<u16> {
    match ureq::get(url)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
    {
        Ok(response) => Some(response.status().as_u16()),
        Err(_) => None,
    }
}

#[test]
fn recipes__every_shell_block__is_run_here_or_named_with_the_reason() {
    for recipe in all_recipes() {
        let run = RUN_HERE.iter().any(|(document, heading)| {
            recipe.document == *document && recipe.heading.starts_with(heading)
        });
        let excused = NOT_RUN_HERE.iter().any(|(document, heading, _)| {
            recipe.document == *document && recipe.heading.starts_with(heading)
        });
        assert!(
            run ^ excused,
            "the shell block of {} under {:?} must be run by recipes.rs or named in NOT_RUN_HERE with the reason (exactly one):\n{}",
            recipe.document,
            recipe.heading,
            recipe.text
        );
    }
}

#[test]
fn recipes__when_run_as_written__then_start_what_they_say_and_answer() {
    single_node_then_curl();
    fleet_of_three();
    admin_recipes_of_the_runbook();
    anti_entropy_recipe_of_the_runbook();
    node_emptied::emptied_node_recipe_under_load();
    replacement_recipe_of_the_runbook();
    membership_change::membership_change_recipe_of_the_runbook();
    credential_rotation::password_rotation_recipes_of_the_runbook();
    credential_rotation::password_removal_recipe_when_a_producer_was_missed();
    credential_rotation::certificate_rotation_recipes_of_the_runbook();
}

/// README: `cargo run -p poa-node` (the first of the two commands; the second is CI itself),
/// then the curl recipe against it.
fn single_node_then_curl() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<Recipe> = all_recipes()
        .into_iter()
        .filter(|recipe| recipe.document == "README.md" && recipe.heading == "Two commands")
        .collect();
    assert_eq!(
        blocks.len(),
        2,
        "Two commands holds the commands, then the curls"
    );
    let start_node = blocks[0].text.lines().next().unwrap();
    assert!(start_node.starts_with("cargo run -p poa-node "));
    let _node = Shell::start(start_node, dir.path());
    assert!(
        eventually(HANG, || status_of("http://127.0.0.1:4000/health")
            == Some(200)),
        "the single node did not answer on 4000"
    );

    let mut shell = Shell::start(&blocks[1].text, dir.path());
    let code = shell.wait();
    let output = shell.output();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("\"height\""), "{output}");
    assert!(output.contains("\"is_leader\""), "{output}");
    assert!(dir.path().join("poa-data").is_dir());
}

/// README: three producers on three Redis nodes, named as each other's peers.
fn fleet_of_three() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let script = with_redis_ports(&recipe("README.md", "Running several producers"), &servers);
    let mut shell = Shell::start(&script, dir.path());
    shell.wait();

    let leaders = || {
        (1..=3)
            .map(|node| status_of(&format!("http://127.0.0.1:400{node}/leader")))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(HANG, || {
            let answers = leaders();
            answers.iter().all(Option::is_some)
                && answers
                    .iter()
                    .filter(|answer| **answer == Some(200))
                    .count()
                    == 1
        }),
        "expected three producers, exactly one leading: {:?}\n{}",
        leaders(),
        shell.output()
    );
    assert!(dir.path().join("authority.key").is_file());
}

/// docs/operations.md 7.10 and 7.11: the admin calls as written, against a producer whose
/// admin listener is where the recipe says.
fn admin_recipes_of_the_runbook() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let redis: Vec<String> = servers
        .iter()
        .flat_map(|server| ["--redis-url".to_owned(), server.url()])
        .collect();
    for (section, admin, expected) in [
        ("7.10", "127.0.0.1:4101", "\"removed\""),
        ("7.11", "127.0.0.1:4101", "\"vouched_for_height\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Command::new(binary());
        node.args(["--data-dir", "poa-data", "--http", "127.0.0.1:0"])
            .args(["--admin-http", admin])
            .args(&redis)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut node = KillOnDrop(node.spawn().unwrap());
        let health = format!("http://{admin}/admin/produce");
        assert!(
            eventually(HANG, || status_of(&health).is_some()),
            "the producer's admin listener did not come up on {admin}"
        );

        let mut shell = Shell::start(&recipe("docs/operations.md", section), dir.path());
        let code = shell.wait();
        let output = shell.output();
        assert_eq!(code, 0, "{section}: {output}");
        assert!(output.contains(expected), "{section}: {output}");
        node.0.kill().unwrap();
    }
}

/// docs/operations.md 7.1: the metrics an operator waits on after a node came back empty, read
/// as written from a leader on `--http 127.0.0.1:4000` once its first anti-entropy pass ended.
fn anti_entropy_recipe_of_the_runbook() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(binary());
    node.args(["--data-dir", "poa-data", "--http", "127.0.0.1:4000"])
        .args(["--block-time", "100ms"])
        .args(
            servers
                .iter()
                .flat_map(|server| ["--redis-url".to_owned(), server.url()]),
        )
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _node = KillOnDrop(node.spawn().unwrap());
    assert!(
        eventually(HANG, || status_of("http://127.0.0.1:4000/leader")
            == Some(200)),
        "the producer did not lead on 4000"
    );

    let run = || {
        let mut shell = Shell::start(&recipe("docs/operations.md", "7.1 "), dir.path());
        let code = shell.wait();
        (code, shell.output())
    };
    let passed = |output: &str| {
        output
            .lines()
            .filter_map(|line| line.strip_prefix("poa_anti_entropy_passes_total "))
            .any(|count| count.trim().parse::<f64>().is_ok_and(|count| count >= 1.0))
    };
    assert!(
        eventually(HANG, || passed(&run().1)),
        "no anti-entropy pass ended: {}",
        run().1
    );
    let (code, output) = run();
    assert_eq!(code, 0, "{output}");
    assert!(
        output
            .lines()
            .any(|line| line == "poa_heights_below_quorum 0"),
        "{output}"
    );
}

/// A producer on `servers` with its HTTP API on `http`, in its own data directory under `dir`.
fn producer_on(servers: &[&RedisServer], http: &str, dir: &Path) -> KillOnDrop {
    let data_dir = dir.join(http.replace([':', '.'], "-"));
    let mut node = Command::new(binary());
    node.arg("--data-dir")
        .arg(&data_dir)
        .args(["--http", http, "--admin-http", "127.0.0.1:0"])
        .args(["--block-time", "100ms"])
        .args(
            servers
                .iter()
                .flat_map(|server| ["--redis-url".to_owned(), server.url()]),
        )
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    KillOnDrop(node.spawn().unwrap())
}

/// `GET url`'s body, empty when nothing answers.
fn body_of(url: &str) -> String {
    ureq::get(url)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()
        .and_then(|mut response| response.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

/// The height of the latest block the process at `http` holds (0 when it answers nothing).
fn height_of(http: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(&body_of(&format!("http://{http}/blocks/latest")))
        .ok()
        .and_then(|block| block["height"].as_u64())
        .unwrap_or(0)
}

/// The id of the block at `height` the process at `http` holds, if it holds one.
fn id_at(http: &str, height: u64) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&body_of(&format!("http://{http}/blocks/{height}")))
        .ok()
        .and_then(|block| block["id"].as_str().map(str::to_owned))
}

/// docs/operations.md 7.12: the node on 6381 replaced by one on 6382, stop-the-world, as
/// written: the producers of the old list stopped (SIGTERM), `membership set` with the new list,
/// a producer of the new list leads, and one still on the old list is refused by the old node.
fn replacement_recipe_of_the_runbook() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let old_list = [&servers[0], &servers[1], &servers[2]];
    let new_list = [&servers[0], &servers[1], &servers[3]];
    let mut old = producer_on(&old_list, "127.0.0.1:4001", dir.path());
    assert!(
        eventually(HANG, || status_of("http://127.0.0.1:4001/leader")
            == Some(200)),
        "the producer of the old list did not lead"
    );
    let pid = Pid::from_raw(i32::try_from(old.0.id()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    old.0.wait().unwrap();

    let script = with_redis_ports(&recipe("docs/operations.md", "7.12"), &servers);
    let mut shell = Shell::start(&script, dir.path());
    let code = shell.wait();
    let output = shell.output();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("generation 2"), "{output}");

    let _new = producer_on(&new_list, "127.0.0.1:4002", dir.path());
    assert!(
        eventually(HANG, || status_of("http://127.0.0.1:4002/leader")
            == Some(200)),
        "the producer of the new list did not lead: {}",
        body_of("http://127.0.0.1:4002/status")
    );
    let _stale = producer_on(&old_list, "127.0.0.1:4003", dir.path());
    assert!(
        eventually(HANG, || body_of("http://127.0.0.1:4003/status")
            .contains("MEMBERSHIP")),
        "the old node did not refuse the old list: {}",
        body_of("http://127.0.0.1:4003/status")
    );
}

/// A process killed when the test ends, even on a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

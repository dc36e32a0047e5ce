//! Starts fixture processes (and, for the tooling binaries, any child process) so that they
//! cannot outlive the process that started them.
//!
//! `Drop` kills a fixture's process on success and on unwind, but not when the test process is
//! itself killed (a nextest timeout) or exits without running destructors (a fixture kept in a
//! `static`). For those, processes are started under `setpriv --pdeathsig KILL`, which asks the
//! kernel to SIGKILL the child when its parent *thread* dies. That is why every spawn happens on
//! one dedicated thread that lives as long as the process: spawning from a test or tokio worker
//! thread would kill the server when that thread ends. Without `setpriv` processes are spawned
//! directly, and only `Drop` protects against orphans.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// A command running `program` that the kernel kills when this process dies, if the platform
/// allows it (see the module docs); add arguments and stdio, then [`spawn`] it.
pub fn command_tied_to_process(program: &Path) -> Command {
    match setpriv() {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Spawns `command` on the spawner thread, so its parent thread lives as long as the process.
///
/// # Errors
///
/// The spawn's own error, or an error when the spawner thread is gone.
pub fn spawn(command: Command) -> io::Result<Child> {
    let gone = || io::Error::other("the fixture spawner thread is gone");
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner().send((command, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

/// Finds an executable on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = find_on_path("setpriv")?;
            let help = Command::new(&path).arg("--help").output().ok()?;
            String::from_utf8_lossy(&help.stdout)
                .contains("--pdeathsig")
                .then_some(path)
        })
        .as_deref()
}

fn spawner() -> &'static Sender<SpawnRequest> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (request_tx, request_rx) = mpsc::channel::<SpawnRequest>();
        // Deliberately never joined: this thread must outlive every fixture (see module docs).
        let spawned = thread::Builder::new()
            .name("poa-test-support-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in request_rx {
                    if let Err(mpsc::SendError(Ok(mut orphan))) = reply.send(command.spawn()) {
                        // Nobody waits for this child any more: do not leave it running.
                        let _ = orphan.kill();
                        let _ = orphan.wait();
                    }
                }
            });
        if let Err(err) = spawned {
            panic!("cannot start the fixture spawner thread: {err}");
        }
        request_tx
    })
}

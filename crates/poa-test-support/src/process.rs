//! [`ChildProcess`]: one program that a harness runs, stops and starts again (a `poa-node` of
//! the benchmark fleets or of the chaos cluster), with the chores every such harness needs done
//! once: tied to this process ([`crate::spawner`]), stdout and stderr appended through pipes to
//! one log file across every start, readiness polled with a bound that names what the log says
//! when the process exits or never answers, signals (SIGTERM, SIGSTOP, SIGCONT), reaping, and
//! SIGKILL on drop.
//!
//! It knows nothing of what the program is: readiness is the caller's probe (an HTTP request,
//! say), and the command line belongs to the caller. It blocks the calling thread while it
//! waits; every wait is bounded.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::ProcessError;
use crate::spawner::{command_tied_to_process, spawn};
use crate::wait::POLL_INTERVAL;

/// Lines of the log quoted in an error about a start.
const LOG_TAIL_LINES: usize = 12;
/// How often a wait for an exit looks again.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A program run as a child of this process, restartable with the same (or a new) command
/// line; see the module docs. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    environment: Vec<(OsString, OsString)>,
    log: PathBuf,
    child: Option<Child>,
    frozen: bool,
    starts: u32,
    /// The threads copying the running process's stdout and stderr into the log.
    relays: Vec<JoinHandle<()>>,
}

impl ChildProcess {
    /// A process, not started yet, called `name` in errors, that runs `program` with its
    /// output appended to `log`.
    pub fn new(name: impl Into<String>, program: &Path, log: &Path) -> Self {
        Self {
            name: name.into(),
            program: program.to_owned(),
            args: Vec::new(),
            environment: Vec::new(),
            log: log.to_owned(),
            child: None,
            frozen: false,
            starts: 0,
            relays: Vec::new(),
        }
    }

    /// Sets the arguments of every later start.
    #[must_use]
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.set_args(args);
        self
    }

    /// Adds an environment variable to every later start (besides this process's own).
    #[must_use]
    pub fn with_env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.environment.push((name.into(), value.into()));
        self
    }

    /// Replaces the arguments of the next start (a running process keeps its own).
    pub fn set_args<I, S>(&mut self, args: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
    }

    /// The name it goes by in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the program, killing the running process first if there is one; returns at
    /// once (see [`Self::wait_until_ready`]).
    ///
    /// # Errors
    ///
    /// [`ProcessError::Log`] when the log cannot be opened, [`ProcessError::Spawn`] when the
    /// program cannot be started.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        self.kill();
        let log_error = |source| ProcessError::Log {
            path: self.log.clone(),
            source,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(log_error)?;
        let second = log.try_clone().map_err(log_error)?;
        let mut command = command_tied_to_process(&self.program);
        // Through pipes, as under a supervisor's journal: a process whose file size limit is
        // lowered fails to write its own files, not its log.
        command
            .args(&self.args)
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(command).map_err(|source| ProcessError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        if let Some(stdout) = child.stdout.take() {
            self.relays.push(relay(stdout, log));
        }
        if let Some(stderr) = child.stderr.take() {
            self.relays.push(relay(stderr, second));
        }
        self.child = Some(child);
        self.frozen = false;
        self.starts += 1;
        Ok(())
    }

    /// Polls `ready` until it holds, then returns; on the way watches the process.
    ///
    /// # Errors
    ///
    /// [`ProcessError::ExitedAtStart`] when the process exits first (it is reaped),
    /// [`ProcessError::NotReady`] when `deadline` passes first (it is killed), and
    /// [`ProcessError::NotRunning`] when it was not started; the first two quote its log.
    pub fn wait_until_ready(
        &mut self,
        deadline: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        loop {
            if !self.is_running() {
                return Err(ProcessError::NotRunning {
                    name: self.name.clone(),
                });
            }
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.try_reap() {
                return Err(ProcessError::ExitedAtStart {
                    name: self.name.clone(),
                    status,
                    log: self.log.clone(),
                    tail: self.log_tail(LOG_TAIL_LINES).join("\n"),
                });
            }
            if started.elapsed() >= deadline {
                self.kill();
                return Err(ProcessError::NotReady {
                    name: self.name.clone(),
                    waited: deadline,
                    log: self.log.clone(),
                    tail: self.log_tail(LOG_TAIL_LINES).join("\n"),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether a process was started and has not been killed or reaped since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the running process is stopped by [`Self::freeze`].
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times the program was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Sends `signal` to the running process.
    ///
    /// # Errors
    ///
    /// [`ProcessError::NotRunning`] when there is none, [`ProcessError::Signal`] when the
    /// signal cannot be sent.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        let not_running = || ProcessError::NotRunning {
            name: self.name.clone(),
        };
        let pid = self.pid().ok_or_else(not_running)?;
        let pid = i32::try_from(pid).map_err(|_| not_running())?;
        kill(Pid::from_raw(pid), signal).map_err(|errno| ProcessError::Signal {
            name: self.name.clone(),
            signal,
            errno,
        })
    }

    /// SIGTERM; returns at once ([`Self::try_reap`] or [`Self::wait_for_exit`] see it go).
    ///
    /// # Errors
    ///
    /// As [`Self::signal`].
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGTERM)
    }

    /// SIGSTOP: the process keeps its sockets but runs nothing.
    ///
    /// # Errors
    ///
    /// As [`Self::signal`].
    pub fn freeze(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGSTOP)?;
        self.frozen = true;
        Ok(())
    }

    /// SIGCONT after [`Self::freeze`].
    ///
    /// # Errors
    ///
    /// As [`Self::signal`].
    pub fn thaw(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGCONT)?;
        self.frozen = false;
        Ok(())
    }

    /// SIGKILL, as a crash would (also of a frozen process), and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
        self.join_relays();
    }

    /// The exit status if the process has exited on its own (it is then reaped and no longer
    /// running); `None` while it runs or when it was not started.
    pub fn try_reap(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.frozen = false;
        self.join_relays();
        Some(status)
    }

    /// Waits up to `deadline` for the process to exit, then kills it; `None` when it had to be
    /// killed (or was not running).
    pub fn wait_for_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while self.is_running() && started.elapsed() < deadline {
            if let Some(status) = self.try_reap() {
                return Some(status);
            }
            thread::sleep(EXIT_POLL);
        }
        self.kill();
        None
    }

    /// Stops the process as an operator's restart does: continues it if frozen, sends SIGTERM
    /// and waits up to `grace` for it to exit, then kills it. The exit status when it exited
    /// by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.frozen {
            let _ = self.thaw();
        }
        match self.terminate() {
            Ok(()) => self.wait_for_exit(grace),
            Err(_) => {
                self.kill();
                None
            }
        }
    }

    /// The whole log (every start's), empty when it cannot be read.
    pub fn log_text(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| (*line).to_owned())
            .collect()
    }

    /// Waits for the relay threads of a gone process: they end once it closed its pipes.
    fn join_relays(&mut self) {
        for relay in self.relays.drain(..) {
            let _ = relay.join();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies what the process writes to `source` into `log` until the process closes it.
fn relay(mut source: impl Read + Send + 'static, mut log: File) -> JoinHandle<()> {
    thread::spawn(move || {
        let _ = io::copy(&mut source, &mut log);
    })
}

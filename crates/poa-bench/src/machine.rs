//! What the numbers were taken on: CPU, cores, memory, kernel, redis-server and rustc versions,
//! read from `/proc` and the tools themselves. Owns no measuring; a value it cannot read is
//! reported as `unknown`, never guessed.

use std::process::Command;

/// The machine and software of one run.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) redis: String,
    pub(crate) rustc: String,
}

impl Machine {
    /// Reads the current machine.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |name| name.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
            );
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory,
            kernel: first_line("uname", &["-sr"]),
            redis: first_line("redis-server", &["--version"]),
            rustc: first_line("rustc", &["--version"]),
        }
    }
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

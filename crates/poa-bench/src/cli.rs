//! The command line of `poa-bench`. Owns flag parsing and the choice of where the report goes;
//! it starts nothing.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cases::CASES;

/// Measures the quorum publish, the lease, end-to-end production, failover, scale and the
/// transaction relay against
/// the physical limit of the same machine and servers, and writes `benchmarks.md` with SVG
/// charts.
#[derive(Debug, Clone, Parser)]
#[command(name = "poa-bench")]
pub(crate) struct Cli {
    /// A few seconds of each case, so the harness cannot rot (CI); the numbers are not for
    /// publishing.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Run only this case (repeatable): limit, publish, degraded, naive, lease, end-to-end,
    /// failover, scale, relay, soak.
    #[arg(long = "case", value_name = "NAME", value_parser = case_name)]
    pub(crate) cases: Vec<&'static str>,
    /// Run the publish cases (limit, publish, naive) against these servers instead of local
    /// redis-servers (repeatable). Cases that must start, freeze or kill servers still use
    /// local ones.
    #[arg(long = "redis-url", value_name = "URL")]
    pub(crate) redis_urls: Vec<String>,
    /// Print one JSON object per result line on stdout (progress goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Directory for `benchmarks.md` and its charts [default: `docs` for a full run of every
    /// case on local servers, `target/bench` otherwise].
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// The `poa-node` binary for the failover and memory cases [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    pub(crate) node_binary: Option<PathBuf>,
    /// How long the soak runs, e.g. `60m` [default: 60m, 20s with --quick].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) soak_duration: Option<Duration>,
    /// A peer bench binary built from fuel-core 0.48.3's adapter (it prints one JSON line of
    /// its publish or cycle latencies against the URLs it is given): the publish case runs it
    /// against its own servers, alternating with this adapter, and reports both side by side.
    #[arg(long, value_name = "PATH", value_parser = peer_bench_binary)]
    pub(crate) peer_bench: Option<PathBuf>,
}

impl Cli {
    /// The cases to run, in report order.
    pub(crate) fn selected(&self) -> Vec<&'static str> {
        CASES
            .iter()
            .map(|case| case.name)
            .filter(|name| self.cases.is_empty() || self.cases.contains(name))
            .collect()
    }

    /// Where the report goes: `docs` only for the full, complete, local run that the
    /// published numbers come from, so a quick or partial run never overwrites them.
    pub(crate) fn out_dir(&self) -> PathBuf {
        if let Some(out) = &self.out {
            return out.clone();
        }
        if self.quick || !self.cases.is_empty() || !self.redis_urls.is_empty() {
            PathBuf::from("target").join("bench")
        } else {
            PathBuf::from("docs")
        }
    }

    /// The command line that reproduces this run, for the report.
    pub(crate) fn command_line(&self) -> String {
        let mut command = String::from("cargo xtask bench");
        if self.quick {
            command.push_str(" --quick");
        }
        for case in &self.cases {
            command.push_str(" --case ");
            command.push_str(case);
        }
        if let Some(duration) = self.soak_duration {
            command.push_str(" --soak-duration ");
            command.push_str(&humantime::format_duration(duration).to_string());
        }
        if self.peer_bench.is_some() {
            // The binary lives outside the repository: the report names the flag, not the path.
            command.push_str(" --peer-bench PEER_BENCH");
        }
        for url in &self.redis_urls {
            command.push_str(" --redis-url ");
            command.push_str(url);
        }
        command
    }
}

fn case_name(name: &str) -> Result<&'static str, String> {
    CASES
        .iter()
        .find(|case| case.name == name)
        .map(|case| case.name)
        .ok_or_else(|| {
            let names: Vec<&str> = CASES.iter().map(|case| case.name).collect();
            format!("unknown case `{name}`: use one of {}", names.join(", "))
        })
}

fn peer_bench_binary(path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no peer bench binary at `{}`: build it first (release) and pass its path",
            path.display()
        ))
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn parse__when_case_unknown__then_error_lists_the_cases() {
        // given / when
        let error = Cli::try_parse_from(["poa-bench", "--case", "nope"]).unwrap_err();

        // then
        let message = error.to_string();
        assert!(message.contains("unknown case `nope`"), "{message}");
        assert!(message.contains("failover"), "{message}");
    }

    #[test]
    fn parse__when_peer_bench_missing__then_error_names_the_flag_and_the_path() {
        // given / when
        let error =
            Cli::try_parse_from(["poa-bench", "--peer-bench", "/nonexistent/peer"]).unwrap_err();

        // then
        let message = error.to_string();
        assert!(message.contains("--peer-bench"), "{message}");
        assert!(
            message.contains("no peer bench binary at `/nonexistent/peer`"),
            "{message}"
        );
    }

    #[test]
    fn command_line__when_peer_bench_given__then_names_the_flag_not_the_path() {
        // given: any existing file stands for the binary
        let binary = std::env::current_exe().unwrap();
        let cli = Cli::try_parse_from([
            "poa-bench".as_ref(),
            "--case".as_ref(),
            "publish".as_ref(),
            "--peer-bench".as_ref(),
            binary.as_os_str(),
        ])
        .unwrap();

        // when
        let command = cli.command_line();

        // then
        assert_eq!(cli.peer_bench.as_deref(), Some(binary.as_path()));
        assert_eq!(
            command,
            "cargo xtask bench --case publish --peer-bench PEER_BENCH"
        );
    }

    #[test]
    fn out_dir__when_partial_or_quick__then_not_docs() {
        // given
        let full = Cli::try_parse_from(["poa-bench"]).unwrap();
        let quick = Cli::try_parse_from(["poa-bench", "--quick"]).unwrap();
        let one = Cli::try_parse_from(["poa-bench", "--case", "lease"]).unwrap();

        // when / then
        assert_eq!(full.out_dir(), PathBuf::from("docs"));
        assert_eq!(quick.out_dir(), PathBuf::from("target/bench"));
        assert_eq!(one.out_dir(), PathBuf::from("target/bench"));
        assert_eq!(one.selected(), vec!["lease"]);
    }
}

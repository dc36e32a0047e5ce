//! Structured logging: `RUST_LOG` filters (default `info`), `--log-format` picks text or JSON.
//! A panic is logged as one error event too, instead of the default text on stderr: the chain
//! store catches the storage library's panics and reports them as typed errors, and an operator
//! should read that error, not a backtrace that looks like a crash.
//!
//! A log line that cannot be written (standard output redirected to a file on a full disk, a
//! closed pipe) is dropped: the process never stops because its log cannot be written.

use std::io::Write;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. Call once, before anything logs.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| LossyStdout);
    // A second initialisation (only possible in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    std::panic::set_hook(Box::new(|panic| {
        let location = panic
            .location()
            .map(|location| format!("{}:{}", location.file(), location.line()));
        let message = panic
            .payload()
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| panic.payload().downcast_ref::<String>().cloned());
        // `RUST_BACKTRACE=1` still gets the backtrace, inside the event.
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(
            panic = message.as_deref().unwrap_or("unknown"),
            location = location.as_deref().unwrap_or("unknown"),
            backtrace = %backtrace,
            "thread panicked"
        );
    }));
}

/// Standard output for log lines, dropping a line it cannot write instead of reporting the
/// failure: the subscriber reports a failed write on standard error, which fails too when both
/// share the full disk, and a failing report ends in a panic inside the panic hook (an abort).
struct LossyStdout;

impl Write for LossyStdout {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // Dropped on purpose: there is nowhere left to say that the log cannot be written.
        let _ = std::io::stdout().lock().write_all(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stdout().lock().flush();
        Ok(())
    }
}

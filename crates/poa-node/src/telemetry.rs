//! Structured logging: `RUST_LOG` filters (default `info`), `--log-format` picks text or JSON.
//! A panic is logged as one error event too, instead of the default text on stderr: the chain
//! store catches the storage library's panics and reports them as typed errors, and an operator
//! should read that error, not a backtrace that looks like a crash.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. Call once, before anything logs.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
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

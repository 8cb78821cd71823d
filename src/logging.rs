//! Setting up the log output of a command.
//!
//! Every command of the binary, `enlace demo` and `enlace bench` start the
//! same `tracing` subscriber: `RUST_LOG` if set, else a default level, on
//! standard error, as text or JSON ([`LogFormat`], `[log] format` in the
//! configuration). It sits below the command tree and the bench, which
//! both call it, so neither has to import the other for it.

use crate::config::LogFormat;

/// Sets up logging: `RUST_LOG` if set, else `default`.
pub fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: not in files, pipes or
    // journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

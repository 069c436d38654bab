//! Logs: text or JSON lines on stderr, at the level the command line asks for.
//! Fields name secrets, paths and files; values never reach a log line.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogFormat;

/// Installs the global log subscriber.
pub fn init(format: LogFormat, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::from_level(level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(level >= tracing::Level::DEBUG);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

pub mod health;
pub mod metrics;

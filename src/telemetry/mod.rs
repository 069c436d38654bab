//! Logs: text or JSON lines on stderr, at the level the command line asks for.
//! Fields name secrets, paths and files; values never reach a log line. Text
//! that came from outside (pod annotations, backend errors) can hold newlines
//! or terminal escapes: text logs write every control character escaped, so
//! one event stays one line and cannot forge another (JSON escapes them itself).

use std::borrow::Cow;
use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Installs the global log subscriber.
pub fn init(format: LogFormat, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::from_level(level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(level >= tracing::Level::DEBUG);
    let filter = filter(level);
    match format {
        LogFormat::Text => builder
            .fmt_fields(text_fields())
            .finish()
            .with(filter)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .init(),
    }
}

/// Libraries whose INFO lines are about themselves (the AWS SDK logs the
/// credential providers it loads, with the access key id): they show from
/// `--log-level debug` on, and only their warnings and errors below it.
const CHATTY: [&str; 4] = [
    "aws_config",
    "aws_runtime",
    "aws_smithy_runtime",
    "aws_sdk_",
];

/// `level` for ramsecrets' own lines, and for [`CHATTY`] libraries too from DEBUG on.
fn filter(level: tracing::Level) -> Targets {
    let ours = LevelFilter::from_level(level);
    let theirs = if level >= tracing::Level::DEBUG {
        ours
    } else {
        ours.min(LevelFilter::WARN)
    };
    CHATTY
        .iter()
        .fold(Targets::new().with_default(ours), |t, target| {
            t.with_target(*target, theirs)
        })
}

/// The fields of a text log line: the message bare, the others as
/// `name=value`, control characters escaped in both.
fn text_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            match field.name() {
                "message" => write!(w, "{}", escape_controls(&text)),
                name => write!(w, "{name}={}", escape_controls(&text)),
            }
        },
    )
    .delimited(" ")
}

/// `text` with each control character (newline, escape, …) written as its
/// Rust escape (`\n`, `\u{1b}`).
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub mod admission;
pub mod health;
pub mod metrics;
pub mod registry;
pub mod series;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_aws_sdks_info_lines_show_from_debug_on() {
        use tracing::Level;
        let info = filter(Level::INFO);
        for target in [
            "aws_config::profile::credentials",
            "aws_sdk_secretsmanager::config",
            "aws_smithy_runtime::client::orchestrator",
        ] {
            assert!(!info.would_enable(target, &Level::INFO), "{target}");
            assert!(info.would_enable(target, &Level::WARN), "{target}");
            assert!(
                filter(Level::DEBUG).would_enable(target, &Level::INFO),
                "{target}"
            );
        }
        assert!(info.would_enable("ramsecrets::engine", &Level::INFO));
        assert!(!filter(Level::ERROR).would_enable("aws_config", &Level::WARN));
    }

    /// What a text log line says for one event with outside text in it.
    #[test]
    fn outside_text_cannot_forge_a_line_or_colour_the_terminal() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .fmt_fields(text_fields())
            .finish();
        let forged = "denied\n2026-01-01T00:00:00Z ERROR forged \x1b[31mred";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(error = %forged, pod = forged, "cannot read {forged}");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains(r"cannot read denied\n2026") && text.contains(r"error=denied\n"),
            "{text}"
        );
        assert!(text.contains(r"\u{1b}[31mred"), "{text}");
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

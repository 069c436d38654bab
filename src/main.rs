//! The `ramsecrets` binary: parse the command line, set up logging, hand the
//! command to the module that owns it, and map its error to a sysexits code.

use std::process::ExitCode as ProcessExit;

use clap::Parser;
use ramsecrets::cli::{Cli, LogFormat};
use ramsecrets::exit::Exit;
use ramsecrets::{cmd, telemetry};

fn main() -> ProcessExit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ProcessExit::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            });
        }
    };
    telemetry::init(cli.log_format, cli.log_level);
    match cmd::run(cli.command, cli.log_format) {
        Ok(code) => ProcessExit::from(code),
        Err(f) => {
            let code = f.exit.code();
            let message = describe(&f.error);
            match cli.log_format {
                LogFormat::Text => {
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "ramsecrets: error: {message}");
                }
                LogFormat::Json => tracing::error!(exit_code = code, "{message}"),
            }
            ProcessExit::from(code)
        }
    }
}

/// The error and its causes, each said once: module errors already name
/// their cause in their message, so a cause whose text is there is left out.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

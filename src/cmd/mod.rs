//! The commands: each starts in its own module ([`init`], [`sidecar`] for
//! `run`, `exec` and `proxy`, [`check`] with its [`online`] part), and here
//! the dispatch of a parsed command line to the module that owns it (the
//! async runtime each runs on, and its standard output, are `os::process`).

pub mod check;
pub mod init;
pub mod online;
pub mod sidecar;

use crate::cli::{Command, LogFormat, ProxyArgs};
use crate::exit::{Exit, Failure};
use crate::os::process::print;
use crate::{config, drill, inject, proxy};

/// Runs `command` in the module that owns it; returns the exit code.
pub fn run(command: Command, log_format: LogFormat) -> Result<u8, Failure> {
    crate::tls::install();
    match command {
        Command::Schema => {
            print(&format!("{:#}\n", config::schema()))?;
            Ok(Exit::Ok.code())
        }
        Command::Check(args) => check::command(&args),
        Command::Init(args) => init::command(&args),
        Command::Run(args) => sidecar::command(args, None, false, log_format),
        Command::Exec(args) => sidecar::command(args.run, Some(args.command), false, log_format),
        Command::Proxy(ProxyArgs {
            run,
            print_env: true,
        }) => proxy::command::print_env(&run.config.config),
        Command::Proxy(args) => sidecar::command(args.run, None, true, log_format),
        Command::Inject(args) => inject::server::command(&args.config),
        Command::Drill(args) => drill::command(&args),
    }
}

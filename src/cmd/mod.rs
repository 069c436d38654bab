//! The commands: each starts in its own module ([`init`], [`sidecar`] for
//! `run`, `exec` and `proxy`, [`check`] with its [`online`] part), and what
//! they share once `main` has dispatched one is here: the async runtime it
//! runs on, and its standard output.

pub mod check;
pub mod init;
pub mod online;
pub mod sidecar;

use crate::cli::{Command, LogFormat, ProxyArgs};
use crate::exit::{Exit, Failure};
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

/// A single-threaded runtime: the work is I/O-bound, one thread keeps memory
/// low, and on a small node it leaves the other cores to the app (the proxy
/// measured faster this way beside its client on 2 cores).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    started(tokio::runtime::Builder::new_current_thread())
}

/// The runtime of `ramsecrets inject`: a worker per core the process may use
/// (its cgroup's CPU quota counts), so that admission reviews are answered on
/// all of them; every other command runs on [`runtime`].
pub fn runtime_on_every_core() -> Result<tokio::runtime::Runtime, Failure> {
    started(tokio::runtime::Builder::new_multi_thread())
}

fn started(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Failure> {
    builder.enable_all().build().map_err(|e| Failure {
        exit: Exit::OsErr,
        error: anyhow::Error::new(e).context("cannot start the async runtime"),
    })
}

/// Writes `text` to stdout. A reader that went away (`| head -1`) is no
/// error: the rest is dropped quietly.
pub fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure {
            exit: Exit::OsErr,
            error: anyhow::Error::new(e).context("cannot write to stdout"),
        }),
        _ => Ok(()),
    }
}

//! What every command's process has: the async runtime it runs on (one
//! thread, or a worker per core for the injector) and its standard output.

use crate::exit::{Exit, Failure};

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

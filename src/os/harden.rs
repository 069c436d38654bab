//! Process hardening at start: not dumpable (no core files, no ptrace by
//! same-uid processes), core size 0, and all memory locked when `mlock: true`.

use rustix::process::{Resource, Rlimit};

use crate::exit::{Exit, ExitCode};

/// Memory could not be locked.
#[derive(Debug, thiserror::Error)]
#[error(
    "mlock: true, but memory cannot be locked: {0} (needs CAP_IPC_LOCK or a higher RLIMIT_MEMLOCK)"
)]
pub struct Error(#[source] std::io::Error);

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        Exit::OsErr
    }
}

/// Hardens the process; only a failed `mlock` is an error, the rest is logged.
pub fn harden(mlock: bool) -> Result<(), Error> {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "cannot mark the process non-dumpable");
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(Resource::Core, zero) {
        tracing::warn!(error = %e, "cannot set the core size limit to 0");
    }
    if mlock {
        use rustix::mm::MlockAllFlags;
        rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE)
            .map_err(|e| Error(e.into()))?;
        tracing::debug!("memory locked");
    }
    Ok(())
}

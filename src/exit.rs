//! Process exit codes, from BSD `sysexits.h` (and a shell's 126 and 127 for a
//! command `exec` cannot run), the trait every module error implements to
//! say which one it means, and [`Failure`], an error on its way out to `main`.

/// The exit codes ramsecrets uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Bad command-line usage (EX_USAGE).
    Usage = 64,
    /// Bad data: a missing secret, path or field (EX_DATAERR).
    Data = 65,
    /// The backend is unreachable or failing (EX_UNAVAILABLE).
    Unavailable = 69,
    /// An internal error (EX_SOFTWARE).
    Software = 70,
    /// An operating-system call failed (EX_OSERR).
    OsErr = 71,
    /// The output cannot be created (EX_CANTCREAT).
    CantCreate = 73,
    /// The backend denied permission (EX_NOPERM).
    NoPerm = 77,
    /// Bad configuration (EX_CONFIG).
    Config = 78,
    /// `exec`: the command exists but cannot be executed (as a shell says).
    CannotExecute = 126,
    /// `exec`: the command does not exist (as a shell says).
    CommandNotFound = 127,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that knows which exit code it stands for.
pub trait ExitCode {
    /// The sysexits code for this error.
    fn exit(&self) -> Exit;
}

/// An error on its way out: the message and the exit code it stands for.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// The error, with its causes.
    pub error: anyhow::Error,
}

impl<E: ExitCode + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            exit: e.exit(),
            error: e.into(),
        }
    }
}

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
    /// Every code, in order: the book's exit-code reference is generated from this
    /// and [`Exit::meaning`] (`tests/reference.rs`).
    pub const ALL: [Exit; 11] = [
        Exit::Ok,
        Exit::Usage,
        Exit::Data,
        Exit::Unavailable,
        Exit::Software,
        Exit::OsErr,
        Exit::CantCreate,
        Exit::NoPerm,
        Exit::Config,
        Exit::CannotExecute,
        Exit::CommandNotFound,
    ];

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code tells a user, with the usual causes.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "Every file was written (`init`), or a clean shutdown (`run`); `exec` exits with its child's code. Output piped into a reader that stops early (`ramsecrets schema | head -1`) also ends with 0, quietly.",
            Exit::Usage => "Bad command-line usage.",
            Exit::Data => "Bad data: a missing path, KV version or field, a binary value in a text format, a template error, or a request the backend rejected as malformed (HTTP 400).",
            Exit::Unavailable => "Backend unavailable: connection failure, 429, 5xx, or no answer before `--timeout`.",
            Exit::Software => "Internal error (a bug).",
            Exit::OsErr => "Operating-system error: `mlock` failed, the health address cannot be bound, the files cannot be watched.",
            Exit::CantCreate => "Cannot write the output: the directory is missing or not in memory, or a write failed (for example ENOSPC).",
            Exit::NoPerm => "Permission denied: HTTP 401/403, or a rejected login (bad role, secret id or JWT).",
            Exit::Config => "Bad configuration: an invalid config file, or a token, credential or CA file that is missing or bad.",
            Exit::CannotExecute => "`exec`: the command cannot be executed.",
            Exit::CommandNotFound => "`exec`: the command does not exist.",
        }
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

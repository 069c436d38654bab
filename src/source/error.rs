//! Why a backend call failed: its [`Kind`] (what retries, the gate and the
//! exit code go by), what was asked, and the cause kept as a typed error
//! ([`Cause`]), never a copy of an answer's body. [`Error::from_status`] is
//! the one mapping from an HTTP status to a kind, shared by every backend
//! that speaks HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Signal;
use crate::exit::{Exit, ExitCode};

/// What kind of failure, whatever the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The backend refused the credentials or the path.
    Denied,
    /// The path or secret does not exist.
    NotFound,
    /// The backend could not be reached or failed (retryable).
    Unavailable,
    /// The backend asked to slow down (retryable, not before its `Retry-After`).
    Throttled,
    /// The backend answered with something unusable.
    Data,
    /// Local setup is wrong: a token file, a CA file.
    Config,
}

impl Kind {
    /// The kind an HTTP error status stands for: 401 and 403 are denied, 404
    /// not found, a 429 (or a 503 with `Retry-After`) asks to slow down, other
    /// 5xx are unavailable, and anything else is an answer we cannot use.
    pub fn of_status(status: u16, retry_after: bool) -> Kind {
        match status {
            401 | 403 => Kind::Denied,
            404 => Kind::NotFound,
            429 => Kind::Throttled,
            503 if retry_after => Kind::Throttled,
            500..=599 => Kind::Unavailable,
            _ => Kind::Data,
        }
    }
}

/// Why a backend call failed. Messages name paths, ids and files, never values.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The backend refused the credentials or the path.
    #[error("permission denied: {what}{}", tail(.cause))]
    Denied {
        /// What was asked, and why it failed, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The path or secret does not exist.
    #[error("not found: {what}{}", tail(.cause))]
    NotFound {
        /// What was asked, and why it failed, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The backend could not be reached or failed (retryable).
    #[error("backend unavailable: {what}{}", tail(.cause))]
    Unavailable {
        /// What was asked, and why it failed, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The backend asked to slow down: a 429, or a 503 with `Retry-After`
    /// (retryable, not before `retry_after`).
    #[error("backend asked to slow down: {what}{}", tail(.cause))]
    Throttled {
        /// What was asked, and why it failed, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The backend answered with something unusable.
    #[error("bad data: {what}{}", tail(.cause))]
    Data {
        /// What was asked, and why it failed, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// Local setup is wrong: a token file, a CA file.
    #[error("{what}{}", tail(.cause))]
    Config {
        /// What is wrong, in words.
        what: String,
        /// The underlying error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
}

/// The error underneath an [`Error`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum Cause {
    /// The backend answered an error status, with the messages it gave for
    /// it (Vault's `errors` list); never the body itself.
    #[error("HTTP {status}{}", list(.errors))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The backend's error messages.
        errors: Vec<String>,
    },
    /// The service's error code and message (AWS).
    #[error("{code}{}", tail_str(.message))]
    Service {
        /// The error code, as `ResourceNotFoundException`.
        code: String,
        /// The service's message, if any.
        message: String,
    },
    /// A local file could not be read.
    #[error(transparent)]
    Io(Arc<std::io::Error>),
    /// A call that failed on its way (connection, TLS, timeout, the HTTP
    /// client, the AWS SDK or credential chain), said with its causes.
    #[error("{}", chain(.0.as_ref()))]
    Call(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl Cause {
    /// A failed call's error, kept with its causes.
    pub fn call(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause::Call(Arc::new(e))
    }
}

impl From<std::io::Error> for Cause {
    fn from(e: std::io::Error) -> Cause {
        Cause::Io(Arc::new(e))
    }
}

/// `: cause`, or nothing.
fn tail(cause: &Option<Cause>) -> String {
    cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
}

fn tail_str(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn list(errors: &[String]) -> String {
    tail_str(&errors.join("; "))
}

/// An error and its causes on one line (reqwest's and the SDK's top lines
/// are vague on their own).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

impl Error {
    /// An error of `kind` about `what`, without a cause yet.
    pub fn new(kind: Kind, what: impl Into<String>) -> Error {
        Error::from_parts(kind, what.into(), None, None)
    }

    /// Permission denied.
    pub fn denied(what: impl Into<String>) -> Error {
        Error::new(Kind::Denied, what)
    }

    /// Not found.
    pub fn not_found(what: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, what)
    }

    /// The backend is unreachable or failing.
    pub fn unavailable(what: impl Into<String>) -> Error {
        Error::new(Kind::Unavailable, what)
    }

    /// The backend asked to slow down, for `retry_after` if it said.
    pub fn throttled(what: impl Into<String>, retry_after: Option<Duration>) -> Error {
        Error::from_parts(Kind::Throttled, what.into(), None, retry_after)
    }

    /// An answer that cannot be used.
    pub fn data(what: impl Into<String>) -> Error {
        Error::new(Kind::Data, what)
    }

    /// Wrong local setup.
    pub fn config(what: impl Into<String>) -> Error {
        Error::new(Kind::Config, what)
    }

    /// The error an HTTP error `status` stands for (see [`Kind::of_status`]),
    /// with the backend's messages for it.
    pub fn from_status(
        status: u16,
        errors: Vec<String>,
        what: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Error {
        let kind = Kind::of_status(status, retry_after.is_some());
        let cause = Cause::Status { status, errors };
        Error::from_parts(kind, what.into(), Some(cause), retry_after)
    }

    /// The same error, caused by `cause`.
    pub fn because(self, cause: impl Into<Cause>) -> Error {
        let (kind, what, _, retry_after) = self.into_parts();
        Error::from_parts(kind, what, Some(cause.into()), retry_after)
    }

    /// The same error as another kind (a login Vault rejects with a 400 is denied).
    pub fn into_kind(self, kind: Kind) -> Error {
        let (_, what, cause, retry_after) = self.into_parts();
        Error::from_parts(kind, what, cause, retry_after)
    }

    /// The same error, its message led by `subject` (a batch's error as one secret's).
    pub fn about(&self, subject: &str) -> Error {
        let (kind, what, cause, retry_after) = self.clone().into_parts();
        Error::from_parts(kind, format!("{subject}: {what}"), cause, retry_after)
    }

    /// The message without its kind: what was asked, and the cause.
    pub fn detail(&self) -> String {
        let (what, cause) = match self {
            Error::Denied { what, cause }
            | Error::NotFound { what, cause }
            | Error::Unavailable { what, cause }
            | Error::Throttled { what, cause, .. }
            | Error::Data { what, cause }
            | Error::Config { what, cause } => (what, cause),
        };
        format!("{what}{}", tail(cause))
    }

    /// Which kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Denied { .. } => Kind::Denied,
            Error::NotFound { .. } => Kind::NotFound,
            Error::Unavailable { .. } => Kind::Unavailable,
            Error::Throttled { .. } => Kind::Throttled,
            Error::Data { .. } => Kind::Data,
            Error::Config { .. } => Kind::Config,
        }
    }

    /// Whether trying again may help.
    pub fn retryable(&self) -> bool {
        matches!(self.kind(), Kind::Unavailable | Kind::Throttled)
    }

    /// What this error tells the source's [`Gate`](crate::backoff::Gate).
    pub fn signal(&self) -> Signal {
        match self {
            Error::Unavailable { .. } => Signal::Failed,
            Error::Throttled { retry_after, .. } => Signal::PushedBack(*retry_after),
            _ => Signal::Answered,
        }
    }

    fn from_parts(
        kind: Kind,
        what: String,
        cause: Option<Cause>,
        retry_after: Option<Duration>,
    ) -> Error {
        match kind {
            Kind::Denied => Error::Denied { what, cause },
            Kind::NotFound => Error::NotFound { what, cause },
            Kind::Unavailable => Error::Unavailable { what, cause },
            Kind::Throttled => Error::Throttled {
                what,
                cause,
                retry_after,
            },
            Kind::Data => Error::Data { what, cause },
            Kind::Config => Error::Config { what, cause },
        }
    }

    fn into_parts(self) -> (Kind, String, Option<Cause>, Option<Duration>) {
        let kind = self.kind();
        match self {
            Error::Throttled {
                what,
                cause,
                retry_after,
            } => (kind, what, cause, retry_after),
            Error::Denied { what, cause }
            | Error::NotFound { what, cause }
            | Error::Unavailable { what, cause }
            | Error::Data { what, cause }
            | Error::Config { what, cause } => (kind, what, cause, None),
        }
    }
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self.kind() {
            Kind::Denied => Exit::NoPerm,
            Kind::NotFound | Kind::Data => Exit::Data,
            Kind::Unavailable | Kind::Throttled => Exit::Unavailable,
            Kind::Config => Exit::Config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_http_status_has_one_kind() {
        let table = [
            (400, false, Kind::Data),
            (401, false, Kind::Denied),
            (403, true, Kind::Denied),
            (404, false, Kind::NotFound),
            (409, false, Kind::Data),
            (429, false, Kind::Throttled),
            (429, true, Kind::Throttled),
            (500, true, Kind::Unavailable),
            (502, false, Kind::Unavailable),
            (503, false, Kind::Unavailable),
            (503, true, Kind::Throttled),
            (599, false, Kind::Unavailable),
            (302, false, Kind::Data),
        ];
        for (status, retry_after, kind) in table {
            assert_eq!(
                Kind::of_status(status, retry_after),
                kind,
                "{status} (Retry-After: {retry_after})"
            );
        }
    }

    #[test]
    fn statuses_tell_the_gate_and_the_exit_code() {
        let two = Some(Duration::from_secs(2));
        let s = |status, ra| Error::from_status(status, Vec::new(), "x", ra);
        assert_eq!(s(403, None).exit(), Exit::NoPerm);
        assert_eq!(s(404, None).exit(), Exit::Data);
        assert_eq!(s(400, None).exit(), Exit::Data);
        assert!(!s(400, None).retryable());
        assert_eq!(s(503, None).signal(), Signal::Failed);
        assert_eq!(s(500, two).signal(), Signal::Failed);
        assert_eq!(s(429, None).signal(), Signal::PushedBack(None));
        assert_eq!(s(429, two).signal(), Signal::PushedBack(two));
        assert_eq!(s(503, two).signal(), Signal::PushedBack(two));
        assert!(s(429, two).retryable() && s(502, None).retryable());
        assert_eq!(s(429, two).exit(), Exit::Unavailable);
        assert_eq!(s(404, None).signal(), Signal::Answered);
    }

    #[test]
    fn a_status_is_said_with_the_backends_messages_and_kept_as_the_cause() {
        let errors = vec![
            "1 error occurred".to_owned(),
            "permission denied".to_owned(),
        ];
        let e = Error::from_status(403, errors, "kv `secret/app`", None);
        assert_eq!(
            e.to_string(),
            "permission denied: kv `secret/app`: HTTP 403: 1 error occurred; permission denied"
        );
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("HTTP 403: 1 error occurred; permission denied")
        );
        let bare = Error::from_status(500, Vec::new(), "login", None);
        assert_eq!(bare.to_string(), "backend unavailable: login: HTTP 500");
    }

    /// A client error whose own top line is vague, as reqwest's are.
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Sending(#[source] std::io::Error);

    #[test]
    fn a_call_failure_keeps_its_error_and_says_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::unavailable("token lookup").because(Cause::call(Sending(io)));
        assert_eq!(
            e.to_string(),
            "backend unavailable: token lookup: error sending request: refused"
        );
        let cause = std::error::Error::source(&e).expect("a cause");
        assert!(cause.source().is_some(), "the cause keeps its own cause");
    }

    #[test]
    fn kind_changes_and_naming_keep_the_cause() {
        let e = Error::from_status(400, vec!["invalid role".into()], "approle login", None);
        assert_eq!(e.kind(), Kind::Data);
        let denied = e.into_kind(Kind::Denied);
        assert_eq!(denied.kind(), Kind::Denied);
        assert_eq!(
            denied.to_string(),
            "permission denied: approle login: HTTP 400: invalid role"
        );
        let t = Error::throttled("batch", Some(Duration::from_secs(3))).about("secret_id `a`");
        assert_eq!(t.signal(), Signal::PushedBack(Some(Duration::from_secs(3))));
        assert_eq!(
            t.to_string(),
            "backend asked to slow down: secret_id `a`: batch"
        );
    }

    #[test]
    fn a_file_error_is_said_after_the_file() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = Error::config("token_file /t").because(io);
        assert_eq!(e.to_string(), "token_file /t: No such file");
        assert_eq!(e.exit(), Exit::Config);
    }
}

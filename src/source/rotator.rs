//! What rotating a secret in its backend means, for `ramsecrets drill`,
//! behind one trait: each backend's folder says what rotating one of its
//! secrets means and how to undo it (`src/source/<backend>/drill.rs`: a new
//! KV version, `rotate-role`, a revoked lease or certificate, the AWS staging
//! protocol, a new parameter version), and its source gives the drill a
//! [`Rotator`] for a secret ([`crate::source::Source::rotator`]); new values
//! take the old ones' shape ([`shape`]). The drill itself only calls it, and
//! reads what it did ([`Rotated`]).

pub(crate) mod shape;

use std::any::Any;
use std::time::Instant;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::exit::{Exit, ExitCode};
use shape::Set;

/// How the drill rotates one secret in its backend, and puts it back.
pub trait Rotator: Send + Sync {
    /// The kind of secret, as the report names it: `kv`, `ssm parameter`.
    fn describe(&self) -> &'static str;

    /// Whether `--set` may give the new values: yes for a rotator that
    /// writes a stored value; one whose backend makes them says no.
    fn takes_sets(&self) -> bool {
        true
    }

    /// Whether `--restore` can put the old value back: yes for a stored
    /// value; minted credentials cannot be un-minted.
    fn restorable(&self) -> bool {
        true
    }

    /// Rotates: after this returns, the backend holds the new value. A
    /// rotation of several steps stops at `job.interrupt` and takes itself
    /// back.
    fn rotate<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Rotated, Error>>;

    /// Puts the old value back as `undo` (which its own [`Self::rotate`]
    /// gave) says, unless the secret moved on since the drill.
    fn restore<'a>(
        &'a self,
        _undo: &'a Undo,
        _deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Restored, Error>> {
        Box::pin(async { Err(Error::Usage(NOTHING_TO_RESTORE.into())) })
    }
}

const NOTHING_TO_RESTORE: &str = "nothing to restore for this kind of secret";

/// What a rotation is given.
pub struct Job<'a> {
    /// The values `--set` gives.
    pub sets: &'a [Set],
    /// What the sidecar holds now.
    pub held: &'a Held,
    /// Cancelled on SIGINT or SIGTERM.
    pub interrupt: &'a CancellationToken,
    /// When the backend's calls give up.
    pub deadline: tokio::time::Instant,
}

/// How to put the old value back: the backend's own record, which only its
/// rotator reads.
pub struct Undo(Box<dyn Any + Send + Sync>);

impl Undo {
    /// Wraps a backend's record.
    pub fn new<T: Any + Send + Sync>(record: T) -> Self {
        Undo(Box::new(record))
    }

    /// The record, as the backend that made it reads it.
    pub fn get<T: Any>(&self) -> Result<&T, Error> {
        self.0
            .downcast_ref()
            .ok_or_else(|| Error::Usage(NOTHING_TO_RESTORE.into()))
    }
}

/// What the sidecar holds now, from its metrics: identifiers, not values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// KV version, AWS VersionId or certificate serial.
    pub version: Option<String>,
    /// Vault lease id.
    pub lease: Option<String>,
}

/// Runs `work` until it ends or `interrupt` is cancelled (an error then).
pub async fn until_interrupted<T>(
    work: impl std::future::Future<Output = Result<T, Error>>,
    interrupt: &CancellationToken,
) -> Result<T, Error> {
    tokio::select! {
        r = work => r,
        _ = interrupt.cancelled() => Err(Error::Interrupted),
    }
}

/// A rotation done.
pub struct Rotated {
    /// What was done, e.g. `kv write` or `rotate-role`.
    pub action: &'static str,
    /// What the secret was before (a version, a lease id, a serial), when known.
    pub from: Option<String>,
    /// What it is now, when known.
    pub to: Option<String>,
    /// The fields given new values (KV, AWS).
    pub fields: Vec<String>,
    /// Whether the drill made up a new value (a field no `--set` gave):
    /// such values are put back unless `--keep`.
    pub invented: bool,
    /// Intermediate steps, e.g. the AWSPENDING version written.
    pub steps: Vec<(&'static str, Instant)>,
    /// When the backend held the new value.
    pub written: Instant,
    /// How to put the old value back, for kinds that can.
    pub undo: Option<Undo>,
}

impl Rotated {
    /// A rotation written just now from version `from` to `to`, of `fields`
    /// (invented unless `sets` gave them), with no intermediate step.
    pub fn now(
        action: &'static str,
        from: String,
        to: String,
        fields: Vec<String>,
        sets: &[Set],
    ) -> Self {
        Rotated {
            action,
            from: Some(from),
            to: Some(to),
            invented: shape::invented(&fields, sets),
            fields,
            steps: Vec::new(),
            written: Instant::now(),
            undo: None,
        }
    }
}

/// What putting the old value back came to.
pub enum Restored {
    /// Put back, as said.
    Done(String),
    /// Left as it is, and why: the secret moved on since the drill wrote it.
    Left(String),
}

/// Why a rotation, or putting the old value back, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad options for this secret.
    #[error("{0}")]
    Usage(String),
    /// A backend call failed.
    #[error(transparent)]
    Source(#[from] super::Error),
    /// SIGINT or SIGTERM during the rotation itself.
    #[error("interrupted during the rotation")]
    Interrupted,
    /// A rotation that failed half way, and how it was taken back.
    #[error("{failure}; {cleanup}")]
    Abandoned {
        /// Why it failed.
        #[source]
        failure: Box<Error>,
        /// What was done about what it left, in words.
        cleanup: String,
    },
}

impl Error {
    /// This failure, with what was done to take back what it left.
    pub fn with_cleanup(self, cleanup: String) -> Error {
        Error::Abandoned {
            failure: Box::new(self),
            cleanup,
        }
    }
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Source(e) => e.exit(),
            // The drill exits with its INTERRUPTED instead; this is for a caller that does not.
            Error::Interrupted => Exit::Unavailable,
            Error::Abandoned { failure, .. } => failure.exit(),
        }
    }
}

//! The rotation itself, behind one trait: each backend's folder says what
//! rotating one of its secrets means and how to undo it
//! (`src/source/<backend>/drill.rs`: a new KV version, `rotate-role`, a
//! revoked lease or certificate, the AWS staging protocol, a new parameter
//! version), and its source gives the drill a [`Rotator`] for a secret
//! ([`crate::source::Source::rotator`]). The drill itself only calls it.

use std::any::Any;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::rotated::{Restored, Rotated};
use super::shape::Set;
use super::Error;

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

/// The deadline of one backend call of the drill, retries included.
pub const CALL_BUDGET: Duration = Duration::from_secs(60);

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

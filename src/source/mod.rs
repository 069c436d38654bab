//! Secret backends behind one [`Source`] trait: a fetch returns the fields with
//! their version, lease or expiry, so callers can write, compare and schedule
//! without knowing the backend. One folder per backend, which also declares
//! its config keys and reads them into settings and addresses ([`backend`]
//! registers the backends for the config; [`Address`] lists the forms of
//! address). What the other modes ask of every backend is defined here too,
//! so that this module imports none of them: the proxy's [`proxy_api`], the
//! drill's [`rotator`] and the injector's [`PodAddress`] and [`PodSource`].

mod address;
mod aws;
pub(crate) mod backend;
mod batch;
mod error;
mod file;
mod pod;
pub(crate) mod proxy_api;
pub(crate) mod rotator;
mod ssm;
mod vault;

use std::sync::Arc;
use std::time::Duration;

#[cfg(test)]
pub use aws::AwsAddress;
pub use aws::{sdk_error, Aws, AwsVersion, AWS_CURRENT, AWS_PREVIOUS, VALUE_FIELD};
pub(crate) use backend::{
    address_keys, by_secret_key, by_source_key, source_keys, BACKENDS, PROXY_APIS,
};
pub use backend::{Address, SecretKeys, SourceKeys, SourceKind};
#[cfg(feature = "fuzzing")]
pub(crate) use error::chain;
pub use error::{Cause, Error, Kind};
pub use pod::{PodAddress, PodAsks, PodSource};
pub use vault::{
    logical_read, user_logins, Auth, AwsLogin, CertLogin, KvVersion, Vault, VaultAddress,
    VaultOverrides, VaultSource,
};

/// The pure steps from a backend's answer to fields, for the fuzz targets
/// (`src/fuzzing.rs`); the sources call them after each request.
#[cfg(feature = "fuzzing")]
pub(crate) mod answers {
    pub(crate) use super::aws::{fetched as aws_fetched, value_of as aws_value};
    pub(crate) use super::vault::{
        answer as vault_answer, kv1_fetched, kv2_fetched, pki_fetched, read_fetched,
    };
}

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::backoff::{Gate, Pace, Refusal};
use crate::config::{Config, Secret};
use crate::secret::{Fetched, Fields, Lease, SecretBytes};

/// Runs one backend call through the source's gate (pushback, probing and
/// the retry budget, see [`crate::backoff`]) until `deadline`; `what` names
/// the call in the error of an attempt the gate did not let out.
pub(crate) async fn paced<T, F, Fut>(gate: &Gate, deadline: Instant, what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    gate.run(deadline, Error::signal, |why| refused(what, why), op)
        .await
}

/// The error of an attempt the gate did not let out.
fn refused(what: &str, why: Refusal) -> Error {
    match why {
        Refusal::Closed { wait, pushed: true } => Error::throttled(
            format!(
                "{what}: not sent: the source is backing off for {:.1}s more, past the deadline",
                wait.as_secs_f64()
            ),
            Some(wait),
        ),
        // Not the backend's request: say what closed the gate.
        Refusal::Closed {
            wait,
            pushed: false,
        } => Error::unavailable(format!(
            "{what}: not sent: the source is backing off after failed attempts for {:.1}s more, past the deadline",
            wait.as_secs_f64()
        )),
        Refusal::Budget => Error::unavailable(format!(
            "{what}: not sent: the source's retry budget is spent"
        )),
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A secret backend. Only `fetch` is required; sources without leases or
/// tokens keep the defaults.
pub trait Source: Send + Sync {
    /// Reads `secret`, retrying what is worth retrying until `deadline`.
    fn fetch<'a>(&'a self, secret: &'a Secret, deadline: Instant)
        -> BoxFuture<'a, Result<Fetched>>;

    /// Checks that `secret` may be read, without writing or minting
    /// anything (`check --online`): by default a fetch whose value is dropped.
    fn may_read<'a>(&'a self, secret: &'a Secret, deadline: Instant) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.fetch(secret, deadline).await.map(drop) })
    }

    /// How the rotation drill (`ramsecrets drill`) rotates `secret` in this
    /// backend, or why it cannot.
    fn rotator(&self, _secret: &Secret) -> Result<Box<dyn rotator::Rotator + '_>, String> {
        Err("its source has no backend to rotate: the drill writes new versions where a backend stores them, and this source only reads".into())
    }

    /// Extends `lease` by its duration; returns the lease as now granted.
    fn renew<'a>(&'a self, lease: &'a Lease, _deadline: Instant) -> BoxFuture<'a, Result<Lease>> {
        Box::pin(async move {
            Err(Error::data(format!(
                "lease {} cannot be renewed here",
                lease.id
            )))
        })
    }

    /// Whether a held lease or certificate is still good in the backend:
    /// false when it was revoked there before its time, so that it is read
    /// anew. Sources that cannot tell say true.
    fn still_valid<'a>(
        &'a self,
        _secret: &'a Secret,
        _fetched: &'a Fetched,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(true) })
    }

    /// At shutdown (best effort): revokes `leases`, which this source gave,
    /// and what else of its own ends with the process (a Vault token it
    /// logged in for); one result per lease, in order.
    fn revoke<'a>(&'a self, leases: &'a [&'a Lease]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(async { leases.iter().map(|_| Ok(())).collect() })
    }

    /// Keeps the source's own login alive (renews or replaces its token);
    /// returns how long until it should be called again.
    fn maintain(&self, _renew_at: f64, _deadline: Instant) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(async { Ok(Duration::from_secs(3600)) })
    }

    /// The token in use, for `init` to hand over to the sidecar.
    fn session(&self) -> BoxFuture<'_, Option<SecretBytes>> {
        Box::pin(async { None })
    }

    /// Takes over a token handed over by `init`, with the ids of the leases
    /// `init` took with it; the token is checked before use.
    fn adopt(&self, _token: SecretBytes, _leases: Vec<String>) {}

    /// Why the source cannot read now because its own login is refused or
    /// has run out, with what the user can do about it; the next fetch tries
    /// to log in again. Answered from memory, without waiting.
    fn login_problem(&self) -> Option<String> {
        None
    }

    /// How many times the source found its own login refused or its token
    /// denied: each such time, what it read before may have been read with a
    /// login that no longer holds (see [`Fetched::login_epoch`]). Answered
    /// from memory, without waiting.
    fn login_epoch(&self) -> u64 {
        0
    }

    /// Whether concurrent fetches are collected into batch calls by the source
    /// itself; callers then must not hold fetches back.
    fn batches(&self) -> bool {
        false
    }

    /// How the source paces its calls now (see [`crate::backoff`]); the
    /// sidecar's schedule follows it.
    fn pace(&self) -> Pace {
        Pace::default()
    }

    /// API calls made so far, per operation, for sources billed per call.
    fn api_calls(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Builds one source per configured source, in config order.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Source>>> {
    config
        .sources
        .iter()
        .map(|s| s.kind.source(&s.name))
        .collect()
}

/// The refusal of an answer to `what` over `max` bytes (`max_answer_bytes`).
pub(in crate::source) fn too_big(what: &str, max: usize) -> Error {
    Error::data(format!(
        "{what}: the answer is larger than max_answer_bytes ({max} bytes); refused before it fills the memory: raise max_answer_bytes of the source if the secret is that big"
    ))
}

/// Turns a JSON object into fields: strings as their bytes, other values as JSON text.
fn fields_from_json(data: serde_json::Value, what: &str) -> Result<Fields> {
    let serde_json::Value::Object(map) = data else {
        return Err(Error::data(format!("{what}: data is not an object")));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let bytes = match v {
                serde_json::Value::String(s) => SecretBytes::from_string(s),
                serde_json::Value::Null => SecretBytes::default(),
                other => SecretBytes::from_string(other.to_string()),
            };
            (k, bytes)
        })
        .collect())
}

/// A stand-in source for unit tests, and a server with an answer too big.
#[cfg(test)]
pub mod fake {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// Answers every address with one field, `password`, and counts its fetches.
    #[derive(Default)]
    pub struct Counting {
        fetches: AtomicUsize,
        password: Mutex<String>,
    }

    impl Counting {
        /// Fetches so far.
        pub fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }

        /// What the next fetches answer.
        pub fn set(&self, password: &str) {
            *self.password.lock().unwrap() = password.to_owned();
        }
    }

    impl Source for Counting {
        fn fetch<'a>(&'a self, _: &'a Secret, _: Instant) -> BoxFuture<'a, Result<Fetched>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let mut fields = crate::secret::Fields::new();
            fields.insert(
                "password".into(),
                SecretBytes::copy_from(&self.password.lock().unwrap()),
            );
            Box::pin(async move { Ok(Fetched::fields(fields)) })
        }
    }

    /// A server on a free port that answers one request with `head` and
    /// then `size` bytes of `x`.
    pub fn big_answer(head: &str, size: usize) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let head = head.to_owned();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let _ = s.write_all(head.as_bytes());
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = 0;
            while sent < size && s.write_all(&chunk[..chunk.len().min(size - sent)]).is_ok() {
                sent += chunk.len().min(size - sent);
            }
        });
        port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_refusal_says_whether_the_backend_asked_to_slow_down() {
        let wait = std::time::Duration::from_secs(3);
        let failed = refused(
            "login",
            Refusal::Closed {
                wait,
                pushed: false,
            },
        );
        assert!(matches!(failed, Error::Unavailable { .. }), "{failed}");
        assert!(
            !failed.to_string().contains("asked to slow down"),
            "{failed}"
        );
        assert!(
            failed.to_string().contains("after failed attempts"),
            "{failed}"
        );
        let pushed = refused("login", Refusal::Closed { wait, pushed: true });
        assert!(
            pushed
                .to_string()
                .starts_with("backend asked to slow down: login: not sent"),
            "{pushed}"
        );
    }
}

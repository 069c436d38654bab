//! The APIs the local proxy speaks, behind one trait: each backend's folder
//! implements [`ProxyApi`] for the API its clients call (the AWS agent's
//! `/secretsmanager/get`, the Parameters and Secrets extension's
//! `/systemsmanager/parameters/get`, Vault's `/v1/…`) and names it in its
//! backend's registry entry, which [`crate::source::PROXY_APIS`] collects in
//! routing order: where a config's secrets are asked for ([`Routes`]), what
//! a request finds ([`Found`]), and each answer's JSON as a pure function of
//! the secret and its latest snapshot entry, in the shape those clients
//! parse, errors included ([`Refusal`]). Bodies are built straight into
//! [`SecretBytes`]. The proxy asks them in order and serves what they
//! answer.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;

use crate::config::{Config, Secret};
use crate::render::format;
use crate::secret::{Fetched, SecretBytes};

mod refusal;
pub(crate) use refusal::{Api, Refusal};

/// One secret's latest value, as the sidecar's snapshots hold it
/// (`engine::snapshot`) and the APIs answer from it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// What was fetched, shared with the scheduler's copy.
    pub fetched: std::sync::Arc<Fetched>,
    /// When it changed last (not when it was last confirmed).
    pub changed_at: SystemTime,
    /// Counts changes of the value, from 1: a version for sources without one.
    pub revision: u64,
}

/// An API the proxy answers, as a backend's clients call it.
pub(crate) trait ProxyApi: Sync {
    /// The shape of its error answers.
    fn errors(&self) -> Api;

    /// Where `config`'s secrets are asked for in this API, made once per
    /// config, so that a request finds its secret without walking them.
    fn index(&self, config: &Config) -> Box<dyn Routes>;

    /// The body for `secret` in this API's answer `form` (one that its
    /// [`Routes`] gave), from the secret's latest `entry`.
    fn body(&self, secret: &Secret, entry: &Entry, form: u8) -> Result<SecretBytes, format::Error>;

    /// The form that answers a request for `secret` pinned to a version
    /// (`pin`), if what is held (`held()`, looked up only here) has it; else
    /// the refusal that says what is served.
    fn pinned(
        &self,
        secret: &Secret,
        _pin: &Pin,
        _held: &dyn Fn() -> Option<std::sync::Arc<Entry>>,
    ) -> Result<u8, Refusal> {
        Err(Refusal::not_found(self.errors(), &secret.name))
    }
}

/// One API's index of a config's secrets.
pub(crate) trait Routes: Send + Sync {
    /// What this API makes of a request for `path` with `query`.
    fn route<'p>(&self, path: &'p str, query: Option<&'p str>) -> Routed<'p>;
}

/// What one API makes of a request.
pub(crate) enum Routed<'p> {
    /// Not one of its paths.
    Other,
    /// One of its paths where nothing configured answers: `what` was asked
    /// for, and an API registered after this one may still answer the path.
    Missed(&'p str),
    /// Its answer.
    Found(Found),
}

/// What an API found for a request.
pub(crate) enum Found {
    /// A configured secret.
    Secret {
        /// Index into `config.secrets`.
        secret: usize,
        /// The API's form of the answer.
        form: u8,
        /// Whether the client asked for a fetch first (`refreshNow=true`).
        refresh: bool,
        /// The version the request pins, checked against what is held.
        pin: Option<Pin>,
    },
    /// An answer that holds no secret (a health check, a mount lookup).
    Answer {
        /// Whether it is given without the token.
        open: bool,
        /// The JSON body.
        body: Vec<u8>,
    },
    /// A request the API refuses as it is.
    Refused(fn() -> Refusal),
    /// Nothing configured answers to what was asked, here or elsewhere.
    Missing(String),
}

/// A version a request pins, which the value held must have: by label (a
/// stage) or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pin {
    /// The label asked for, e.g. `AWSPREVIOUS`.
    pub label: Option<String>,
    /// The version id asked for.
    pub id: Option<String>,
}

/// A field value written as JSON text: the text itself, or base64 when binary.
pub(crate) struct Field<'a>(pub &'a SecretBytes);

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.expose_str() {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(self.0.expose()),
            )),
        }
    }
}

/// The `name=value` pairs of a request's query, decoded as
/// `form_urlencoded::parse` decodes them (`%XX`, `+` for a space); a pair with
/// nothing to decode, as most are, is borrowed as it is, not decoded and
/// checked again as UTF-8 on every request.
pub(crate) fn query_pairs(
    query: Option<&str>,
) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let query = query.unwrap_or_default();
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        if pair.bytes().any(|b| b == b'%' || b == b'+') {
            return form_urlencoded::parse(pair.as_bytes())
                .next()
                .unwrap_or_default();
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (Cow::Borrowed(name), Cow::Borrowed(value))
    })
}

/// Seconds since the epoch, as AWS answers write times.
pub(crate) fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When `fetched` was made: as its backend says, else when the proxy first
/// held this value (the `file` source, or a backend that does not say).
pub(crate) fn created(fetched: &Fetched, entry: &Entry) -> SystemTime {
    fetched.origin.created.unwrap_or(entry.changed_at)
}

/// The version a client sees: the backend's, or the snapshot's revision.
pub(crate) fn version(entry: &Entry) -> String {
    entry
        .fetched
        .version
        .clone()
        .unwrap_or_else(|| format!("rev-{}", entry.revision))
}

/// The version as a number: the backend's, or the snapshot's revision.
pub(crate) fn version_number(entry: &Entry) -> u64 {
    (entry.fetched.version.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(entry.revision)
}

#[cfg(test)]
pub(crate) mod tests;

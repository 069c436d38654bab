//! The `sources:` section, as written and validated, generically: an entry
//! is a `name` and the key of one backend (`vault`, `aws_secrets_manager`,
//! …), whose value the backend's folder under `src/source/` reads (the
//! registry is `crate::source::backend`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::{closed, Entry};
use super::{needs_one_of, Mapping, Validator};
use crate::source::{SourceKeys, SourceKind};

/// One backend. Exactly one of `vault`, `aws_secrets_manager`,
/// `ssm_parameter_store` or `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = closed)]
pub struct RawSource {
    /// Name that `secrets[].source` refers to; optional when there is one source.
    pub name: Option<String>,
    /// The backend's key and its settings.
    #[serde(skip)]
    #[schemars(!skip, flatten)]
    pub kind: SourceKeys,
}

impl Entry for RawSource {
    fn takes(key: &str) -> bool {
        crate::source::by_source_key(key).is_some()
    }
    fn read(keys: &Mapping) -> Result<(), (String, String)> {
        SourceKeys::read(keys)
    }
    fn keep(&mut self, keys: Mapping) {
        self.kind = SourceKeys(keys);
    }
}

/// A named backend.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    /// Name that secrets refer to.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// The largest answer read from a backend unless `max_answer_bytes` says
/// otherwise: far above any real secret, far below an injected sidecar's 64 MiB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

impl Source {
    /// How long the sidecar gives one refresh of one secret, retries included.
    pub fn request_budget(&self) -> Duration {
        self.kind.request_budget()
    }

    /// Whether leases from this source are revoked when the sidecar stops.
    pub fn revoke_on_exit(&self) -> bool {
        self.kind.revoke_on_exit()
    }
}

impl Validator<'_> {
    pub(super) fn source(&mut self, i: usize, s: RawSource) -> Option<Source> {
        let at = format!("sources[{i}]");
        if s.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            self.problem(format!("{at}.name"), "must not be empty");
            return None;
        }
        let mut given = s.kind.0.into_iter();
        let (Some((key, value)), None) = (given.next(), given.next()) else {
            self.problem(at, needs_one_of(&crate::source::source_keys()));
            return None;
        };
        let backend = crate::source::by_source_key(&key)?;
        let name = s.name.unwrap_or_else(|| backend.names.default_name.into());
        let at = format!("{at}.{}", backend.names.key);
        let kind = backend.parse.settings(self, &at, value)?;
        Some(Source { name, kind })
    }

    /// An AWS region name such as `eu-west-1`.
    pub(crate) fn region(&mut self, at: &str, r: &str) {
        let ok = !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.problem(
                at,
                format!("`{}` is not a region name like eu-west-1", r.escape_debug()),
            );
        }
    }

    /// `max_answer_bytes` of the source at `at`: at least 1 KiB, at most 1 GiB.
    pub(crate) fn max_answer(&mut self, at: &str, given: Option<u64>) -> Option<usize> {
        match given {
            None => Some(MAX_ANSWER_BYTES),
            Some(n @ 1024..=0x4000_0000) => usize::try_from(n).ok(),
            Some(_) => {
                self.problem(
                    format!("{at}.max_answer_bytes"),
                    "must be from 1024 (1 KiB) to 1073741824 (1 GiB)",
                );
                None
            }
        }
    }
}

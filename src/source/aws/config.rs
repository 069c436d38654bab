//! What the config says about AWS Secrets Manager: the `aws_secrets_manager:`
//! source, whose settings ([`RawAws`], [`Aws`]) Parameter Store shares, and
//! the `secret_id`, `version_stage`, `version_id` and `previous` secret keys,
//! as written and validated into an [`AwsAddress`].

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::AwsAddress;
use crate::config::{Mapping, Source, Validator, Value};
use crate::source::backend::Settings;
use crate::source::backend::{described, reads, Backend, Names, Parse, SourceKind, Unread};
use crate::source::pod::PodSettings;
use crate::source::{Address, Result};

/// An AWS service. Credentials come from the SDK's default chain:
/// environment, profile, web identity (IRSA), EKS Pod Identity or ECS, IMDS.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Region, e.g. `eu-west-1` (default: `AWS_REGION` or the profile's region).
    pub region: Option<String>,
    /// Named profile of the shared config files (default: `AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// The service's endpoint URL, e.g. a VPC endpoint or a local emulator.
    pub endpoint: Option<String>,
    /// Largest answer read from the service, in bytes (default 4 MiB, at
    /// least 1 KiB; a secret holds at most 64 KiB): a bigger one is refused,
    /// naming the secret, before it fills the sidecar's memory.
    pub max_answer_bytes: Option<u64>,
}

/// The secret keys Secrets Manager reads.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// An AWS Secrets Manager secret id (served by the `file` source locally).
    pub secret_id: Option<String>,
    /// AWS: the staging label to read (default `AWSCURRENT`).
    pub version_stage: Option<String>,
    /// AWS: one exact version to read (instead of `version_stage`).
    pub version_id: Option<String>,
    /// AWS: also write the `AWSPREVIOUS` version to `<file>.previous`, so apps that rotate
    /// between two users can fall back during the window.
    pub previous: Option<bool>,
}

/// Settings of an AWS source (Secrets Manager, Parameter Store); what is absent comes from the
/// SDK's default chain (environment, profile, web identity, container, IMDS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aws {
    /// Region.
    pub region: Option<String>,
    /// Named profile.
    pub profile: Option<String>,
    /// Endpoint override.
    pub endpoint: Option<reqwest::Url>,
    /// Largest answer read.
    pub max_answer_bytes: usize,
}

/// The staging label of the current version of an AWS secret.
pub const AWS_CURRENT: &str = "AWSCURRENT";
/// The staging label of the version before the current one.
pub const AWS_PREVIOUS: &str = "AWSPREVIOUS";

/// Which version of an AWS secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsVersion {
    /// The version carrying a staging label (`AWSCURRENT`, `AWSPENDING`, …).
    Stage(String),
    /// One exact version id.
    Id(String),
}

impl AwsVersion {
    /// True for `AWSCURRENT`, the version BatchGetSecretValue returns.
    pub fn is_current(&self) -> bool {
        matches!(self, AwsVersion::Stage(s) if s == AWS_CURRENT)
    }
}

/// How `ramsecrets check` names the batch call.
const PER_CALL: &str = "BatchGetSecretValue, 20 per call";

/// How long the sidecar gives one refresh of one AWS secret, retries included.
pub(crate) const REQUEST_BUDGET: Duration = Duration::from_secs(65);

/// The Secrets Manager backend.
pub(crate) struct SecretsManager;

/// Secrets Manager in the registry.
pub(crate) static BACKEND: Backend = Backend {
    names: Names {
        key: "aws_secrets_manager",
        default_name: "aws",
        describe: "AWS Secrets Manager",
        address_keys: &["secret_id"],
        options: &["version_stage", "version_id", "previous"],
    },
    parse: &SecretsManager,
    proxy: Some(&super::proxy::PROXY_API),
    pod: Some(&super::pod::POD),
};

impl Parse for SecretsManager {
    fn settings_schema(&self, g: &mut SchemaGenerator) -> Schema {
        described::<RawAws>(
            g,
            "AWS Secrets Manager (`aws_secrets_manager: {}` or with no value: all defaults).",
        )
    }
    fn read_settings(&self, value: &Value) -> Result<(), Unread> {
        read_settings(value)
    }
    fn settings(&self, v: &mut Validator<'_>, at: &str, value: Value) -> Option<SourceKind> {
        settings(v, at, value).map(SourceKind::AwsSecretsManager)
    }
    fn read_keys(&self, keys: &Mapping) -> Result<(), Unread> {
        reads::<RawKeys>(Value::Object(keys.clone()))
    }
    fn keys_schema(&self, g: &mut SchemaGenerator) -> Schema {
        RawKeys::json_schema(g)
    }
    fn address(&self, v: &mut Validator<'_>, at: &str, keys: Mapping) -> Option<Address> {
        let keys = v.read::<RawKeys>(at, Value::Object(keys))?;
        address(v, at, keys)
    }
    /// The version keys only with an `aws_secrets_manager` source.
    fn check_options(
        &self,
        v: &mut Validator<'_>,
        at: &str,
        given: &Mapping,
        source: Option<&Source>,
    ) {
        let Some(source) = source else { return };
        if matches!(source.kind, SourceKind::AwsSecretsManager(_)) {
            return;
        }
        for key in ["version_stage", "version_id", "previous"] {
            if given.contains_key(key) {
                v.problem(
                    format!("{at}.{key}"),
                    format!(
                        "only an `aws_secrets_manager` source has versions; source `{}` is {}",
                        source.name,
                        source.kind.describe()
                    ),
                );
            }
        }
    }
}

/// Whether the value under an AWS source's key reads as its settings (no
/// value is all defaults).
pub(crate) fn read_settings(value: &Value) -> Result<(), Unread> {
    match value {
        Value::Null => Ok(()),
        other => reads::<RawAws>(other.clone()),
    }
}

/// An AWS source's settings; a key with no value (`aws_secrets_manager:`)
/// means "all defaults".
pub(crate) fn settings(v: &mut Validator<'_>, at: &str, value: Value) -> Option<Aws> {
    let value = match value {
        Value::Null => Value::Object(Mapping::new()),
        other => other,
    };
    let a = v.read::<RawAws>(at, value)?;
    let before = v.problems();
    if let Some(r) = &a.region {
        v.region(&format!("{at}.region"), r);
    }
    if let Some(p) = &a.profile {
        if p.trim().is_empty() {
            v.problem(format!("{at}.profile"), "must not be empty");
        }
    }
    let endpoint = match a.endpoint.as_deref().map(reqwest::Url::parse) {
        None => None,
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Some(Ok(_)) => {
            v.problem(
                format!("{at}.endpoint"),
                "must be an http:// or https:// URL with a host",
            );
            None
        }
        Some(Err(e)) => {
            v.problem(format!("{at}.endpoint"), format!("not a URL: {e}"));
            None
        }
    };
    let max_answer_bytes = v.max_answer(at, a.max_answer_bytes);
    if v.problems() != before {
        return None;
    }
    Some(Aws {
        region: a.region,
        profile: a.profile,
        endpoint,
        max_answer_bytes: max_answer_bytes?,
    })
}

fn address(v: &mut Validator<'_>, at: &str, s: RawKeys) -> Option<Address> {
    let id = s.secret_id.unwrap_or_default();
    if id.is_empty() {
        v.problem(format!("{at}.secret_id"), "must not be empty");
    }
    let version = match (s.version_stage, s.version_id) {
        (Some(_), Some(_)) => {
            v.problem(
                format!("{at}.version_id"),
                "cannot be used with `version_stage`: give one or the other",
            );
            return None;
        }
        (Some(stage), None) => AwsVersion::Stage(stage),
        (None, Some(id)) => AwsVersion::Id(id),
        (None, None) => AwsVersion::Stage(AWS_CURRENT.into()),
    };
    let (key, value) = match &version {
        AwsVersion::Stage(v) => ("version_stage", v),
        AwsVersion::Id(v) => ("version_id", v),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        v.problem(format!("{at}.{key}"), "must be non-empty printable ASCII");
    }
    let previous = s.previous.unwrap_or(false);
    if previous && !version.is_current() {
        v.problem(
            format!("{at}.previous"),
            format!("writes {AWS_PREVIOUS} beside {AWS_CURRENT}: it cannot be used with `{key}: {value}`"),
        );
    }
    Some(Address::AwsSecretsManager(AwsAddress::SecretId {
        id,
        version,
        previous,
    }))
}

impl Aws {
    /// How `ramsecrets check` shows a source of `key` with these settings,
    /// whose batch call is `per_call`.
    pub(crate) fn summary_as(&self, key: &str, per_call: &str) -> String {
        let mut how = Vec::new();
        if let Some(r) = &self.region {
            how.push(format!("region {r}"));
        }
        if let Some(p) = &self.profile {
            how.push(format!("profile {p}"));
        }
        if let Some(e) = &self.endpoint {
            how.push(format!("endpoint {e}"));
        }
        how.push(if self.region.is_none() {
            "region and credentials from the SDK default chain".into()
        } else {
            "credentials from the SDK default chain".into()
        });
        format!("{key} ({}; {per_call})", how.join(", "))
    }
}

impl Settings for Aws {
    fn summary(&self) -> String {
        self.summary_as(BACKEND.names.key, PER_CALL)
    }

    fn request_budget(&self) -> Duration {
        REQUEST_BUDGET
    }

    fn source(&self, name: &str) -> Result<Arc<dyn crate::source::Source>> {
        Ok(Arc::new(super::AwsSource::new(name, self)))
    }

    fn pod(&self) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
        super::pod::pod(self)
    }
}

//! The `sources:` section, as written (the `Raw` types, which the schema is
//! made of) and validated: the backends (Vault, AWS Secrets Manager, a file);
//! how a Vault source logs in is in `auth`. A new backend is a choice of
//! `RawSource`, a `SourceKind` and its arm in `source()`, all here.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::RawAuth;
use super::blocks::{one_of, one_of_schema, DurationText, OneOf};
use super::{needs_one_of, Auth, Validator};

/// One backend. Exactly one of `vault`, `aws_secrets_manager`,
/// `ssm_parameter_store` or `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawSource {
    /// Name that `secrets[].source` refers to; optional when there is one source.
    pub name: Option<String>,
    /// HashiCorp Vault or OpenBao.
    pub vault: Option<RawVault>,
    /// AWS Secrets Manager (`aws_secrets_manager: {}` or with no value: all defaults).
    #[serde(default, deserialize_with = "null_is_empty")]
    pub aws_secrets_manager: Option<RawAws>,
    /// AWS Systems Manager Parameter Store, with the same keys as `aws_secrets_manager`.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub ssm_parameter_store: Option<RawAws>,
    /// A local YAML file standing in for any backend (development).
    pub file: Option<RawFileSource>,
}

one_of!(RawSource: vault, aws_secrets_manager, ssm_parameter_store, file);

/// A Vault or OpenBao server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// `https://vault.example:8200`
    pub address: String,
    /// PEM bundle of CA certificates to trust for this server.
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the server's certificate (Vault's `VAULT_SKIP_VERIFY`):
    /// anyone on the path can then read the secrets and the token. For a
    /// test server only; a warning says so at start. Prefer `ca_cert`.
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// How to log in: exactly one method.
    pub auth: RawAuth,
    /// Time allowed to open a connection (default 5s).
    pub connect_timeout: Option<DurationText>,
    /// Time allowed for one request (default 30s).
    pub request_timeout: Option<DurationText>,
    /// Revoke the sidecar's leases when it stops.
    #[serde(default)]
    pub revoke_on_exit: bool,
    /// Largest answer read from the server, in bytes (default 4 MiB, at least
    /// 1 KiB): a bigger one is refused while it streams in, naming the secret
    /// or login, before it fills the sidecar's memory.
    pub max_answer_bytes: Option<u64>,
}

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

/// A key present with no value (`aws_secrets_manager:`) means "all defaults".
fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RawAws>, D::Error> {
    Option::<RawAws>::deserialize(d).map(|a| Some(a.unwrap_or_default()))
}

/// The `file` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    /// YAML file of `address: { field: value }`; relative to the config file.
    pub path: PathBuf,
}

/// A named backend.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    /// Name that secrets refer to.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// The kinds of backend.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Vault or OpenBao.
    Vault(Box<Vault>),
    /// AWS Secrets Manager.
    AwsSecretsManager(Aws),
    /// AWS Systems Manager Parameter Store.
    SsmParameterStore(Aws),
    /// A local YAML file.
    File {
        /// Absolute or relative to the working directory (resolved from the config's directory).
        path: PathBuf,
    },
}

/// Settings of a Vault source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vault {
    /// Server URL.
    pub address: reqwest::Url,
    /// Extra CA bundle.
    pub ca_cert: Option<PathBuf>,
    /// The server's certificate is not verified.
    pub tls_skip_verify: bool,
    /// Namespace header.
    pub namespace: Option<String>,
    /// Login method.
    pub auth: Auth,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Revoke leases on shutdown.
    pub revoke_on_exit: bool,
    /// Largest answer read.
    pub max_answer_bytes: usize,
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

/// The largest answer read from a backend unless `max_answer_bytes` says
/// otherwise: far above any real secret, far below an injected sidecar's 64 MiB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

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

impl SourceKind {
    /// The local file a `file` source reads, which a watch follows.
    pub fn local_file(&self) -> Option<&std::path::Path> {
        match self {
            SourceKind::File { path } => Some(path),
            _ => None,
        }
    }

    /// The secret keys of the addresses this backend reads; `None` for the
    /// `file` source, which stands in for any.
    pub fn reads(&self) -> Option<&'static [&'static str]> {
        match self {
            SourceKind::Vault(_) => Some(&["kv", "read", "pki"]),
            SourceKind::AwsSecretsManager(_) => Some(&["secret_id"]),
            SourceKind::SsmParameterStore(_) => Some(&["parameter", "parameters_by_path"]),
            SourceKind::File { .. } => None,
        }
    }

    /// What kind of backend this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            SourceKind::Vault(_) => "Vault",
            SourceKind::AwsSecretsManager(_) => "AWS Secrets Manager",
            SourceKind::SsmParameterStore(_) => "AWS Systems Manager Parameter Store",
            SourceKind::File { .. } => "a file",
        }
    }
}

impl Source {
    /// How long the sidecar gives one refresh of one secret, retries included.
    pub fn request_budget(&self) -> Duration {
        match &self.kind {
            SourceKind::Vault(v) => v.connect_timeout + v.request_timeout * 2,
            SourceKind::AwsSecretsManager(_) | SourceKind::SsmParameterStore(_) => {
                Duration::from_secs(65)
            }
            SourceKind::File { .. } => Duration::from_secs(10),
        }
    }

    /// Whether leases from this source are revoked when the sidecar stops.
    pub fn revoke_on_exit(&self) -> bool {
        matches!(&self.kind, SourceKind::Vault(v) if v.revoke_on_exit)
    }
}

impl Validator<'_> {
    pub(super) fn source(&mut self, i: usize, s: RawSource) -> Option<Source> {
        let at = format!("sources[{i}]");
        let name = match s.name {
            Some(n) if n.trim().is_empty() => {
                self.problem(format!("{at}.name"), "must not be empty");
                return None;
            }
            Some(n) => n,
            None if s.vault.is_some() => "vault".into(),
            None if s.aws_secrets_manager.is_some() => "aws".into(),
            None if s.ssm_parameter_store.is_some() => "ssm".into(),
            None => "file".into(),
        };
        let kind = match (
            s.vault,
            s.aws_secrets_manager,
            s.ssm_parameter_store,
            s.file,
        ) {
            (Some(v), None, None, None) => {
                SourceKind::Vault(Box::new(self.vault(&format!("{at}.vault"), v)?))
            }
            (None, Some(a), None, None) => {
                SourceKind::AwsSecretsManager(self.aws(&format!("{at}.aws_secrets_manager"), a)?)
            }
            (None, None, Some(a), None) => {
                SourceKind::SsmParameterStore(self.aws(&format!("{at}.ssm_parameter_store"), a)?)
            }
            (None, None, None, Some(f)) => SourceKind::File {
                path: self.path(&format!("{at}.file.path"), f.path),
            },
            _ => {
                self.problem(at, needs_one_of(RawSource::KEYS));
                return None;
            }
        };
        Some(Source { name, kind })
    }

    pub(super) fn vault(&mut self, at: &str, v: RawVault) -> Option<Vault> {
        let address = match reqwest::Url::parse(&v.address) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problem(
                    format!("{at}.address"),
                    "must be an http:// or https:// URL with a host",
                );
                None
            }
            Err(e) => {
                self.problem(format!("{at}.address"), format!("not a URL: {e}"));
                None
            }
        };
        let connect_timeout = self.duration(
            &format!("{at}.connect_timeout"),
            v.connect_timeout.as_deref(),
            Duration::from_secs(5),
        );
        let request_timeout = self.duration(
            &format!("{at}.request_timeout"),
            v.request_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let auth = self.auth(&format!("{at}.auth"), v.auth);
        let max_answer = self.max_answer(at, v.max_answer_bytes);
        if let (Some(Auth::Cert(_)), Some(a)) = (&auth, &address) {
            if a.scheme() != "https" {
                self.problem(
                    format!("{at}.auth.cert"),
                    "needs an https:// address: the client certificate is sent in the TLS handshake",
                );
            }
        }
        if let Some(ns) = &v.namespace {
            if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_graphic()) {
                self.problem(
                    format!("{at}.namespace"),
                    "must be non-empty printable ASCII",
                );
            }
        }
        Some(Vault {
            address: address?,
            ca_cert: v.ca_cert.map(|p| self.path(&format!("{at}.ca_cert"), p)),
            tls_skip_verify: v.tls_skip_verify,
            namespace: v.namespace,
            auth: auth?,
            connect_timeout: connect_timeout?,
            request_timeout: request_timeout?,
            revoke_on_exit: v.revoke_on_exit,
            max_answer_bytes: max_answer?,
        })
    }

    pub(super) fn aws(&mut self, at: &str, a: RawAws) -> Option<Aws> {
        let before = self.problems.len();
        if let Some(r) = &a.region {
            self.region(&format!("{at}.region"), r);
        }
        if let Some(p) = &a.profile {
            if p.trim().is_empty() {
                self.problem(format!("{at}.profile"), "must not be empty");
            }
        }
        let endpoint = match a.endpoint.as_deref().map(reqwest::Url::parse) {
            None => None,
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Some(Ok(_)) => {
                self.problem(
                    format!("{at}.endpoint"),
                    "must be an http:// or https:// URL with a host",
                );
                None
            }
            Some(Err(e)) => {
                self.problem(format!("{at}.endpoint"), format!("not a URL: {e}"));
                None
            }
        };
        let max_answer_bytes = self.max_answer(at, a.max_answer_bytes);
        if self.problems.len() != before {
            return None;
        }
        Some(Aws {
            region: a.region,
            profile: a.profile,
            endpoint,
            max_answer_bytes: max_answer_bytes?,
        })
    }

    /// `max_answer_bytes` of the source at `at`: at least 1 KiB, at most 1 GiB.
    fn max_answer(&mut self, at: &str, given: Option<u64>) -> Option<usize> {
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

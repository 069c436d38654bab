//! The `sources:` section: the backends (Vault, AWS Secrets Manager, a
//! file) and how each logs in.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{self, RawAuth, RawAws, RawSource, RawVault};
use super::shape::OneOf;
use super::{clean_mount, needs_one_of, AwsLogin, CertLogin, Validator, SERVICE_ACCOUNT_TOKEN};

/// A named backend.
#[derive(Debug)]
pub struct Source {
    /// Name that secrets refer to.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// The kinds of backend.
#[derive(Debug)]
pub enum SourceKind {
    /// Vault or OpenBao.
    Vault(Box<Vault>),
    /// AWS Secrets Manager.
    AwsSecretsManager(Aws),
    /// A local YAML file.
    File {
        /// Absolute or relative to the working directory (resolved from the config's directory).
        path: PathBuf,
    },
}

/// Settings of a Vault source.
#[derive(Clone, Debug)]
pub struct Vault {
    /// Server URL.
    pub address: reqwest::Url,
    /// Extra CA bundle.
    pub ca_cert: Option<PathBuf>,
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
}

/// Settings of an AWS Secrets Manager source; what is absent comes from the
/// SDK's default chain (environment, profile, web identity, container, IMDS).
#[derive(Clone, Debug, Default)]
pub struct Aws {
    /// Region.
    pub region: Option<String>,
    /// Named profile.
    pub profile: Option<String>,
    /// Secrets Manager endpoint override.
    pub endpoint: Option<reqwest::Url>,
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

/// Vault login methods.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A token read from a file.
    TokenFile(PathBuf),
    /// AppRole.
    AppRole {
        /// Auth mount.
        mount: String,
        /// File with the role id.
        role_id_file: PathBuf,
        /// File with the secret id.
        secret_id_file: PathBuf,
    },
    /// Kubernetes service-account JWT.
    Kubernetes(RoleLogin),
    /// Any JWT.
    Jwt(RoleLogin),
    /// AWS IAM: a signed sts:GetCallerIdentity.
    Aws(AwsLogin),
    /// A TLS client certificate.
    Cert(CertLogin),
}

/// A role-based JWT login.
#[derive(Clone, Debug)]
pub struct RoleLogin {
    /// Auth mount.
    pub mount: String,
    /// Role.
    pub role: String,
    /// File holding the JWT.
    pub token_file: PathBuf,
}

impl SourceKind {
    /// What kind of backend this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            SourceKind::Vault(_) => "Vault",
            SourceKind::AwsSecretsManager(_) => "AWS Secrets Manager",
            SourceKind::File { .. } => "a file",
        }
    }
}

impl Source {
    /// How long the sidecar gives one refresh of one secret, retries included.
    pub fn request_budget(&self) -> Duration {
        match &self.kind {
            SourceKind::Vault(v) => v.connect_timeout + v.request_timeout * 2,
            SourceKind::AwsSecretsManager(_) => Duration::from_secs(65),
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
            None => "file".into(),
        };
        let kind = match (s.vault, s.aws_secrets_manager, s.file) {
            (Some(v), None, None) => {
                SourceKind::Vault(Box::new(self.vault(&format!("{at}.vault"), v)?))
            }
            (None, Some(a), None) => {
                SourceKind::AwsSecretsManager(self.aws(&format!("{at}.aws_secrets_manager"), a)?)
            }
            (None, None, Some(f)) => SourceKind::File {
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
            namespace: v.namespace,
            auth: auth?,
            connect_timeout: connect_timeout?,
            request_timeout: request_timeout?,
            revoke_on_exit: v.revoke_on_exit,
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
        if self.problems.len() != before {
            return None;
        }
        Some(Aws {
            region: a.region,
            profile: a.profile,
            endpoint,
        })
    }

    pub(super) fn auth(&mut self, at: &str, a: RawAuth) -> Option<Auth> {
        if !self.exactly_one(at, &a) {
            return None;
        }
        let login = |this: &mut Self, r: raw::RawRoleLogin, mount: &str, token: Option<&str>| {
            let file = r
                .token_file
                .or(token.map(PathBuf::from))
                .unwrap_or_default();
            RoleLogin {
                mount: clean_mount(r.mount.as_deref().unwrap_or(mount)),
                role: r.role,
                token_file: this.path(&format!("{at}.{mount}.token_file"), file),
            }
        };
        if let Some(f) = a.token_file {
            Some(Auth::TokenFile(self.path(&format!("{at}.token_file"), f)))
        } else if let Some(r) = a.approle {
            Some(Auth::AppRole {
                mount: clean_mount(r.mount.as_deref().unwrap_or("approle")),
                role_id_file: self.path(&format!("{at}.approle.role_id_file"), r.role_id_file),
                secret_id_file: self
                    .path(&format!("{at}.approle.secret_id_file"), r.secret_id_file),
            })
        } else if let Some(k) = a.kubernetes {
            Some(Auth::Kubernetes(login(
                self,
                k,
                "kubernetes",
                Some(SERVICE_ACCOUNT_TOKEN),
            )))
        } else if let Some(j) = a.jwt {
            if j.token_file.is_none() {
                self.problem(format!("{at}.jwt.token_file"), "missing: the JWT file");
                return None;
            }
            Some(Auth::Jwt(login(self, j, "jwt", None)))
        } else if let Some(l) = a.aws {
            self.aws_login(&format!("{at}.aws"), l)
        } else {
            a.cert.map(|l| self.cert_login(&format!("{at}.cert"), l))
        }
    }
}

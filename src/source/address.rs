//! What a secret reads: its [`Address`], one variant per form of address,
//! each backend's own type or fields (the backend's folder parses them from
//! the config's keys). The address is the secret's identity for the rest of
//! the crate, which handles it through the methods here.

use std::time::Duration;

use super::aws::{AwsVersion, AWS_PREVIOUS};
use super::ssm::Parameter;
use super::vault::KvVersion;

/// What a secret reads from its source. The address is its own identity:
/// two secrets read the same thing exactly when their addresses are equal,
/// and the hand-off state stores it as data (`{"read": "db/creds/app"}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    /// A KV secret.
    Kv {
        /// Mount, without slashes at either end.
        mount: String,
        /// Path under the mount.
        path: String,
        /// Forced engine version.
        kv_version: Option<KvVersion>,
        /// Pinned v2 version.
        version: Option<u64>,
    },
    /// Any logical read.
    Read(String),
    /// A PKI certificate.
    Pki {
        /// Mount.
        mount: String,
        /// Role.
        role: String,
        /// Common name.
        common_name: String,
        /// Requested TTL.
        ttl: Option<Duration>,
        /// DNS SANs.
        alt_names: Vec<String>,
        /// IP SANs.
        ip_sans: Vec<String>,
    },
    /// An AWS Secrets Manager secret (name or ARN).
    SecretId {
        /// Name or ARN.
        id: String,
        /// Which version (default: stage `AWSCURRENT`).
        version: AwsVersion,
        /// Also write `AWSPREVIOUS` to `<file>.previous`.
        previous: bool,
    },
    /// AWS Systems Manager Parameter Store: one parameter, or a path.
    Parameter(Parameter),
}

/// The fields a certificate must have, and the file suffix each goes to.
const CERTIFICATE_FILES: [(&str, &str); 3] = [
    ("certificate", "crt"),
    ("private_key", "key"),
    ("ca_chain", "ca.crt"),
];

impl Address {
    /// The config key that gives this kind of address: `kv`, `read`, `pki`,
    /// `secret_id`, `parameter` or `parameters_by_path`.
    pub fn kind(&self) -> &'static str {
        match self {
            Address::Kv { .. } => "kv",
            Address::Read(_) => "read",
            Address::Pki { .. } => "pki",
            Address::SecretId { .. } => "secret_id",
            Address::Parameter(p) => p.kind(),
        }
    }

    /// Whether each read mints new credentials (a lease or a certificate): a
    /// held value is kept until it runs out, never read again on demand.
    pub fn mints(&self) -> bool {
        matches!(self, Address::Read(_) | Address::Pki { .. })
    }

    /// The path of a logical read: what its lease ids start with, and what
    /// agent templates (`go-template`, Vault Agent's) render the answer of.
    pub fn read_path(&self) -> Option<&str> {
        match self {
            Address::Read(path) => Some(path),
            _ => None,
        }
    }

    /// For an address that writes one file per field (a certificate's PEM
    /// files), each field with the suffix of its file; `None` for one file.
    pub fn field_files(&self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Address::Pki { .. } => Some(&CERTIFICATE_FILES),
            _ => None,
        }
    }

    /// Whether the secret is one stored value, written as it is by default
    /// (when its source is the backend, not the `file` source).
    pub fn one_stored_value(&self) -> bool {
        match self {
            Address::SecretId { .. } => true,
            Address::Parameter(p) => p.one_value(),
            _ => false,
        }
    }

    /// How `ramsecrets check` shows what a secret reads.
    pub fn summary(&self) -> String {
        match self {
            Address::Kv {
                version: Some(v), ..
            } => format!("kv {} @v{v}", self.key()),
            Address::Kv { .. } => format!("kv {}", self.key()),
            Address::Read(p) => format!("read {p}"),
            Address::Pki { common_name, .. } => format!("pki {} cn={common_name}", self.key()),
            Address::SecretId {
                id,
                version,
                previous,
            } => {
                let version = match version {
                    v if v.is_current() => String::new(),
                    AwsVersion::Stage(stage) => format!(" @{stage}"),
                    AwsVersion::Id(v) => format!(" version {v}"),
                };
                let previous = if *previous {
                    format!(" +{AWS_PREVIOUS}")
                } else {
                    String::new()
                };
                format!("secret_id {id}{version}{previous}")
            }
            Address::Parameter(p) => p.describe().replace('`', ""),
        }
    }

    /// `` kind `key` ``, as messages name an address.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.kind(), self.key())
    }

    /// The address as the `file` source keys it, and as logs name it.
    pub fn key(&self) -> String {
        match self {
            Address::Kv { mount, path, .. } => format!("{mount}/{path}"),
            Address::Read(path) => path.clone(),
            Address::Pki { mount, role, .. } => format!("{mount}/issue/{role}"),
            Address::SecretId { id, .. } => id.clone(),
            Address::Parameter(p) => p.key().to_owned(),
        }
    }
}

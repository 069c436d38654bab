//! What a Vault secret reads: a KV secret, any logical read, or a
//! certificate issued by a PKI role ([`super::config`] parses them from the
//! `kv`, `read` and `pki` keys).

use std::time::Duration;

use super::KvVersion;
use crate::source::address::Form;

/// What a Vault secret reads. The hand-off state stores it as it is
/// (`{"read": "db/creds/app"}`), so its serialized form stays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultAddress {
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
}

/// The fields a certificate must have, and the file suffix each goes to.
const CERTIFICATE_FILES: [(&str, &str); 3] = [
    ("certificate", "crt"),
    ("private_key", "key"),
    ("ca_chain", "ca.crt"),
];

impl Form for VaultAddress {
    fn kind(&self) -> &'static str {
        match self {
            VaultAddress::Kv { .. } => "kv",
            VaultAddress::Read(_) => "read",
            VaultAddress::Pki { .. } => "pki",
        }
    }

    fn key(&self) -> String {
        match self {
            VaultAddress::Kv { mount, path, .. } => format!("{mount}/{path}"),
            VaultAddress::Read(path) => path.clone(),
            VaultAddress::Pki { mount, role, .. } => format!("{mount}/issue/{role}"),
        }
    }

    fn summary(&self) -> String {
        match self {
            VaultAddress::Kv {
                version: Some(v), ..
            } => format!("kv {} @v{v}", self.key()),
            VaultAddress::Kv { .. } => format!("kv {}", self.key()),
            VaultAddress::Read(p) => format!("read {p}"),
            VaultAddress::Pki { common_name, .. } => {
                format!("pki {} cn={common_name}", self.key())
            }
        }
    }

    /// A logical read's lease, and a certificate.
    fn mints(&self) -> bool {
        matches!(self, VaultAddress::Read(_) | VaultAddress::Pki { .. })
    }

    fn read_path(&self) -> Option<&str> {
        match self {
            VaultAddress::Read(path) => Some(path),
            _ => None,
        }
    }

    /// A certificate's PEM files.
    fn field_files(&self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            VaultAddress::Pki { .. } => Some(&CERTIFICATE_FILES),
            _ => None,
        }
    }
}

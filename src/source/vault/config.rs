//! What the config says about a Vault or OpenBao backend: the `vault:`
//! source (its server, timeouts and login; the login's own keys are the
//! config's `auth`) and the `kv`, `read` and `pki` secret keys, as written and
//! validated into [`Vault`] settings and [`Address`]es.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use super::auth::{self, Auth, RawAuth};
use super::VaultAddress;
use crate::config::{clean_mount, Mapping, Validator, Value};
use crate::source::backend::Settings;
use crate::source::backend::{described, reads, Backend, Names, Parse, SourceKind, Unread};
use crate::source::pod::PodSettings;
use crate::source::{Address, Result, Source};

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
    pub connect_timeout: Option<crate::config::DurationText>,
    /// Time allowed for one request (default 30s).
    pub request_timeout: Option<crate::config::DurationText>,
    /// Revoke the sidecar's leases when it stops: the token it logged in
    /// for (or `init` did) is revoked (`auth/token/revoke-self`, in Vault's
    /// default policy), and its leases with it; a lease of another token (a
    /// `token_file`'s, never revoked itself) by `sys/leases/revoke/LEASE_ID`.
    #[serde(default)]
    pub revoke_on_exit: bool,
    /// Largest answer read from the server, in bytes (default 4 MiB, at least
    /// 1 KiB): a bigger one is refused while it streams in, naming the secret
    /// or login, before it fills the sidecar's memory.
    pub max_answer_bytes: Option<u64>,
}

/// The secret keys Vault reads: exactly one of them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// A KV v1 or v2 secret.
    pub kv: Option<RawKv>,
    /// Any logical read, e.g. `database/creds/app`.
    pub read: Option<String>,
    /// A certificate issued by a PKI role: writes `<file>.crt`, `<file>.key` and
    /// `<file>.ca.crt`, and takes no `format`, `key` or `template`.
    pub pki: Option<RawPki>,
}

/// A KV secret.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKv {
    /// The KV mount, e.g. `secret`.
    pub mount: String,
    /// Path under the mount.
    pub path: String,
    /// 1 or 2; detected from the mount when absent.
    pub kv_version: Option<u8>,
    /// Pin a KV v2 version.
    pub version: Option<u64>,
}

/// A PKI certificate request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPki {
    /// The PKI mount, e.g. `pki`.
    pub mount: String,
    /// The role to issue from.
    pub role: String,
    /// Certificate common name.
    pub common_name: String,
    /// Requested lifetime, e.g. `24h`.
    pub ttl: Option<crate::config::DurationText>,
    /// Subject alternative DNS names.
    #[serde(default)]
    pub alt_names: Vec<String>,
    /// Subject alternative IP addresses.
    #[serde(default)]
    pub ip_sans: Vec<String>,
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

/// KV engine versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvVersion {
    /// KV v1.
    V1,
    /// KV v2.
    V2,
}

/// The Vault backend.
pub(crate) struct VaultBackend;

/// Vault in the registry.
pub(crate) static BACKEND: Backend = Backend {
    names: Names {
        key: "vault",
        default_name: "vault",
        describe: "Vault",
        address_keys: &["kv", "read", "pki"],
        options: &[],
    },
    parse: &VaultBackend,
    proxy: Some(&super::proxy::PROXY_API),
    pod: Some(&super::pod::POD),
};

impl Parse for VaultBackend {
    fn settings_schema(&self, g: &mut SchemaGenerator) -> Schema {
        described::<RawVault>(g, "HashiCorp Vault or OpenBao.")
    }
    fn read_settings(&self, value: &Value) -> Result<(), Unread> {
        reads::<RawVault>(value.clone())
    }
    fn settings(&self, v: &mut Validator<'_>, at: &str, value: Value) -> Option<SourceKind> {
        let raw = v.read::<RawVault>(at, value)?;
        settings(v, at, raw).map(SourceKind::Vault)
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
}

fn settings(v: &mut Validator<'_>, at: &str, raw: RawVault) -> Option<Vault> {
    let address = match reqwest::Url::parse(&raw.address) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(_) => {
            v.problem(
                format!("{at}.address"),
                "must be an http:// or https:// URL with a host",
            );
            None
        }
        Err(e) => {
            v.problem(format!("{at}.address"), format!("not a URL: {e}"));
            None
        }
    };
    let connect_timeout = v.duration(
        &format!("{at}.connect_timeout"),
        raw.connect_timeout.as_deref(),
        Duration::from_secs(5),
    );
    let request_timeout = v.duration(
        &format!("{at}.request_timeout"),
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    );
    let auth = auth::read(v, &format!("{at}.auth"), raw.auth);
    let max_answer = v.max_answer(at, raw.max_answer_bytes);
    if let (Some(Auth::Cert(_)), Some(a)) = (&auth, &address) {
        if a.scheme() != "https" {
            v.problem(
                format!("{at}.auth.cert"),
                "needs an https:// address: the client certificate is sent in the TLS handshake",
            );
        }
    }
    if let Some(ns) = &raw.namespace {
        if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_graphic()) {
            v.problem(
                format!("{at}.namespace"),
                "must be non-empty printable ASCII",
            );
        }
    }
    Some(Vault {
        address: address?,
        ca_cert: raw.ca_cert.map(|p| v.path(&format!("{at}.ca_cert"), p)),
        tls_skip_verify: raw.tls_skip_verify,
        namespace: raw.namespace,
        auth: auth?,
        connect_timeout: connect_timeout?,
        request_timeout: request_timeout?,
        revoke_on_exit: raw.revoke_on_exit,
        max_answer_bytes: max_answer?,
    })
}

fn address(v: &mut Validator<'_>, at: &str, keys: RawKeys) -> Option<Address> {
    if let Some(kv) = keys.kv {
        let kv_version = match kv.kv_version {
            None => None,
            Some(1) => Some(KvVersion::V1),
            Some(2) => Some(KvVersion::V2),
            Some(n) => {
                v.problem(format!("{at}.kv.kv_version"), format!("{n} is not 1 or 2"));
                return None;
            }
        };
        if kv.version.is_some() && kv_version == Some(KvVersion::V1) {
            v.problem(format!("{at}.kv.version"), "KV v1 has no versions");
        }
        let mount = clean_mount(&kv.mount);
        let path = kv.path.trim_matches('/').to_owned();
        vault_path(v, &format!("{at}.kv.mount"), &mount);
        vault_path(v, &format!("{at}.kv.path"), &path);
        return Some(Address::Vault(VaultAddress::Kv {
            mount,
            path,
            kv_version,
            version: kv.version,
        }));
    }
    if let Some(read) = keys.read {
        let path = read.trim_matches('/').to_owned();
        vault_path(v, &format!("{at}.read"), &path);
        return Some(Address::Vault(VaultAddress::Read(path)));
    }
    let p = keys.pki?;
    let ttl = match p.ttl.as_deref() {
        Some(t) => Some(v.duration(&format!("{at}.pki.ttl"), Some(t), Duration::ZERO)?),
        None => None,
    };
    let mount = clean_mount(&p.mount);
    vault_path(v, &format!("{at}.pki.mount"), &mount);
    vault_path(v, &format!("{at}.pki.role"), &p.role);
    Some(Address::Vault(VaultAddress::Pki {
        mount,
        role: p.role,
        common_name: p.common_name,
        ttl,
        alt_names: p.alt_names,
        ip_sans: p.ip_sans,
    }))
}

/// A Vault path must be non-empty and made of plain segments.
fn vault_path(v: &mut Validator<'_>, at: &str, p: &str) {
    let bad = p.is_empty()
        || p.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || p.chars().any(|c| c.is_control() || c == '?' || c == '#');
    if bad {
        v.problem(
            at,
            format!("`{}` is not a plain Vault path", p.escape_debug()),
        );
    }
}

impl Settings for Vault {
    /// The server, the login and the namespace.
    fn summary(&self) -> String {
        let auth = match &self.auth {
            Auth::TokenFile(p) => format!("token_file {}", p.display()),
            Auth::AppRole { mount, .. } => format!("approle at auth/{mount}"),
            Auth::Kubernetes(l) => format!("kubernetes role {} at auth/{}", l.role, l.mount),
            Auth::Jwt(l) => format!("jwt role {} at auth/{}", l.role, l.mount),
            Auth::Aws(l) => format!(
                "aws role {} at auth/{}, signed for {}",
                l.role,
                l.mount,
                l.sts_url()
            ),
            Auth::Cert(l) => match &l.name {
                Some(n) => format!("cert {n} at auth/{}", l.mount),
                None => format!("cert at auth/{}", l.mount),
            },
        };
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!(", namespace {n}"))
            .unwrap_or_default();
        let unverified = match self.tls_skip_verify {
            true => ", certificate NOT verified",
            false => "",
        };
        format!("vault {} ({auth}{ns}{unverified})", self.address)
    }

    /// A connection, and two requests (a login and the read).
    fn request_budget(&self) -> Duration {
        self.connect_timeout + self.request_timeout * 2
    }

    fn source(&self, name: &str) -> Result<Arc<dyn Source>> {
        Ok(Arc::new(super::VaultSource::new(name, self)?))
    }

    fn revoke_on_exit(&self) -> bool {
        self.revoke_on_exit
    }

    fn injectable(&self) -> Result<(), (&'static str, &'static str)> {
        super::pod::injectable(self)
    }

    fn pod(&self) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
        super::pod::pod(self)
    }
}

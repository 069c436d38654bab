//! How the injector names the backends: a secret's address as a pod's
//! annotation writes it (`kv:MOUNT/PATH`, `read:PATH`,
//! `pki:MOUNT/ROLE?common_name=…`, `aws:SECRET_ID`) with the config keys it
//! becomes in the config the pod runs, and the sources injected pods use.
//! The injector itself handles both without knowing a backend.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::config::{Auth, Source, SourceKind};

/// A secret's address as a pod's annotation gives it, already in the form of
/// the pod's config: its key (`kv`, `read`, `pki`, `secret_id`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddress {
    /// Whether a Vault source serves it (else AWS).
    vault: bool,
    /// The secret's config key that gives the address.
    key: &'static str,
    /// Its value.
    value: Value,
}

/// What an annotation's address may be, for messages.
const FORMS: &str = "kv:MOUNT/PATH, read:PATH, pki:MOUNT/ROLE?common_name=… or aws:SECRET_ID";

/// The parameters a `pki:` address may carry.
const PKI_PARAMS: [&str; 4] = ["common_name", "ttl", "alt_names", "ip_sans"];

impl PodAddress {
    /// Reads an annotation's address; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<PodAddress, String> {
        let (scheme, rest) = value
            .split_once(':')
            .ok_or_else(|| format!("expected {FORMS}"))?;
        let rest = rest.trim();
        let split = |what: &str| {
            rest.trim_start_matches('/')
                .split_once('/')
                .filter(|(m, p)| !m.is_empty() && !p.is_empty())
                .ok_or_else(|| format!("expected {scheme}:{what}"))
        };
        match scheme {
            "kv" => {
                let (mount, path) = split("MOUNT/PATH")?;
                Ok(PodAddress::vault(
                    "kv",
                    json!({ "mount": mount, "path": path }),
                ))
            }
            "read" if !rest.trim_matches('/').is_empty() => {
                Ok(PodAddress::logical_read(rest.trim_matches('/')))
            }
            "read" => Err("expected read:PATH".into()),
            "aws" if !rest.is_empty() => Ok(PodAddress {
                vault: false,
                key: "secret_id",
                value: json!(rest),
            }),
            "aws" => Err("expected aws:SECRET_ID".into()),
            "pki" => pki(rest),
            other => Err(format!(
                "unknown kind `{other}`: expected kv, read, pki or aws"
            )),
        }
    }

    /// Any logical read of Vault at `path`.
    pub fn logical_read(path: &str) -> PodAddress {
        PodAddress::vault("read", json!(path))
    }

    fn vault(key: &'static str, value: Value) -> PodAddress {
        PodAddress {
            vault: true,
            key,
            value,
        }
    }

    /// Whether a Vault source serves it (else AWS).
    pub fn is_vault(&self) -> bool {
        self.vault
    }

    /// The secret's config key that gives the address, and its value.
    pub fn config(&self) -> (&'static str, &Value) {
        (self.key, &self.value)
    }
}

/// `pki:MOUNT/ROLE?common_name=…&ttl=…&alt_names=a,b&ip_sans=…`, after `pki:`.
fn pki(rest: &str) -> Result<PodAddress, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mount, role) = path
        .trim_start_matches('/')
        .split_once('/')
        .filter(|(m, r)| !m.is_empty() && !r.is_empty() && !r.contains('/'))
        .ok_or("expected pki:MOUNT/ROLE?common_name=…")?;
    let mut out = Map::new();
    out.insert("mount".into(), json!(mount));
    out.insert("role".into(), json!(role));
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !PKI_PARAMS.contains(&k.as_ref()) {
            return Err(format!(
                "unknown parameter `{k}`: expected {}",
                PKI_PARAMS.join(", ")
            ));
        }
        let v = match k.as_ref() {
            "alt_names" | "ip_sans" => json!(v.split(',').map(str::trim).collect::<Vec<_>>()),
            _ => json!(v),
        };
        out.insert(k.into_owned(), v);
    }
    if out
        .get("common_name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("pki needs ?common_name=…".into());
    }
    Ok(PodAddress::vault("pki", Value::Object(out)))
}

/// A source as injected pods see it.
#[derive(Debug, Clone)]
pub enum PodSource {
    /// Vault or OpenBao, logged in to with the pod's projected token.
    Vault {
        /// Source name.
        name: String,
        /// Server URL.
        address: String,
        /// Namespace.
        namespace: Option<String>,
        /// Kubernetes auth mount.
        mount: String,
        /// Default role.
        role: String,
        /// CA bundle, PEM, shipped in the pod.
        ca_pem: Option<String>,
        /// The injector's `revoke_on_exit` for this source: injected sidecars revoke
        /// their leases when they stop (their pod is deleted).
        revoke_on_exit: bool,
        /// The injector's `tls_skip_verify` for this source: injected sidecars do not
        /// verify the server's certificate either.
        tls_skip_verify: bool,
    },
    /// AWS Secrets Manager, with the pod's own AWS identity.
    Aws {
        /// Source name.
        name: String,
        /// Region.
        region: Option<String>,
        /// Endpoint override.
        endpoint: Option<String>,
    },
}

impl PodSource {
    /// The source injected pods use for the configured source `s`, if they
    /// can use it: a Vault source with a `kubernetes` login (its CA bundle
    /// read now), an AWS one. The error names the CA bundle that cannot be read.
    pub fn of(s: &Source) -> Result<Option<PodSource>, (PathBuf, std::io::Error)> {
        Ok(match &s.kind {
            SourceKind::Vault(v) => {
                let Auth::Kubernetes(login) = &v.auth else {
                    return Ok(None);
                };
                let ca_pem = match &v.ca_cert {
                    Some(path) => {
                        Some(std::fs::read_to_string(path).map_err(|e| (path.clone(), e))?)
                    }
                    None => None,
                };
                Some(PodSource::Vault {
                    name: s.name.clone(),
                    address: v.address.to_string(),
                    namespace: v.namespace.clone(),
                    mount: login.mount.clone(),
                    role: login.role.clone(),
                    ca_pem,
                    revoke_on_exit: v.revoke_on_exit,
                    tls_skip_verify: v.tls_skip_verify,
                })
            }
            SourceKind::AwsSecretsManager(a) => Some(PodSource::Aws {
                name: s.name.clone(),
                region: a.region.clone(),
                endpoint: a.endpoint.as_ref().map(|e| e.to_string()),
            }),
            _ => None,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            PodSource::Vault { name, .. } | PodSource::Aws { name, .. } => name,
        }
    }

    /// Whether it is a Vault source.
    pub fn is_vault(&self) -> bool {
        matches!(self, PodSource::Vault { .. })
    }
}

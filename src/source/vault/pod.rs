//! How the injector names Vault: a pod's annotation gives `kv:MOUNT/PATH`,
//! `read:PATH` or `pki:MOUNT/ROLE?common_name=…` ([`POD`]), and injected
//! pods log in with `kubernetes` auth and their projected service-account
//! token, so only a Vault source with a `kubernetes` login is injected; the
//! pod may name another role, and a vault-k8s pod its own auth mount,
//! namespace and certificate check ([`VaultOverrides`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{Auth, Vault};
use crate::source::pod::{Pod, PodAddress, PodAsks, PodSettings, Scheme};

/// Vault as the injector names it.
pub(crate) static POD: Pod = Pod {
    kind: "Vault",
    token: true,
    schemes: &[
        Scheme {
            name: "kv",
            form: "kv:MOUNT/PATH",
            parse: kv,
        },
        Scheme {
            name: "read",
            form: "read:PATH",
            parse: read,
        },
        Scheme {
            name: "pki",
            form: "pki:MOUNT/ROLE?common_name=…",
            parse: pki,
        },
    ],
};

/// The parameters a `pki:` address may carry.
const PKI_PARAMS: [&str; 4] = ["common_name", "ttl", "alt_names", "ip_sans"];

/// `kv:MOUNT/PATH`, after `kv:`.
fn kv(rest: &str) -> Result<(&'static str, Value), String> {
    let (mount, path) = rest
        .trim_start_matches('/')
        .split_once('/')
        .filter(|(m, p)| !m.is_empty() && !p.is_empty())
        .ok_or("expected kv:MOUNT/PATH")?;
    Ok(("kv", json!({ "mount": mount, "path": path })))
}

/// `read:PATH`, after `read:`.
fn read(rest: &str) -> Result<(&'static str, Value), String> {
    match rest.trim_matches('/') {
        "" => Err("expected read:PATH".into()),
        path => Ok(("read", json!(path))),
    }
}

/// `pki:MOUNT/ROLE?common_name=…&ttl=…&alt_names=a,b&ip_sans=…`, after `pki:`.
fn pki(rest: &str) -> Result<(&'static str, Value), String> {
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
    Ok(("pki", Value::Object(out)))
}

/// A pod's address of any logical read of Vault at `path` (what vault-k8s's
/// annotations read).
pub fn logical_read(path: &str) -> PodAddress {
    PodAddress::new(&POD, "read", json!(path))
}

/// Vault settings a pod overrides (vault-k8s pods only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultOverrides {
    /// The kubernetes auth mount.
    pub auth_mount: Option<String>,
    /// The Vault namespace.
    pub namespace: Option<String>,
    /// Revoke leases when the sidecar stops.
    pub revoke_on_exit: bool,
    /// Do not verify Vault's certificate (only where the injector allows it).
    pub tls_skip_verify: bool,
}

/// Why pods cannot be injected with a source of `vault`, and the key at
/// fault under the source's entry.
pub(super) fn injectable(vault: &Vault) -> Result<(), (&'static str, &'static str)> {
    match vault.auth {
        Auth::Kubernetes(_) => Ok(()),
        _ => Err((
            "vault.auth",
            "injected pods log in with kubernetes auth: set `kubernetes: { role: … }` (the default role; pods may name another)",
        )),
    }
}

/// A Vault source as injected pods see it, logged in to with the pod's
/// projected token.
#[derive(Debug)]
struct VaultPod {
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
}

/// How injected pods configure a source of `vault`: with a `kubernetes`
/// login only; its CA bundle is read now, and the error names it.
pub(super) fn pod(
    vault: &Vault,
) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
    let Auth::Kubernetes(login) = &vault.auth else {
        return Ok(None);
    };
    let ca_pem = match &vault.ca_cert {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| (path.clone(), e))?),
        None => None,
    };
    Ok(Some(Arc::new(VaultPod {
        address: vault.address.to_string(),
        namespace: vault.namespace.clone(),
        mount: login.mount.clone(),
        role: login.role.clone(),
        ca_pem,
        revoke_on_exit: vault.revoke_on_exit,
        tls_skip_verify: vault.tls_skip_verify,
    })))
}

impl PodSettings for VaultPod {
    fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn config(&self, asks: &PodAsks<'_>) -> Value {
        let overrides = asks.vault;
        let mut vault = json!({
            "address": self.address,
            "auth": { "kubernetes": {
                "mount": overrides.auth_mount.as_deref().unwrap_or(&self.mount),
                "role": asks.role.unwrap_or(&self.role),
                "token_file": asks.token_file,
            } },
        });
        if self.ca_pem.is_some() {
            vault["ca_cert"] = json!(asks.ca_file);
        }
        if let Some(ns) = overrides.namespace.as_ref().or(self.namespace.as_ref()) {
            vault["namespace"] = json!(ns);
        }
        if overrides.revoke_on_exit || self.revoke_on_exit {
            vault["revoke_on_exit"] = json!(true);
        }
        if overrides.tls_skip_verify || self.tls_skip_verify {
            vault["tls_skip_verify"] = json!(true);
        }
        vault
    }
}

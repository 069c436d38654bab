//! How the rotation drill rotates a Vault secret. KV: a new version with new
//! values of the same shape, undone while the secret still holds the
//! drill's ([`kv`]); database static roles: `rotate-role`, so Vault changes
//! the password in the database; dynamic credentials: the lease the sidecar
//! holds is revoked, once it is known to be a lease of the secret's own path
//! ([`own_lease`]) and Vault confirmed it (`sys/leases/lookup`), so that a
//! metrics page naming another lease cannot make the drill revoke it;
//! certificates: the one the sidecar holds is revoked, which the sidecar
//! notices at its next poll and re-issues.

mod kv;

use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{VaultAddress, VaultSource};
use crate::config::{Address, KvVersion, Secret};
use crate::source;
use crate::source::rotator::{shape, Error, Job, Restored, Rotated, Rotator, Undo};

/// What rotating a Vault secret means, with the source that does it.
enum VaultRotator<'a> {
    /// A KV secret.
    Kv {
        vault: &'a VaultSource,
        mount: String,
        path: String,
        /// Engine version, when the config forces it.
        version: Option<KvVersion>,
    },
    /// A database static role, read at `<mount>/static-creds/<role>`.
    StaticRole {
        vault: &'a VaultSource,
        mount: String,
        role: String,
    },
    /// Leased credentials, such as `database/creds/<role>`.
    Lease {
        vault: &'a VaultSource,
        path: String,
    },
    /// A PKI certificate.
    Certificate {
        vault: &'a VaultSource,
        mount: String,
    },
}

/// The rotator of `secret`, read from `vault`; the error says why it cannot
/// be drilled.
pub(super) fn rotator<'a>(
    vault: &'a VaultSource,
    secret: &Secret,
) -> Result<Box<dyn Rotator + 'a>, String> {
    let Address::Vault(address) = &secret.address else {
        return Err(format!("Vault has no `{}` secrets", secret.address.kind()));
    };
    let rotator = match address {
        VaultAddress::Kv {
            version: Some(_), ..
        } => return Err("it pins a KV version: a new version would never reach the app".into()),
        VaultAddress::Kv {
            mount,
            path,
            kv_version,
            ..
        } => VaultRotator::Kv {
            vault,
            mount: mount.clone(),
            path: path.clone(),
            version: *kv_version,
        },
        VaultAddress::Read(path) => {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [mount @ .., "static-creds", role] if !mount.is_empty() => {
                    VaultRotator::StaticRole {
                        vault,
                        mount: mount.join("/"),
                        role: (*role).to_owned(),
                    }
                }
                _ => VaultRotator::Lease {
                    vault,
                    path: path.clone(),
                },
            }
        }
        VaultAddress::Pki { mount, .. } => VaultRotator::Certificate {
            vault,
            mount: mount.clone(),
        },
    };
    Ok(Box::new(rotator))
}

impl Rotator for VaultRotator<'_> {
    fn describe(&self) -> &'static str {
        match self {
            VaultRotator::Kv { .. } => "kv",
            VaultRotator::StaticRole { .. } => "database static role",
            VaultRotator::Lease { .. } => "leased credentials",
            VaultRotator::Certificate { .. } => "pki certificate",
        }
    }

    fn takes_sets(&self) -> bool {
        matches!(self, VaultRotator::Kv { .. })
    }

    fn restorable(&self) -> bool {
        matches!(self, VaultRotator::Kv { .. })
    }

    fn rotate<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Rotated, Error>> {
        Box::pin(async move {
            match self {
                VaultRotator::Kv {
                    vault,
                    mount,
                    path,
                    version,
                } => kv::rotate(vault, mount, path, *version, job.sets, job.deadline).await,
                VaultRotator::StaticRole { vault, mount, role } => {
                    static_role(vault, mount, role, job.deadline).await
                }
                VaultRotator::Lease { vault, path } => {
                    let lease = match &job.held.lease {
                        Some(l) => own_lease(path, l)?,
                        None => only_lease(vault, path, job.deadline).await?,
                    };
                    confirm_lease(vault, &lease, job.deadline).await?;
                    let body = shape::to_bytes(&json!({ "lease_id": lease }));
                    let revoke = reqwest::Method::PUT;
                    (vault.request(revoke, "sys/leases/revoke", Some(&body), job.deadline)).await?;
                    Ok(revoked("lease revoked", lease))
                }
                VaultRotator::Certificate { vault, mount } => {
                    let serial = job.held.version.clone().ok_or_else(|| {
                        Error::Usage(
                            "the serial of the sidecar's certificate is unknown: set `health.listen` (or --metrics) so the drill can read it from the sidecar's metrics".into(),
                        )
                    })?;
                    vault
                        .request(
                            reqwest::Method::POST,
                            &format!("{mount}/revoke"),
                            Some(&shape::to_bytes(&json!({ "serial_number": serial }))),
                            job.deadline,
                        )
                        .await?;
                    Ok(revoked("certificate revoked", serial))
                }
            }
        })
    }

    fn restore<'a>(
        &'a self,
        undo: &'a Undo,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Restored, Error>> {
        Box::pin(async move {
            match self {
                VaultRotator::Kv { vault, .. } => kv::restore(vault, undo.get()?, deadline).await,
                _ => Err(Error::Usage(format!(
                    "the old value of a {} is revoked or gone: nothing to restore",
                    self.describe()
                ))),
            }
        })
    }
}

/// `rotate-role` of a database static role, with the times Vault says it
/// rotated before and after.
async fn static_role(
    vault: &VaultSource,
    mount: &str,
    role: &str,
    deadline: tokio::time::Instant,
) -> Result<Rotated, Error> {
    let rotated = |v: &Value| {
        v.pointer("/data/last_vault_rotation")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let role_path = format!("{mount}/static-roles/{role}");
    let get = reqwest::Method::GET;
    let before = vault
        .request(get.clone(), &role_path, None, deadline)
        .await?;
    let rotate = format!("{mount}/rotate-role/{role}");
    vault
        .request(reqwest::Method::POST, &rotate, None, deadline)
        .await?;
    let written = Instant::now();
    let after = vault.request(get, &role_path, None, deadline).await?;
    Ok(Rotated {
        action: "rotate-role",
        from: rotated(&before),
        to: rotated(&after),
        fields: vec!["password".into()],
        invented: false,
        steps: Vec::new(),
        written,
        undo: None,
    })
}

/// A revocation of `what` (a lease id, a serial) done just now.
fn revoked(action: &'static str, what: String) -> Rotated {
    Rotated {
        action,
        from: Some(what),
        to: None,
        fields: Vec::new(),
        invented: false,
        steps: Vec::new(),
        written: Instant::now(),
        undo: None,
    }
}

/// `lease` (as the sidecar's metrics name it), when it is a lease of the
/// secret's read `path`: `<path>/<id>`, the id one segment.
fn own_lease(path: &str, lease: &str) -> Result<String, Error> {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    match lease.strip_prefix(&prefix) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(lease.to_owned()),
        _ => Err(Error::Source(source::Error::data(format!(
            "the sidecar's metrics name lease `{lease}`, which is not a lease of `{path}`: nothing was revoked"
        )))),
    }
}

/// Asks Vault whether `lease` exists before it is revoked (revoking an
/// unknown lease succeeds, and would pass for a rotation).
async fn confirm_lease(
    vault: &VaultSource,
    lease: &str,
    deadline: tokio::time::Instant,
) -> Result<(), Error> {
    let body = shape::to_bytes(&json!({ "lease_id": lease }));
    let known = match vault
        .request(
            reqwest::Method::PUT,
            "sys/leases/lookup",
            Some(&body),
            deadline,
        )
        .await
    {
        Ok(answer) => answer.pointer("/data/id").and_then(Value::as_str) == Some(lease),
        Err(source::Error::Data { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if known {
        Ok(())
    } else {
        Err(Error::Source(source::Error::not_found(format!(
            "Vault has no lease `{lease}` (sys/leases/lookup): nothing was revoked"
        ))))
    }
}

/// The one lease under `path`, when the sidecar's metrics did not say which.
async fn only_lease(
    vault: &VaultSource,
    path: &str,
    deadline: tokio::time::Instant,
) -> Result<String, Error> {
    let list = format!(
        "sys/leases/lookup/{}/?list=true",
        path.trim_end_matches('/')
    );
    let answer = vault
        .request(reqwest::Method::GET, &list, None, deadline)
        .await?;
    let keys: Vec<&str> = answer
        .pointer("/data/keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match keys.as_slice() {
        [one] => Ok(format!("{}/{one}", path.trim_end_matches('/'))),
        [] => Err(Error::Source(source::Error::not_found(format!(
            "no lease under `{path}`: is the sidecar running?"
        )))),
        many => Err(Error::Usage(format!(
            "{} leases under `{path}` and the sidecar's metrics are not reachable to tell which one it holds: set `health.listen` (or --metrics)",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lease_of_the_secrets_own_path_is_revoked() {
        let path = "database/creds/app";
        assert_eq!(
            own_lease(path, "database/creds/app/x1").unwrap(),
            "database/creds/app/x1"
        );
        assert!(own_lease("database/creds/app/", "database/creds/app/x1").is_ok());
        for other in [
            "auth/token/create/abc",
            "database/creds/app",
            "database/creds/app/",
            "database/creds/application/x1",
            "database/creds/app/x/../../../auth/token/create/abc",
        ] {
            let e = own_lease(path, other).unwrap_err().to_string();
            assert!(e.contains("not a lease of `database/creds/app`"), "{e}");
        }
    }
}

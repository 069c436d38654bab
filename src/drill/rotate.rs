//! The rotation itself, per kind of secret, and its undoing. Vault KV: see
//! [`super::kv`]; database
//! static roles: `rotate-role`, so Vault changes the password in the database;
//! dynamic credentials: the lease the sidecar holds is revoked, once it is
//! known to be a lease of the secret's own path ([`own_lease`]) and Vault
//! confirmed it (`sys/leases/lookup`), so that a metrics page naming another
//! lease cannot make the drill revoke it; certificates:
//! the one the sidecar holds is revoked, which the sidecar notices at its next
//! poll and re-issues; AWS Secrets Manager: see [`super::aws`]; Parameter
//! Store: see [`super::ssm`].

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::aws::AwsTarget;
use super::kv;
use super::rotated::{Restored, Rotated, Undo};
use super::shape::{self, Set};
use super::ssm::SsmTarget;
use super::Error;
use crate::config::{Address, AwsVersion, Config, KvVersion, Secret, SourceKind, VaultAddress};
use crate::source::{self, AwsAddress, SsmAddress, VaultSource};

/// What the drill rotates, and with which client.
pub enum Target {
    /// A Vault KV secret.
    Kv {
        /// The source.
        vault: VaultSource,
        /// Mount.
        mount: String,
        /// Path under the mount.
        path: String,
        /// Engine version, when the config forces it.
        version: Option<KvVersion>,
    },
    /// A database static role, read at `<mount>/static-creds/<role>`.
    StaticRole {
        /// The source.
        vault: VaultSource,
        /// The database mount.
        mount: String,
        /// The role.
        role: String,
    },
    /// Leased credentials, such as `database/creds/<role>`.
    Lease {
        /// The source.
        vault: VaultSource,
        /// The read path.
        path: String,
    },
    /// A PKI certificate.
    Certificate {
        /// The source.
        vault: VaultSource,
        /// The PKI mount.
        mount: String,
    },
    /// An AWS Secrets Manager secret.
    Aws(AwsTarget),
    /// A Parameter Store parameter.
    Ssm(SsmTarget),
}

/// What the sidecar holds now, from its metrics: identifiers, not values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// KV version, AWS VersionId or certificate serial.
    pub version: Option<String>,
    /// Vault lease id.
    pub lease: Option<String>,
}

/// The deadline of one backend call of the drill, retries included.
const CALL_BUDGET: Duration = Duration::from_secs(60);

fn usage(secret: &Secret, why: &str) -> Error {
    Error::Usage(format!("secret `{}`: {why}", secret.name))
}

impl Target {
    /// Works out what rotating `secret` means, and builds its client.
    pub fn new(config: &Config, secret: &Secret, sets: &[Set]) -> Result<Target, Error> {
        let src = &config.sources[secret.source];
        let no_sets = |what: &str| -> Result<(), Error> {
            if sets.is_empty() {
                Ok(())
            } else {
                Err(usage(
                    secret,
                    &format!("--set applies to KV and AWS secrets, not to {what}"),
                ))
            }
        };
        match (&src.kind, &secret.address) {
            (SourceKind::Vault(v), address) => {
                let vault = VaultSource::new(&src.name, v)?;
                match address {
                    Address::Vault(VaultAddress::Kv {
                        version: Some(_), ..
                    }) => Err(usage(
                        secret,
                        "it pins a KV version: a new version would never reach the app",
                    )),
                    Address::Vault(VaultAddress::Kv {
                        mount,
                        path,
                        kv_version,
                        ..
                    }) => Ok(Target::Kv {
                        vault,
                        mount: mount.clone(),
                        path: path.clone(),
                        version: *kv_version,
                    }),
                    Address::Vault(VaultAddress::Read(path)) => {
                        no_sets("read: secrets")?;
                        let parts: Vec<&str> = path.split('/').collect();
                        match parts.as_slice() {
                            [mount @ .., "static-creds", role] if !mount.is_empty() => {
                                Ok(Target::StaticRole {
                                    vault,
                                    mount: mount.join("/"),
                                    role: (*role).to_owned(),
                                })
                            }
                            _ => Ok(Target::Lease {
                                vault,
                                path: path.clone(),
                            }),
                        }
                    }
                    Address::Vault(VaultAddress::Pki { mount, .. }) => {
                        no_sets("certificates")?;
                        Ok(Target::Certificate {
                            vault,
                            mount: mount.clone(),
                        })
                    }
                    other => Err(usage(
                        secret,
                        &format!("Vault has no `{}` secrets", other.kind()),
                    )),
                }
            }
            (
                SourceKind::AwsSecretsManager(a),
                Address::AwsSecretsManager(AwsAddress::SecretId { id, version, .. }),
            ) => {
                if !matches!(version, AwsVersion::Stage(_)) || !version.is_current() {
                    return Err(usage(
                        secret,
                        "it pins a version: rotating AWSCURRENT would never reach the app",
                    ));
                }
                Ok(Target::Aws(AwsTarget::new(&src.name, a, id)))
            }
            (SourceKind::AwsSecretsManager(_), _) => Err(usage(
                secret,
                "AWS Secrets Manager holds `secret_id` secrets only",
            )),
            (
                SourceKind::SsmParameterStore(s),
                Address::SsmParameterStore(SsmAddress::Parameter(p)),
            ) => {
                match (p.latest(), p.one_value()) {
                    (Some(name), _) => Ok(Target::Ssm(SsmTarget::new(&src.name, &s.0, name))),
                    (None, true) => Err(usage(
                        secret,
                        "it pins a version or label: a new version would never reach the app",
                    )),
                    (None, false) => Err(usage(
                        secret,
                        "the drill rotates one `parameter`: drill the parameters under a path one by one, each as a secret of its own",
                    )),
                }
            }
            (SourceKind::SsmParameterStore(_), _) => Err(usage(
                secret,
                "Parameter Store holds `parameter` and `parameters_by_path` secrets only",
            )),
            (SourceKind::File(_), _) => Err(usage(
                secret,
                "the `file` source has no backend to rotate; drill against Vault, OpenBao or AWS",
            )),
        }
    }

    /// The kind, as the report names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Kv { .. } => "kv",
            Target::StaticRole { .. } => "database static role",
            Target::Lease { .. } => "leased credentials",
            Target::Certificate { .. } => "pki certificate",
            Target::Aws(_) => "aws secrets manager",
            Target::Ssm(_) => "ssm parameter",
        }
    }

    /// Whether `--restore` can put the old value back.
    pub fn restorable(&self) -> bool {
        matches!(self, Target::Kv { .. } | Target::Aws(_) | Target::Ssm(_))
    }

    /// Rotates: after this returns, the backend holds the new value. The
    /// multi-step AWS rotation stops at `interrupt` and takes itself back.
    pub async fn rotate(
        &self,
        sets: &[Set],
        held: &Held,
        interrupt: &CancellationToken,
    ) -> Result<Rotated, Error> {
        let deadline = tokio::time::Instant::now() + CALL_BUDGET;
        match self {
            Target::Kv {
                vault,
                mount,
                path,
                version,
            } => kv::rotate(vault, mount, path, *version, sets, deadline).await,
            Target::StaticRole { vault, mount, role } => {
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
            Target::Lease { vault, path } => {
                let lease = match &held.lease {
                    Some(l) => own_lease(path, l)?,
                    None => only_lease(vault, path, deadline).await?,
                };
                confirm_lease(vault, &lease, deadline).await?;
                vault
                    .request(
                        reqwest::Method::PUT,
                        "sys/leases/revoke",
                        Some(&shape::to_bytes(&json!({ "lease_id": lease }))),
                        deadline,
                    )
                    .await?;
                Ok(Rotated {
                    action: "lease revoked",
                    from: Some(lease),
                    to: None,
                    fields: Vec::new(),
                    invented: false,
                    steps: Vec::new(),
                    written: Instant::now(),
                    undo: None,
                })
            }
            Target::Certificate { vault, mount } => {
                let serial = held.version.clone().ok_or_else(|| {
                    Error::Usage(
                        "the serial of the sidecar's certificate is unknown: set `health.listen` (or --metrics) so the drill can read it from the sidecar's metrics".into(),
                    )
                })?;
                vault
                    .request(
                        reqwest::Method::POST,
                        &format!("{mount}/revoke"),
                        Some(&shape::to_bytes(&json!({ "serial_number": serial }))),
                        deadline,
                    )
                    .await?;
                Ok(Rotated {
                    action: "certificate revoked",
                    from: Some(serial),
                    to: None,
                    fields: Vec::new(),
                    invented: false,
                    steps: Vec::new(),
                    written: Instant::now(),
                    undo: None,
                })
            }
            Target::Aws(aws) => aws.rotate(sets, deadline, interrupt).await,
            Target::Ssm(ssm) => ssm.rotate(sets, deadline).await,
        }
    }

    /// Puts the old value back, unless the secret moved on since the drill.
    pub async fn restore(&self, undo: &Undo) -> Result<Restored, Error> {
        let deadline = tokio::time::Instant::now() + CALL_BUDGET;
        match (self, undo) {
            (Target::Kv { vault, .. }, Undo::Kv(kv)) => kv::restore(vault, kv, deadline).await,
            (Target::Aws(aws), Undo::Aws { old, new }) => aws.restore(old, new, deadline).await,
            (Target::Ssm(ssm), Undo::Ssm(undo)) => ssm.restore(undo, deadline).await,
            _ => Err(Error::Usage(
                "nothing to restore for this kind of secret".into(),
            )),
        }
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

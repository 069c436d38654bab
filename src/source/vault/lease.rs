//! Logical reads with their lease (database credentials, any `read:` path),
//! and what a held lease goes through afterwards: renewal, the check that it
//! (or a PKI certificate) was not revoked early, and revocation at shutdown
//! (with the token that took them, else lease by lease).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use vaultrs::client::VaultClient;

use super::{Auth, VaultAddress, VaultSource};
use crate::config::{Address, Secret};
use crate::secret::{Fetched, Lease, SecretBytes};
use crate::source::{fields_from_json, paced, Error, Result};

impl VaultSource {
    /// Reads `path` with its lease; a database static role's rotation time
    /// becomes [`Fetched::rotates`]. With `keep`, the response's `data` is
    /// kept whole as [`Fetched::stored`], as the server wrote it (for a
    /// agent template, which writes numbers as they were written).
    pub(super) async fn fetch_read(
        &self,
        c: &VaultClient,
        path: &str,
        keep: bool,
        what: &str,
        deadline: Instant,
    ) -> Result<Fetched> {
        if !keep {
            return read_fetched(self.read(c, path, what, deadline).await?, false, what);
        }
        let token = SecretBytes::copy_from(&c.middle.token);
        let (body, raw) = paced(&self.gate, deadline, what, || {
            self.call_raw(&token, reqwest::Method::GET, path, what)
        })
        .await?;
        let mut fetched = read_fetched(body, true, what)?;
        fetched.stored = Some(raw_data(raw.expose(), what)?);
        Ok(fetched)
    }

    /// Extends `lease` by its duration (`sys/leases/renew`).
    pub(super) async fn renew_lease(&self, lease: &Lease, deadline: Instant) -> Result<Lease> {
        let c = self.client(deadline).await?;
        let token = SecretBytes::copy_from(&c.middle.token);
        let what = format!("renewal of lease {}", lease.id);
        let body = paced(&self.gate, deadline, &what, || {
            self.call(
                &token,
                reqwest::Method::PUT,
                "sys/leases/renew",
                Some(serde_json::json!({ "lease_id": lease.id, "increment": lease.duration.as_secs() })),
                &what,
            )
        })
        .await?;
        Ok(Lease {
            id: body["lease_id"].as_str().unwrap_or(&lease.id).to_owned(),
            duration: crate::clock::secs(body["lease_duration"].as_u64().unwrap_or(0)),
            renewable: body["renewable"].as_bool().unwrap_or(false),
        })
    }

    /// Whether the lease of `fetched`, or its PKI certificate, is still good
    /// in Vault; true when there is nothing to ask or no right to ask it.
    pub(super) async fn still_good(
        &self,
        secret: &Secret,
        fetched: &Fetched,
        deadline: Instant,
    ) -> Result<bool> {
        let (method, path, body, what) = match (&fetched.lease, &secret.address, &fetched.version) {
            (Some(lease), _, _) => (
                reqwest::Method::PUT,
                "sys/leases/lookup".to_owned(),
                Some(serde_json::json!({ "lease_id": lease.id })),
                format!("lookup of lease {}", lease.id),
            ),
            (None, Address::Vault(VaultAddress::Pki { mount, .. }), Some(serial)) => (
                reqwest::Method::GET,
                format!("{mount}/cert/{serial}"),
                None,
                format!("lookup of certificate {serial}"),
            ),
            _ => return Ok(true),
        };
        let c = self.client(deadline).await?;
        let token = SecretBytes::copy_from(&c.middle.token);
        let answer = paced(&self.gate, deadline, &what, || {
            self.call(&token, method.clone(), &path, body.clone(), &what)
        })
        .await;
        match answer {
            // A revoked certificate has a revocation time; a live one 0.
            Ok(b) => Ok(b
                .pointer("/data/revocation_time")
                .and_then(|v| v.as_i64())
                .is_none_or(|t| t <= 0)),
            // Vault answers 400 "invalid lease" for a lease it no longer has.
            Err(Error::Data { .. } | Error::NotFound { .. }) => Ok(false),
            // A policy without `sys/leases/lookup`: nothing to tell.
            Err(e @ Error::Denied { .. }) => {
                tracing::debug!(source = %self.name, secret = %secret.name, error = %e, "cannot check the lease; relying on renewal");
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// At shutdown, revokes `leases` as Vault Agent does, within five
    /// seconds: a token this source logged in for (itself, or `init` before
    /// it) is revoked with `auth/token/revoke-self`, which Vault's default
    /// policy allows and which revokes every lease the token took; a lease
    /// another token took (the user's `token_file`, or one replaced since) is
    /// revoked by its own path, `sys/leases/revoke/LEASE_ID`, which a policy
    /// can scope to the pod's leases; so is each of ours when the token
    /// cannot be revoked. One result per lease, in order.
    pub(super) async fn revoke_at_exit(&self, leases: &[&Lease]) -> Vec<Result<()>> {
        // Not logged in and nothing held: no login only to revoke its token.
        if leases.is_empty() && self.session.lock().await.is_none() {
            return Vec::new();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let c = match self.client(deadline).await {
            Ok(c) => c,
            Err(e) => return leases.iter().map(|_| Err(e.clone())).collect(),
        };
        let token = SecretBytes::copy_from(&c.middle.token);
        let took = self.leases_of(&c).await;
        let own = !matches!(self.auth, Auth::TokenFile(_));
        let ours = |l: &Lease| own && took.contains(&l.id);
        let mut results = Vec::with_capacity(leases.len());
        for lease in leases {
            results.push(match ours(lease) {
                true => Ok(()),
                false => self.revoke_by_path(&token, lease).await,
            });
        }
        if !own {
            return results;
        }
        match self.revoke_self(&token, &c).await {
            Ok(()) => results,
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "cannot revoke the token; revoking its leases one by one");
                for (lease, result) in leases.iter().zip(&mut results) {
                    if ours(lease) {
                        *result = self.revoke_by_path(&token, lease).await;
                    }
                }
                results
            }
        }
    }

    /// `PUT sys/leases/revoke/LEASE_ID`.
    async fn revoke_by_path(&self, token: &SecretBytes, lease: &Lease) -> Result<()> {
        let what = format!("revocation of lease {}", lease.id);
        let path = format!("sys/leases/revoke/{}", lease_path(&lease.id, &what)?);
        self.call(token, reqwest::Method::PUT, &path, None, &what)
            .await
            .map(drop)
    }

    /// `PUT auth/token/revoke-self` with the session of `c`, which is then
    /// dropped.
    async fn revoke_self(&self, token: &SecretBytes, c: &Arc<VaultClient>) -> Result<()> {
        let what = "revocation of the token";
        self.call(
            token,
            reqwest::Method::PUT,
            "auth/token/revoke-self",
            None,
            what,
        )
        .await?;
        self.forget_session(c).await;
        tracing::info!(source = %self.name, "token revoked, and with it the leases it took");
        Ok(())
    }
}

/// A lease id as a path under `sys/leases/revoke/`: its segments
/// percent-encoded, refused if one is empty, `.` or `..` (which would lead
/// the request elsewhere).
fn lease_path(id: &str, what: &str) -> Result<String> {
    let mut out = String::with_capacity(id.len());
    for (i, segment) in id.split('/').enumerate() {
        if matches!(segment, "" | "." | "..") {
            return Err(Error::data(format!("{what}: not a lease id")));
        }
        if i > 0 {
            out.push('/');
        }
        for b in segment.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    Ok(out)
}

/// The fields, lease and static-role rotation of a logical read's answer;
/// with `keep`, its `data` kept whole as [`Fetched::stored`].
pub(crate) fn read_fetched(body: serde_json::Value, keep: bool, what: &str) -> Result<Fetched> {
    let lease_id = body["lease_id"].as_str().unwrap_or_default().to_owned();
    let lease = (!lease_id.is_empty()).then(|| Lease {
        id: lease_id,
        duration: crate::clock::secs(body["lease_duration"].as_u64().unwrap_or(0)),
        renewable: body["renewable"].as_bool().unwrap_or(false),
    });
    let mut data = match body {
        serde_json::Value::Object(mut m) => m.remove("data").unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    if data.is_null() {
        return Err(Error::not_found(format!("{what}: no data at this path")));
    }
    let stored = keep.then(|| {
        let mut out = SecretBytes::default();
        // Writing a JSON value into memory does not fail.
        let _ = serde_json::to_writer(&mut out, &data);
        out
    });
    let rotates = static_rotation(&mut data);
    let mut f = Fetched::fields(fields_from_json(data, what)?);
    f.lease = lease;
    f.rotates = rotates;
    f.stored = stored;
    Ok(f)
}

/// The `data` of a read's answer `raw`, byte for byte as the server wrote it.
fn raw_data(raw: &[u8], what: &str) -> Result<SecretBytes> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        data: Option<&'a serde_json::value::RawValue>,
    }
    let answer: Answer = serde_json::from_slice(raw)
        .map_err(|_| Error::data(format!("{what}: answer is not JSON")))?;
    let data = answer
        .data
        .ok_or_else(|| Error::not_found(format!("{what}: no data at this path")))?;
    Ok(SecretBytes::copy_from(data.get()))
}

/// A database static role's credentials (`…/static-creds/NAME`) carry the
/// seconds until Vault rotates them (`ttl`, beside `last_vault_rotation`):
/// takes that count out of the fields, where it would change the rendered
/// file at every read, and returns when the rotation is due.
fn static_rotation(data: &mut serde_json::Value) -> Option<SystemTime> {
    let m = data.as_object_mut()?;
    if !m.contains_key("last_vault_rotation") {
        return None;
    }
    let ttl = m.remove("ttl")?.as_u64()?;
    Some(crate::clock::wall_after(
        SystemTime::now(),
        crate::clock::secs(ttl),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_become_paths_that_stay_under_revoke() {
        assert_eq!(
            lease_path("database/creds/app/Ab-1_x.y~z", "r").unwrap(),
            "database/creds/app/Ab-1_x.y~z"
        );
        assert_eq!(
            lease_path("kv/a b?c#d%", "r").unwrap(),
            "kv/a%20b%3Fc%23d%25"
        );
        for bad in ["", "a//b", "a/../b", "./a", "a/", "/a"] {
            let e = lease_path(bad, "revocation of lease x").unwrap_err();
            assert!(e.to_string().contains("not a lease id"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_static_role_ttl_near_u64_max_is_ten_years_not_an_abort() {
        let mut data = serde_json::json!({ "last_vault_rotation": "x", "ttl": u64::MAX });
        let due = static_rotation(&mut data).unwrap();
        assert!(due <= SystemTime::now() + crate::clock::MAX_SPAN);
        assert!(data.get("ttl").is_none());
    }
}

//! `check --online` for Vault: may this identity read a secret? KV secrets
//! are read and the value dropped; dynamic credentials and certificates are
//! never asked for, since asking mints them: the token's capabilities on the
//! path come from `sys/capabilities-self`, and the path's secrets engine from
//! the mount lookup (which answers 403 for a path under no mount, even to root).
//! A database or PKI role itself is not looked up: that needs other rights.

use tokio::time::Instant;

use super::{VaultAddress, VaultSource};
use crate::config::{Address, Secret};
use crate::secret::SecretBytes;
use crate::source::{paced, Error, Result, Source};

impl VaultSource {
    pub(super) async fn may_read_one(&self, secret: &Secret, deadline: Instant) -> Result<()> {
        let what = secret.address.describe();
        let Address::Vault(address) = &secret.address else {
            return Err(Error::config(format!(
                "{what}: Vault has no `{}` secrets",
                secret.address.kind()
            )));
        };
        let (path, allowed, verb): (String, &[&str], &str) = match address {
            VaultAddress::Kv { .. } => return self.fetch(secret, deadline).await.map(drop),
            VaultAddress::Read(path) => (path.clone(), &["read"], "read"),
            VaultAddress::Pki { mount, role, .. } => (
                format!("{mount}/issue/{role}"),
                &["update", "create"],
                "issue from",
            ),
        };
        let c = self.client(deadline).await?;
        let token = SecretBytes::copy_from(&c.middle.token);
        let paths = serde_json::json!({ "paths": [path] });
        let body = paced(&self.gate, deadline, &what, || {
            let paths = Some(paths.clone());
            self.call(
                &token,
                reqwest::Method::POST,
                "sys/capabilities-self",
                paths,
                &what,
            )
        })
        .await?;
        let capabilities: Vec<&str> = body
            .pointer("/data/capabilities")
            .or_else(|| body.get("capabilities"))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        let may = capabilities
            .iter()
            .any(|c| *c == "root" || allowed.contains(c));
        if !may {
            return Err(Error::denied(format!(
                "{what}: the token may not {verb} `{path}` (capabilities: {})",
                capabilities.join(", ")
            )));
        }
        let lookup = format!("sys/internal/ui/mounts/{path}");
        match paced(&self.gate, deadline, &what, || self.get(&c, &lookup, &what)).await {
            Ok(_) => Ok(()),
            Err(Error::Denied { .. } | Error::NotFound { .. } | Error::Data { .. }) => Err(
                Error::not_found(format!("{what}: no secrets engine is mounted at this path")),
            ),
            Err(e) => Err(e),
        }
    }
}

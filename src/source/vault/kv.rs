//! KV v1 and v2 reads, with the engine version of each mount looked up once
//! (`sys/internal/ui/mounts/…`), as the `vault kv` CLI does.

use tokio::time::Instant;
use vaultrs::client::VaultClient;

use super::VaultSource;
use crate::config::KvVersion;
use crate::secret::Fetched;
use crate::source::{fields_from_json, paced, Error, Result};

/// Where a KV secret is, as its address says.
pub(super) struct KvPath<'a> {
    /// The engine's mount.
    pub mount: &'a str,
    /// The secret's path under it.
    pub path: &'a str,
    /// The engine version, when the config forces it.
    pub kv_version: Option<KvVersion>,
    /// A pinned v2 version.
    pub version: Option<u64>,
}

impl VaultSource {
    /// KV engine version of `mount`: asked once per mount, as `vault kv` does.
    async fn kv_version(
        &self,
        c: &VaultClient,
        mount: &str,
        deadline: Instant,
    ) -> Result<KvVersion> {
        let mut known = self.kv_versions.lock().await;
        if let Some(v) = known.get(mount) {
            return Ok(*v);
        }
        let what = format!("mount lookup of `{mount}`");
        let path = format!("sys/internal/ui/mounts/{mount}");
        let body = paced(&self.gate, deadline, &what, || self.get(c, &path, &what)).await;
        let version = match body {
            // Servers older than the lookup: the CLI assumes v1.
            Err(Error::NotFound { .. }) => KvVersion::V1,
            Err(e) => return Err(e),
            Ok(body) => match body
                .pointer("/data/options/version")
                .and_then(|v| v.as_str())
            {
                Some("2") => KvVersion::V2,
                _ => KvVersion::V1,
            },
        };
        tracing::debug!(source = %self.name, mount, ?version, "kv engine version");
        known.insert(mount.to_owned(), version);
        Ok(version)
    }

    /// The path Vault Agent reads for `path`: on a KV v2 mount (asked of
    /// `sys/internal/ui/mounts/<path>`, as `vault kv` does), `data/` after
    /// the mount unless the path has `data/` or `metadata/` there; other
    /// paths (and servers without the lookup) as they are.
    pub(super) async fn agent_path(
        &self,
        c: &VaultClient,
        path: &str,
        what: &str,
        deadline: Instant,
    ) -> Result<String> {
        let path = path.trim_matches('/');
        let lookup = format!("mount lookup of `{path}`");
        let at = format!("sys/internal/ui/mounts/{path}");
        let body = match paced(&self.gate, deadline, &lookup, || self.get(c, &at, &lookup)).await {
            Err(Error::NotFound { .. }) => return Ok(path.to_owned()),
            other => other?,
        };
        let kv2 = body.pointer("/data/type").and_then(|t| t.as_str()) == Some("kv")
            && body
                .pointer("/data/options/version")
                .and_then(|v| v.as_str())
                == Some("2");
        let mount = body
            .pointer("/data/path")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .trim_end_matches('/');
        tracing::debug!(source = %self.name, secret = what, mount, kv2, "vault agent path");
        if !kv2 || mount.is_empty() {
            return Ok(path.to_owned());
        }
        let rest = match path.strip_prefix(mount) {
            Some("") => "",
            Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
            _ => return Ok(path.to_owned()),
        };
        Ok(match rest {
            r if r.starts_with("data/") || r.starts_with("metadata/") => path.to_owned(),
            "" => format!("{mount}/data"),
            r => format!("{mount}/data/{r}"),
        })
    }

    /// KV engine version of `mount` (the rotation drill's writes differ by it).
    pub async fn kv_engine(&self, mount: &str, deadline: Instant) -> Result<KvVersion> {
        let c = self.client(deadline).await?;
        self.kv_version(&c, mount, deadline).await
    }

    /// Reads a KV secret: the engine version from the mount unless the
    /// config says it; with v2 the version read (or the pinned one).
    pub(super) async fn fetch_kv(
        &self,
        c: &VaultClient,
        at: KvPath<'_>,
        what: &str,
        deadline: Instant,
    ) -> Result<Fetched> {
        let KvPath {
            mount,
            path,
            kv_version,
            version,
        } = at;
        let v = match kv_version {
            Some(v) => v,
            None => self.kv_version(c, mount, deadline).await?,
        };
        if v == KvVersion::V1 && version.is_some() {
            return Err(Error::data(format!(
                "{what}: `version` pins a KV v2 version, but mount `{mount}` is KV v1"
            )));
        }
        if v == KvVersion::V1 {
            let body = self
                .read(c, &format!("{mount}/{path}"), what, deadline)
                .await?;
            return kv1_fetched(body, what);
        }
        let pinned = version.map(|n| format!("?version={n}")).unwrap_or_default();
        let body = self
            .read(c, &format!("{mount}/data/{path}{pinned}"), what, deadline)
            .await?;
        kv2_fetched(body, what)
    }
}

/// The fields of a KV v1 read's answer.
pub(crate) fn kv1_fetched(mut body: serde_json::Value, what: &str) -> Result<Fetched> {
    let data = body
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    Ok(Fetched::fields(fields_from_json(data, what)?))
}

/// The fields and version of a KV v2 read's answer.
pub(crate) fn kv2_fetched(mut body: serde_json::Value, what: &str) -> Result<Fetched> {
    let data = body.pointer_mut("/data/data").map(serde_json::Value::take);
    let number = body
        .pointer("/data/metadata/version")
        .and_then(serde_json::Value::as_u64);
    match data {
        None | Some(serde_json::Value::Null) => Err(Error::not_found(format!(
            "{what}: version {} is deleted",
            number.map_or_else(|| "?".to_owned(), |n| n.to_string())
        ))),
        Some(data) => {
            let mut f = Fetched::fields(fields_from_json(data, what)?);
            f.version = number.map(|n| n.to_string());
            f.origin.created = body
                .pointer("/data/metadata/created_time")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            Ok(f)
        }
    }
}

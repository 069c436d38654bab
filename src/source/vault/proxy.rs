//! Vault's read API through the local proxy, for `vault`/`bao` and the SDKs:
//! a KV secret at `/v1/MOUNT/data/PATH` (KV v2's answer, unless the config
//! says v1) and `/v1/MOUNT/PATH` (KV v1's), a logical read at `/v1/PATH`
//! (with its lease), and the calls Vault clients make before a read: the KV
//! mount lookup (`sys/internal/ui/mounts/…`), `auth/token/lookup-self` and
//! `sys/health` (the one answered without the token, as in Vault).

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::VaultAddress;
use crate::config::{Address, Config, KvVersion, Secret};
use crate::render::format;
use crate::secret::SecretBytes;
use crate::source::proxy_api::Entry;
use crate::source::proxy_api::{
    created, version_number, Api, Field, Found, ProxyApi, Routed, Routes,
};

/// Vault's API, its backend's `proxy` in the registry (routed in the order
/// of [`crate::source::PROXY_APIS`]).
pub(crate) static PROXY_API: VaultApi = VaultApi;

/// Vault's read API.
pub(crate) struct VaultApi;

/// A KV v2 read.
const KV2: u8 = 0;
/// A KV v1 or logical read.
const LOGICAL: u8 = 1;

/// Where Vault clients ask for a config's secrets.
struct VaultRoutes {
    /// Path under `/v1/`: KV v2 (`MOUNT/data/PATH`), KV v1 (`MOUNT/PATH`)
    /// and logical reads, with the form of the answer.
    by_path: HashMap<String, (usize, u8)>,
    /// The KV mounts, with the version each is served as.
    mounts: Vec<(String, KvVersion)>,
}

impl ProxyApi for VaultApi {
    fn errors(&self) -> Api {
        Api::Vault
    }

    fn index(&self, config: &Config) -> Box<dyn Routes> {
        let mut by_path = HashMap::new();
        let mut mounts = Vec::new();
        for (i, s) in config.secrets.iter().enumerate() {
            match &s.address {
                Address::Vault(VaultAddress::Kv {
                    mount,
                    path,
                    kv_version,
                    ..
                }) => {
                    if *kv_version != Some(KvVersion::V1) {
                        let kv2 = format!("{mount}/data/{path}");
                        by_path.entry(kv2).or_insert((i, KV2));
                    }
                    by_path
                        .entry(format!("{mount}/{path}"))
                        .or_insert((i, LOGICAL));
                    // A KV v2 read is served whatever engine the backend runs.
                    let version = kv_version.unwrap_or(KvVersion::V2);
                    if !mounts.iter().any(|(m, _)| m == mount) {
                        mounts.push((mount.clone(), version));
                    }
                }
                Address::Vault(VaultAddress::Read(p)) => {
                    by_path.entry(p.clone()).or_insert((i, LOGICAL));
                }
                _ => {}
            }
        }
        Box::new(VaultRoutes { by_path, mounts })
    }

    fn body(&self, _: &Secret, entry: &Entry, form: u8) -> Result<SecretBytes, format::Error> {
        let fields = &entry.fetched.fields;
        let data = fields
            .iter()
            .map(|(k, v)| (k.as_str(), Field(v)))
            .collect::<BTreeMap<_, _>>();
        let mut out = SecretBytes::default();
        let written = if form == KV2 {
            let metadata = Metadata {
                created_time: humantime::format_rfc3339_nanos(created(&entry.fetched, entry))
                    .to_string(),
                custom_metadata: None,
                deletion_time: "",
                destroyed: false,
                version: version_number(entry),
            };
            serde_json::to_writer(&mut out, &VaultBody::new(Kv2Data { data, metadata }))
        } else {
            let lease = entry.fetched.lease.as_ref();
            serde_json::to_writer(
                &mut out,
                &VaultBody {
                    lease_id: lease.map_or("", |l| l.id.as_str()),
                    renewable: lease.is_some_and(|l| l.renewable),
                    lease_duration: lease.map_or(0, |l| l.duration.as_secs()),
                    ..VaultBody::new(data)
                },
            )
        };
        written.map_err(|e| format::Error::encode("json", e))?;
        Ok(out)
    }
}

impl Routes for VaultRoutes {
    fn route<'p>(&self, path: &'p str, _: Option<&'p str>) -> Routed<'p> {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Routed::Other;
        };
        let rest = rest.trim_end_matches('/');
        let answer = |open, body| Routed::Found(Found::Answer { open, body });
        match rest {
            "sys/health" => return answer(true, health_body(SystemTime::now())),
            "auth/token/lookup-self" => return answer(false, lookup_self_body()),
            _ => {}
        }
        if let Some(under) = rest.strip_prefix("sys/internal/ui/mounts/") {
            if let Some((mount, version)) = self.mount(under) {
                return answer(false, mount_body(mount, version));
            }
        }
        match self.by_path.get(rest) {
            Some(&(secret, form)) => Routed::Found(Found::Secret {
                secret,
                form,
                refresh: false,
                pin: None,
            }),
            None => Routed::Missed(rest),
        }
    }
}

impl VaultRoutes {
    /// The configured KV mount that `path` is at or under (whole segments).
    fn mount(&self, path: &str) -> Option<(&str, KvVersion)> {
        self.mounts.iter().find_map(|(mount, version)| {
            let rest = path.strip_prefix(mount.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((mount.as_str(), *version))
        })
    }
}

#[derive(Serialize)]
struct Metadata {
    created_time: String,
    custom_metadata: Option<()>,
    deletion_time: &'static str,
    destroyed: bool,
    version: u64,
}

#[derive(Serialize)]
struct Kv2Data<'a> {
    data: BTreeMap<&'a str, Field<'a>>,
    metadata: Metadata,
}

#[derive(Serialize)]
struct VaultBody<'a, D: Serialize> {
    request_id: &'static str,
    lease_id: &'a str,
    renewable: bool,
    lease_duration: u64,
    data: D,
    wrap_info: Option<()>,
    warnings: Option<()>,
    auth: Option<()>,
}

impl<D: Serialize> VaultBody<'_, D> {
    /// `data` in Vault's response envelope, without a lease.
    fn new(data: D) -> Self {
        VaultBody {
            request_id: "",
            lease_id: "",
            renewable: false,
            lease_duration: 0,
            data,
            wrap_info: None,
            warnings: None,
            auth: None,
        }
    }
}

/// `data` in Vault's response envelope, as JSON.
fn envelope(data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&VaultBody::new(data)).unwrap_or_default()
}

/// The mount lookup's answer for a KV `mount` of `version`: the CLI reads
/// `path` and `options.version`.
fn mount_body(mount: &str, version: KvVersion) -> Vec<u8> {
    let version = match version {
        KvVersion::V1 => "1",
        KvVersion::V2 => "2",
    };
    envelope(serde_json::json!({
        "type": "kv",
        "path": format!("{mount}/"),
        "description": "served by the ramsecrets proxy",
        "options": { "version": version },
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
        "accessor": "",
        "uuid": "",
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
    }))
}

/// `lookup-self` of the proxy token: a token that never expires, with no
/// policies of the backend's (the token itself is not echoed).
fn lookup_self_body() -> Vec<u8> {
    envelope(serde_json::json!({
        "id": "",
        "accessor": "",
        "display_name": "ramsecrets-proxy",
        "policies": ["ramsecrets-proxy"],
        "path": "",
        "meta": null,
        "entity_id": "",
        "num_uses": 0,
        "orphan": true,
        "renewable": false,
        "ttl": 0,
        "creation_ttl": 0,
        "explicit_max_ttl": 0,
        "expire_time": null,
        "type": "service",
    }))
}

/// `sys/health` of an unsealed, active server, at `now`.
fn health_body(now: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "initialized": true,
        "sealed": false,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "version": env!("CARGO_PKG_VERSION"),
        "cluster_name": "ramsecrets-proxy",
        "cluster_id": "",
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests;

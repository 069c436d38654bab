//! The proxy's answers as pure functions: the JSON in the shapes the AWS
//! Secrets Manager Agent (`GetSecretValue`) and Vault (KV v2, KV v1, logical
//! read) give, so existing clients read them unchanged (which secret a request
//! names is [`super::route`]). Bodies are built straight into [`SecretBytes`].

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;

use crate::config::{Address, KvVersion, Secret};
use crate::engine::snapshot::Entry;
use crate::render::format;
use crate::secret::{Fetched, SecretBytes};

/// Response shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// AWS GetSecretValue.
    Aws,
    /// AWS GetSecretValue of the `AWSPREVIOUS` version (secrets with `previous: true`).
    AwsPrevious,
    /// Parameter Store GetParameter.
    Ssm,
    /// Vault KV v2 read.
    Kv2,
    /// Vault KV v1 or logical read.
    Logical,
}

/// A field value written as JSON text: the text itself, or base64 when binary.
struct Field<'a>(&'a SecretBytes);

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.expose_str() {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(self.0.expose()),
            )),
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When `fetched` was made: as its backend says, else when the proxy first
/// held this value (the `file` source, or a backend that does not say).
fn created(fetched: &Fetched, entry: &Entry) -> SystemTime {
    fetched.origin.created.unwrap_or(entry.changed_at)
}

/// The version a client sees: the backend's, or the store's revision.
pub fn version(entry: &Entry) -> String {
    entry
        .fetched
        .version
        .clone()
        .unwrap_or_else(|| format!("rev-{}", entry.revision))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AwsBody<'a> {
    #[serde(rename = "ARN")]
    arn: String,
    name: &'a str,
    version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<Field<'a>>,
    version_stages: [&'a str; 1],
    created_date: f64,
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

/// `data` in Vault's response envelope.
fn envelope(data: serde_json::Value) -> Vec<u8> {
    let body = VaultBody {
        request_id: "",
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data,
        wrap_info: None,
        warnings: None,
        auth: None,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The mount lookup's answer for a KV `mount` of `version`: the CLI reads
/// `path` and `options.version`.
pub fn mount_body(mount: &str, version: KvVersion) -> Vec<u8> {
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
pub fn lookup_self_body() -> Vec<u8> {
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
pub fn health_body(now: SystemTime) -> Vec<u8> {
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

/// The answer body for `secret` in `shape`, from its latest `entry`.
pub fn body(secret: &Secret, entry: &Entry, shape: Shape) -> Result<SecretBytes, format::Error> {
    let fields = &entry.fetched.fields;
    let data = || {
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), Field(v)))
            .collect::<BTreeMap<_, _>>()
    };
    let mut out = SecretBytes::default();
    let written = match shape {
        Shape::Ssm => return crate::source::ssm_proxy::answer(secret, entry),
        Shape::Aws | Shape::AwsPrevious => {
            let (fetched, stage) = match (shape, &entry.fetched.previous) {
                (Shape::AwsPrevious, Some(previous)) => (&**previous, "AWSPREVIOUS"),
                (Shape::AwsPrevious, None) => {
                    return Err(format::Error::MissingField {
                        field: "AWSPREVIOUS".into(),
                        available: "AWSCURRENT".into(),
                    })
                }
                _ => (&*entry.fetched, "AWSCURRENT"),
            };
            let fields = &fetched.fields;
            // With `key`, the one field as the secret string; else the fields as a JSON object.
            let value = match (&secret.key, &fetched.stored) {
                (Some(k), _) => format::raw(fields, Some(k))?,
                // An AWS secret as stored, as the AWS agent gives it.
                (None, Some(stored)) => stored.clone(),
                (None, None)
                    if matches!(secret.address, Address::SecretId { .. }) && fields.len() == 1 =>
                {
                    format::raw(fields, None)?
                }
                (None, None) => {
                    let mut json = SecretBytes::default();
                    serde_json::to_writer(&mut json, &format::text_fields(fields)?)
                        .map_err(|e| format::Error::encode("json", e))?;
                    json
                }
            };
            let name = match &secret.address {
                Address::SecretId { id, .. } => id.as_str(),
                _ => secret.name.as_str(),
            };
            let text = value.expose_str().is_some();
            serde_json::to_writer(
                &mut out,
                &AwsBody {
                    arn: fetched.origin.arn.clone().unwrap_or_else(|| {
                        format!("arn:aws:secretsmanager:local:000000000000:secret:{name}")
                    }),
                    name,
                    version_id: fetched.version.clone().unwrap_or_else(|| version(entry)),
                    secret_string: text.then_some(Field(&value)),
                    secret_binary: (!text).then_some(Field(&value)),
                    version_stages: [stage],
                    created_date: unix(created(fetched, entry)),
                },
            )
        }
        Shape::Kv2 => serde_json::to_writer(
            &mut out,
            &VaultBody {
                request_id: "",
                lease_id: "",
                renewable: false,
                lease_duration: 0,
                data: Kv2Data {
                    data: data(),
                    metadata: Metadata {
                        created_time: humantime::format_rfc3339_nanos(created(
                            &entry.fetched,
                            entry,
                        ))
                        .to_string(),
                        custom_metadata: None,
                        deletion_time: "",
                        destroyed: false,
                        version: entry
                            .fetched
                            .version
                            .as_deref()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(entry.revision),
                    },
                },
                wrap_info: None,
                warnings: None,
                auth: None,
            },
        ),
        Shape::Logical => {
            let lease = entry.fetched.lease.as_ref();
            serde_json::to_writer(
                &mut out,
                &VaultBody {
                    request_id: "",
                    lease_id: lease.map_or("", |l| l.id.as_str()),
                    renewable: lease.is_some_and(|l| l.renewable),
                    lease_duration: lease.map_or(0, |l| l.duration.as_secs()),
                    data: data(),
                    wrap_info: None,
                    warnings: None,
                    auth: None,
                },
            )
        }
    };
    written.map_err(|e| format::Error::encode("json", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests;

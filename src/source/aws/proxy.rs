//! AWS Secrets Manager through the local proxy, as the AWS Secrets Manager
//! Agent serves it: `GET /secretsmanager/get?secretId=ID` (also
//! `/v1/ID`, after Vault's paths) answers GetSecretValue's JSON. Every
//! configured secret answers to its name, and a `secret_id` secret to its id
//! too: the value as stored, its `key` field, or the fields as a JSON object.
//! `versionStage`/`versionId` pin `AWSCURRENT`, or `AWSPREVIOUS` for secrets
//! kept with `previous: true`; `refreshNow=true` fetches first.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::AwsAddress;
use super::{AWS_CURRENT, AWS_PREVIOUS};
use crate::config::{Address, Config, Secret};
use crate::render::format;
use crate::secret::SecretBytes;
use crate::source::proxy_api::Entry;
use crate::source::proxy_api::{
    created, query_pairs, unix, version, Api, Field, Found, Pin, ProxyApi, Refusal, Routed, Routes,
};

/// The AWS agent's API, its backend's `proxy` in the registry (routed in
/// the order of [`crate::source::PROXY_APIS`]).
pub(crate) static PROXY_API: AwsApi = AwsApi;

/// The AWS Secrets Manager Agent's API.
pub(crate) struct AwsApi;

/// The agent's path for one secret.
const PATH: &str = "/secretsmanager/get";

/// `AWSCURRENT`.
const CURRENT: u8 = 0;
/// `AWSPREVIOUS`, of secrets kept with `previous: true`.
const PREVIOUS: u8 = 1;

/// Secret name and `secret_id` of each configured secret.
struct AwsRoutes {
    by_id: HashMap<String, usize>,
}

impl ProxyApi for AwsApi {
    fn errors(&self) -> Api {
        Api::Aws
    }

    fn index(&self, config: &Config) -> Box<dyn Routes> {
        let mut by_id = HashMap::new();
        for (i, s) in config.secrets.iter().enumerate() {
            by_id.entry(s.name.clone()).or_insert(i);
            if let Address::AwsSecretsManager(AwsAddress::SecretId { id, .. }) = &s.address {
                by_id.entry(id.clone()).or_insert(i);
            }
        }
        Box::new(AwsRoutes { by_id })
    }

    fn pinned(
        &self,
        secret: &Secret,
        pin: &Pin,
        held: &dyn Fn() -> Option<Arc<Entry>>,
    ) -> Result<u8, Refusal> {
        // The held versions, looked up only for a read pinned by stage or id.
        let current = || held().map(|e| version(&e));
        let previous = || {
            let entry = held()?;
            let previous = entry.fetched.previous.as_ref()?;
            Some(previous.version.clone().unwrap_or_default())
        };
        match (pin.label.as_deref(), pin.id.as_deref()) {
            (None | Some(AWS_CURRENT), None) => Ok(CURRENT),
            (Some(AWS_PREVIOUS), None) if previous().is_some() => Ok(PREVIOUS),
            (None | Some(AWS_CURRENT), Some(id)) if Some(id) == current().as_deref() => Ok(CURRENT),
            (None | Some(AWS_PREVIOUS), Some(id)) if Some(id) == previous().as_deref() => {
                Ok(PREVIOUS)
            }
            _ => Err(no_version(&secret.name)),
        }
    }

    fn body(&self, secret: &Secret, entry: &Entry, form: u8) -> Result<SecretBytes, format::Error> {
        let (fetched, stage) = match (form, &entry.fetched.previous) {
            (PREVIOUS, Some(previous)) => (&**previous, AWS_PREVIOUS),
            (PREVIOUS, None) => {
                return Err(format::Error::MissingField {
                    field: AWS_PREVIOUS.into(),
                    available: AWS_CURRENT.into(),
                })
            }
            _ => (&*entry.fetched, AWS_CURRENT),
        };
        let fields = &fetched.fields;
        let id = match &secret.address {
            Address::AwsSecretsManager(AwsAddress::SecretId { id, .. }) => Some(id.as_str()),
            _ => None,
        };
        // With `key`, the one field as the secret string; else the fields as a JSON object.
        let value = match (&secret.key, &fetched.stored) {
            (Some(k), _) => format::raw(fields, Some(k))?,
            // An AWS secret as stored, as the AWS agent gives it.
            (None, Some(stored)) => stored.clone(),
            (None, None) if id.is_some() && fields.len() == 1 => format::raw(fields, None)?,
            (None, None) => {
                let mut json = SecretBytes::default();
                serde_json::to_writer(&mut json, &format::text_fields(fields)?)
                    .map_err(|e| format::Error::encode("json", e))?;
                json
            }
        };
        let name = id.unwrap_or(&secret.name);
        let text = value.expose_str().is_some();
        let mut out = SecretBytes::default();
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
        .map_err(|e| format::Error::encode("json", e))?;
        Ok(out)
    }
}

impl Routes for AwsRoutes {
    fn route<'p>(&self, path: &'p str, query: Option<&'p str>) -> Routed<'p> {
        let by_path = match path.strip_prefix("/v1/") {
            Some(rest) => match self.by_id.get(rest.trim_end_matches('/')) {
                Some(&i) => Some(i),
                None => return Routed::Other,
            },
            None if path == PATH => None,
            None => return Routed::Other,
        };
        let (mut id, mut label, mut version_id, mut refresh) = (None, None, None, false);
        for (k, v) in query_pairs(query) {
            match &*k {
                "secretId" => id = Some(v),
                "versionStage" => label = Some(v.into_owned()),
                "versionId" => version_id = Some(v.into_owned()),
                "refreshNow" => refresh = v == "true",
                _ => {}
            }
        }
        let secret = match (by_path, id.filter(|id| !id.is_empty())) {
            (Some(i), _) => i,
            (None, None) => return Routed::Found(Found::Refused(missing_id)),
            (None, Some(id)) => match self.by_id.get(&*id) {
                Some(&i) => i,
                None => return Routed::Found(Found::Missing(id.into_owned())),
            },
        };
        let pin = match (label.as_deref(), &version_id) {
            (None | Some(AWS_CURRENT), None) => None,
            _ => Some(Pin {
                label,
                id: version_id,
            }),
        };
        Routed::Found(Found::Secret {
            secret,
            form: CURRENT,
            refresh,
            pin,
        })
    }
}

/// `/secretsmanager/get` without `secretId`.
fn missing_id() -> Refusal {
    Refusal::new(400, "InvalidParameterException", "secretId is required")
}

/// The secret exists, this version or stage of it is not kept.
fn no_version(id: &str) -> Refusal {
    Refusal::new(
        404,
        "ResourceNotFoundException",
        format!("secret `{id}` has no such version or stage here: {AWS_CURRENT} is served, and {AWS_PREVIOUS} with `previous: true`"),
    )
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

#[cfg(test)]
mod tests;

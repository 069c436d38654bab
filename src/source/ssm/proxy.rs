//! Parameter Store through the local proxy, as the AWS Parameters and Secrets
//! extension serves it: `GET /systemsmanager/parameters/get?name=NAME`
//! (`&withDecryption=true`; a pinned one as `version=N`, `label=L`, or the
//! `NAME:N` / `NAME:L` selector) answers GetParameter's JSON,
//! `{"Parameter": {…, "Value": …, "Version": N}, "ResultMetadata": {}}`.
//! Only configured `parameter` secrets are served, by their parameter name
//! or secret name, with the selector they are configured with. ramsecrets
//! keeps a parameter's value, not its type: `Type` is always `SecureString`,
//! and the value is the decrypted one whatever `withDecryption` says. `ARN`
//! and `LastModifiedDate` are the service's own when the backend gave them
//! (a `file` source gives none: a local ARN and the time the value was read).

use std::collections::HashMap;

use serde::Serialize;

use super::address::{Parameter, Selector, SsmAddress};
use crate::config::{Address, Config, Secret};
use crate::render::format;
use crate::secret::SecretBytes;
use crate::source::proxy_api::Entry;
use crate::source::proxy_api::{query_pairs, Api, Found, ProxyApi, Routed, Routes};

/// The extension's API, its backend's `proxy` in the registry (routed in
/// the order of [`crate::source::PROXY_APIS`]).
pub(crate) static PROXY_API: SsmApi = SsmApi;

/// The Parameters and Secrets extension's API for parameters.
pub(crate) struct SsmApi;

/// The extension's path for one parameter.
const PATH: &str = "/systemsmanager/parameters/get";

/// Parameter name and secret name of `parameter` secrets, with the selector
/// each is configured with (as a request gives it).
struct SsmRoutes {
    parameters: HashMap<String, Vec<(Option<String>, usize)>>,
}

impl ProxyApi for SsmApi {
    fn errors(&self) -> Api {
        Api::Aws
    }

    fn index(&self, config: &Config) -> Box<dyn Routes> {
        let mut parameters: HashMap<String, Vec<_>> = HashMap::new();
        for (i, s) in config.secrets.iter().enumerate() {
            if let Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Name {
                name,
                selector,
            })) = &s.address
            {
                for name in [name, &s.name] {
                    let served = (shown(selector), i);
                    parameters.entry(name.clone()).or_default().push(served);
                }
            }
        }
        Box::new(SsmRoutes { parameters })
    }

    fn body(&self, secret: &Secret, entry: &Entry, _: u8) -> Result<SecretBytes, format::Error> {
        answer(secret, entry)
    }
}

impl Routes for SsmRoutes {
    fn route<'p>(&self, path: &'p str, query: Option<&'p str>) -> Routed<'p> {
        if path != PATH {
            return Routed::Other;
        }
        Routed::Found(match find(query, |n, s| self.parameter(n, s)) {
            Ok(secret) => Found::Secret {
                secret,
                form: 0,
                refresh: false,
                pin: None,
            },
            Err(what) => Found::Missing(what),
        })
    }
}

impl SsmRoutes {
    /// The secret configured for parameter (or secret) `name` with `selector`.
    fn parameter(&self, name: &str, selector: Option<&str>) -> Option<usize> {
        let configured = self.parameters.get(name)?;
        configured
            .iter()
            .find(|(s, _)| s.as_deref() == selector)
            .map(|(_, i)| *i)
    }
}

/// The configured secret a query asks for, as `lookup(name, selector)` finds
/// it; else what it asked for, to say that it is not configured.
fn find(
    query: Option<&str>,
    lookup: impl Fn(&str, Option<&str>) -> Option<usize>,
) -> Result<usize, String> {
    let (mut name, mut pinned) = (None, None);
    for (k, v) in query_pairs(query) {
        match &*k {
            "name" => name = Some(v.into_owned()),
            "version" | "label" => pinned = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(asked) = name.filter(|n| !n.is_empty()) else {
        return Err("(a request without `name`)".into());
    };
    let (name, selector) = match (&pinned, split(&asked)) {
        (Some(p), (name, _)) => (name, Some(p.as_str())),
        (None, (name, selector)) => (name, selector),
    };
    lookup(name, selector).ok_or(asked)
}

/// `name:selector` split at the selector (an ARN's own colons are not one).
fn split(asked: &str) -> (&str, Option<&str>) {
    match asked.rsplit_once(':') {
        Some((name, sel)) if !sel.starts_with("parameter/") && !name.is_empty() => {
            (name, Some(sel))
        }
        _ => (asked, None),
    }
}

/// A configured selector as a request gives it.
fn shown(selector: &Option<Selector>) -> Option<String> {
    match selector {
        None => None,
        Some(Selector::Version(v)) => Some(v.to_string()),
        Some(Selector::Label(l)) => Some(l.clone()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Answer<'a> {
    parameter: Body<'a>,
    result_metadata: Empty,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    #[serde(rename = "ARN")]
    arn: String,
    data_type: &'static str,
    last_modified_date: String,
    name: &'a str,
    selector: Option<String>,
    source_result: Option<()>,
    r#type: &'static str,
    value: &'a str,
    version: u64,
}

/// The answer for `secret` from its latest `entry`: the value as stored, or
/// its `key` field.
fn answer(secret: &Secret, entry: &Entry) -> Result<SecretBytes, format::Error> {
    let fetched = &entry.fetched;
    let value = match (&secret.key, &fetched.stored) {
        (None, Some(stored)) => stored.clone(),
        (key, _) => format::raw(&fetched.fields, key.as_deref())?,
    };
    let field = secret.key.as_deref().unwrap_or(super::super::VALUE_FIELD);
    let Some(text) = value.expose_str() else {
        return Err(format::Error::Binary {
            field: field.to_owned(),
        });
    };
    let (name, selector) = match &secret.address {
        Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Name { name, selector })) => {
            (name.as_str(), selector)
        }
        _ => (secret.name.as_str(), &None),
    };
    // The backend's own ARN and time when it gave them (the `file` source
    // gives none: then a local ARN and the time the value was read).
    let arn = match (&fetched.origin.arn, name.strip_prefix('/')) {
        (Some(arn), _) => arn.clone(),
        _ if name.starts_with("arn:") => name.to_owned(),
        (None, Some(rest)) => format!("arn:aws:ssm:local:000000000000:parameter/{rest}"),
        (None, None) => format!("arn:aws:ssm:local:000000000000:parameter/{name}"),
    };
    let modified = fetched.origin.created.unwrap_or(entry.changed_at);
    let body = Answer {
        parameter: Body {
            arn,
            data_type: "text",
            last_modified_date: humantime::format_rfc3339_millis(modified).to_string(),
            name,
            selector: shown(selector).map(|s| format!(":{s}")),
            source_result: None,
            r#type: "SecureString",
            value: text,
            version: (fetched.version.as_deref())
                .and_then(|v| v.parse().ok())
                .unwrap_or(entry.revision),
        },
        result_metadata: Empty {},
    };
    let mut out = SecretBytes::default();
    serde_json::to_writer(&mut out, &body).map_err(|e| format::Error::encode("json", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Fetched;
    use std::path::Path;

    #[test]
    fn finds_configured_parameters_by_name_and_selector() {
        let c = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: key, parameter: /app/key }\n  - { name: old, parameter: /app/key, version: 2 }\n  - { name: all, parameters_by_path: /app }\n",
            Path::new("/"),
        )
        .unwrap();
        let routes = PROXY_API.index(&c);
        let find = |q: &str| match routes.route(PATH, Some(q)) {
            Routed::Found(Found::Secret { secret, .. }) => Ok(secret),
            Routed::Found(Found::Missing(what)) => Err(what),
            _ => panic!("{q}: not routed to a secret or a refusal"),
        };
        assert!(matches!(routes.route("/v1/app/key", None), Routed::Other));
        assert_eq!(find("name=%2Fapp%2Fkey&withDecryption=true"), Ok(0));
        assert_eq!(find("name=key"), Ok(0));
        assert_eq!(find("name=/app/key:2"), Ok(1));
        assert_eq!(find("name=/app/key&version=2"), Ok(1));
        assert_eq!(find("name=/app/key:3"), Err("/app/key:3".into()));
        assert_eq!(find("name=/app"), Err("/app".into()));
        assert!(find("withDecryption=true").is_err());
        let arn = "arn:aws:ssm:us-east-1:1:parameter/app/key";
        assert_eq!(split(arn), (arn, None));
        assert_eq!(split(&format!("{arn}:prod")), (arn, Some("prod")));
    }

    #[test]
    fn answers_in_the_shape_of_get_parameter() {
        let c = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: key, parameter: /app/key, label: prod }\n",
            Path::new("/"),
        )
        .unwrap();
        let mut fetched = Fetched::fields(Default::default());
        fetched.stored = Some(SecretBytes::copy_from("s3cr3t"));
        fetched.version = Some("4".into());
        let entry = Entry {
            fetched: std::sync::Arc::new(fetched),
            changed_at: std::time::UNIX_EPOCH,
            revision: 1,
        };
        let body = answer(&c.secrets[0], &entry).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body.expose()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "Parameter": {
                    "ARN": "arn:aws:ssm:local:000000000000:parameter/app/key",
                    "DataType": "text",
                    "LastModifiedDate": "1970-01-01T00:00:00.000Z",
                    "Name": "/app/key",
                    "Selector": ":prod",
                    "SourceResult": null,
                    "Type": "SecureString",
                    "Value": "s3cr3t",
                    "Version": 4
                },
                "ResultMetadata": {}
            })
        );
    }
}

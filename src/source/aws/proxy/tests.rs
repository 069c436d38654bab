//! Tests of the AWS agent's API through the proxy: where its clients find a
//! secret, which version a pinned request gets, and the answer's shape.

use std::time::UNIX_EPOCH;

use super::*;
use crate::secret::{Fetched, Fields};
use crate::source::proxy_api::tests::config;

/// The secret and whether a fetch comes first, with the version pinned.
type Asked = (usize, bool, Option<Pin>);

/// What the routes make of `path` and `query`.
fn routed(routes: &dyn Routes, path: &str, query: &str) -> Result<Asked, String> {
    match routes.route(path, Some(query)) {
        Routed::Found(Found::Secret {
            secret,
            form: CURRENT,
            refresh,
            pin,
        }) => Ok((secret, refresh, pin)),
        Routed::Found(Found::Missing(what)) => Err(format!("not found: {what}")),
        Routed::Found(Found::Refused(refusal)) => {
            Err(String::from_utf8(refusal().body(Api::Aws)).unwrap())
        }
        Routed::Other => Err("(other)".into()),
        _ => Err("(something else)".into()),
    }
}

#[test]
fn routes_only_configured_secrets_by_id_or_name() {
    let routes = PROXY_API.index(&config());
    let r = |p, q| routed(&*routes, p, q);
    assert_eq!(
        r(PATH, "secretId=prod%2Fapi&refreshNow=true"),
        Ok((2, true, None))
    );
    assert_eq!(r(PATH, "secretId=db"), Ok((0, false, None)));
    assert_eq!(
        r("/v1/prod/api", "versionStage=AWSCURRENT"),
        Ok((2, false, None))
    );
    assert_eq!(
        r("/v1/prod/api/", "versionStage=AWSPREVIOUS&versionId=v1"),
        Ok((
            2,
            false,
            Some(Pin {
                label: Some("AWSPREVIOUS".into()),
                id: Some("v1".into())
            })
        ))
    );
    assert_eq!(r(PATH, "secretId=nope"), Err("not found: nope".into()));
    let missing = r#"{"__type":"InvalidParameterException","message":"secretId is required"}"#;
    assert_eq!(r(PATH, "versionStage=AWSCURRENT"), Err(missing.into()));
    assert_eq!(r(PATH, "secretId="), Err(missing.into()));
    // Paths of other APIs, and ids nothing configures, are left to others.
    for path in [
        "/v1/secret/data/app/db",
        "/v1/nope",
        "/etc/passwd",
        "/secretsmanager/get/x",
    ] {
        assert_eq!(r(path, "secretId=db"), Err("(other)".into()), "{path}");
    }
}

#[test]
fn the_first_configured_secret_answers_an_id_given_twice() {
    let c = crate::config::Config::parse(
        "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: a, read: x/y }\n  - { name: d, secret_id: a }\n  - { name: e, secret_id: prod/x }\n  - { name: f, secret_id: prod/x }\n",
        std::path::Path::new("/"),
    )
    .unwrap();
    let routes = PROXY_API.index(&c);
    for (q, want) in [("secretId=a", 0), ("secretId=d", 1), ("secretId=prod/x", 2)] {
        assert_eq!(routed(&*routes, PATH, q).map(|a| a.0), Ok(want), "{q}");
    }
}

/// An entry at version `v1`, with `v0` as `AWSPREVIOUS` when `previous`.
fn entry(previous: bool) -> Arc<Entry> {
    let mut fields = Fields::new();
    fields.insert("password".into(), SecretBytes::copy_from("p\"w"));
    let mut fetched = Fetched::fields(fields.clone());
    fetched.version = Some("v1".into());
    if previous {
        let mut old = Fetched::fields(fields);
        old.version = Some("v0".into());
        fetched.previous = Some(Box::new(old));
    }
    Arc::new(Entry {
        fetched: Arc::new(fetched),
        changed_at: UNIX_EPOCH,
        revision: 1,
    })
}

#[test]
fn a_pinned_request_gets_the_version_held_or_a_refusal() {
    let c = config();
    let api = &PROXY_API;
    let pinned = |label: Option<&str>, id: Option<&str>, previous: bool| {
        let pin = Pin {
            label: label.map(Into::into),
            id: id.map(Into::into),
        };
        let held = entry(previous);
        api.pinned(&c.secrets[2], &pin, &|| Some(held.clone()))
            .map_err(|r| r.status)
    };
    assert_eq!(pinned(Some("AWSCURRENT"), Some("v1"), false), Ok(CURRENT));
    assert_eq!(pinned(None, Some("v1"), false), Ok(CURRENT));
    assert_eq!(pinned(Some("AWSPREVIOUS"), None, true), Ok(PREVIOUS));
    assert_eq!(pinned(None, Some("v0"), true), Ok(PREVIOUS));
    assert_eq!(pinned(Some("AWSPREVIOUS"), None, false), Err(404));
    assert_eq!(pinned(Some("AWSCURRENT"), Some("v0"), true), Err(404));
    assert_eq!(pinned(Some("AWSPENDING"), None, true), Err(404));
    let refused = api.pinned(
        &c.secrets[2],
        &Pin {
            label: Some("x".into()),
            id: None,
        },
        &|| None,
    );
    let body = String::from_utf8(refused.unwrap_err().body(Api::Aws)).unwrap();
    assert!(
        body.contains("secret `api` has no such version or stage here"),
        "{body}"
    );
}

#[test]
fn bodies_have_the_shape_of_get_secret_value() {
    let c = config();
    let held = entry(true);
    let body = |secret: usize, form| {
        let b = PROXY_API.body(&c.secrets[secret], &held, form).unwrap();
        serde_json::from_slice::<serde_json::Value>(b.expose()).unwrap()
    };
    let aws = body(2, CURRENT);
    assert_eq!(aws["Name"], "prod/api");
    assert_eq!(aws["SecretString"], "p\"w");
    assert_eq!(aws["VersionId"], "v1");
    assert_eq!(aws["VersionStages"][0], "AWSCURRENT");
    assert_eq!(
        aws["ARN"],
        "arn:aws:secretsmanager:local:000000000000:secret:prod/api"
    );
    let previous = body(2, PREVIOUS);
    assert_eq!(previous["VersionId"], "v0");
    assert_eq!(previous["VersionStages"][0], "AWSPREVIOUS");
    // Any other secret, by its name: its fields as a JSON object.
    let kv = body(0, CURRENT);
    assert_eq!(kv["Name"], "db");
    assert_eq!(kv["SecretString"], r#"{"password":"p\"w"}"#);
    let none = PROXY_API.body(&c.secrets[2], &entry(false), PREVIOUS);
    assert!(none.is_err());
}

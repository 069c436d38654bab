//! Tests of Vault's API through the proxy: where its clients find a secret,
//! and the shapes of its answers.

use super::*;
use crate::secret::{Fetched, Fields};
use crate::source::proxy_api::tests::config;

/// What the routes of `config` make of `path`: the secret and form, or what
/// was missed.
fn routed(routes: &dyn Routes, path: &str) -> Result<(usize, u8), String> {
    match routes.route(path, None) {
        Routed::Found(Found::Secret { secret, form, .. }) => Ok((secret, form)),
        Routed::Missed(what) => Err(what.to_owned()),
        Routed::Other => Err("(other)".into()),
        Routed::Found(_) => Err("(an answer)".into()),
    }
}

/// The JSON answer that `path` gets without a secret, and whether it is
/// given without the token.
fn answered(routes: &dyn Routes, path: &str) -> Option<(bool, serde_json::Value)> {
    match routes.route(path, None) {
        Routed::Found(Found::Answer { open, body }) => {
            Some((open, serde_json::from_slice(&body).unwrap()))
        }
        _ => None,
    }
}

#[test]
fn routes_only_configured_secrets() {
    let routes = PROXY_API.index(&config());
    let r = |p| routed(&*routes, p);
    assert_eq!(r("/v1/secret/data/app/db"), Ok((0, KV2)));
    assert_eq!(r("/v1/secret/app/db/"), Ok((0, LOGICAL)));
    assert_eq!(r("/v1/kv/cfg"), Ok((1, LOGICAL)));
    assert_eq!(r("/v1/kv/data/cfg"), Err("kv/data/cfg".into()));
    assert_eq!(r("/v1/database/creds/app"), Ok((3, LOGICAL)));
    assert_eq!(
        r("/v1/secret/data/app/other"),
        Err("secret/data/app/other".into())
    );
    // A `secret_id` is the AWS agent's, by its own API.
    assert_eq!(r("/v1/prod/api"), Err("prod/api".into()));
    assert_eq!(r("/secretsmanager/get"), Err("(other)".into()));
    assert_eq!(r("/etc/passwd"), Err("(other)".into()));
}

#[test]
fn the_calls_vault_clients_make_before_a_read_are_answered() {
    let routes = PROXY_API.index(&config());
    let (open, health) = answered(&*routes, "/v1/sys/health").unwrap();
    assert!(open);
    assert_eq!(health["sealed"], false);
    let (open, me) = answered(&*routes, "/v1/auth/token/lookup-self").unwrap();
    assert!(!open);
    assert_eq!(me["data"]["display_name"], "ramsecrets-proxy");
    let mount = |p: &str| {
        let (open, m) = answered(&*routes, &format!("/v1/sys/internal/ui/mounts/{p}"))?;
        assert!(!open);
        Some((
            m["data"]["path"].as_str()?.to_owned(),
            m["data"]["options"]["version"].as_str()?.to_owned(),
        ))
    };
    let kv2 = Some(("secret/".to_owned(), "2".to_owned()));
    assert_eq!(mount("secret"), kv2);
    assert_eq!(mount("secret/app/db"), kv2);
    assert_eq!(mount("kv/cfg"), Some(("kv/".into(), "1".into())));
    // Only configured KV mounts, and whole path segments.
    for other in ["secrets/app/db", "database/creds/app", "sys"] {
        assert_eq!(mount(other), None, "{other}");
        let path = format!("/v1/sys/internal/ui/mounts/{other}");
        assert_eq!(
            routed(&*routes, &path),
            Err(format!("sys/internal/ui/mounts/{other}"))
        );
    }
}

#[test]
fn the_first_configured_secret_answers_a_path_given_twice() {
    let c = crate::config::Config::parse(
        "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: a, kv: { mount: kv, path: b/c } }\n  - { name: b, kv: { mount: kv/b, path: c } }\n  - { name: c, read: kv/b/c }\n",
        std::path::Path::new("/"),
    )
    .unwrap();
    let routes = PROXY_API.index(&c);
    let r = |p| routed(&*routes, p);
    assert_eq!(r("/v1/kv/b/c"), Ok((0, LOGICAL)));
    assert_eq!(r("/v1/kv/data/b/c/"), Ok((0, KV2)));
    assert_eq!(r("/v1/kv/b/data/c"), Ok((1, KV2)));
}

#[test]
fn bodies_have_the_shapes_clients_expect() {
    let c = config();
    let mut fields = Fields::new();
    fields.insert("password".into(), SecretBytes::copy_from("p\"w"));
    let mut fetched = Fetched::fields(fields);
    fetched.version = Some("3".into());
    let entry = Entry {
        fetched: std::sync::Arc::new(fetched),
        changed_at: UNIX_EPOCH,
        revision: 1,
    };
    let body = |form| {
        let b = PROXY_API.body(&c.secrets[0], &entry, form).unwrap();
        serde_json::from_slice::<serde_json::Value>(b.expose()).unwrap()
    };
    let kv2 = body(KV2);
    assert_eq!(kv2["data"]["data"]["password"], "p\"w");
    assert_eq!(kv2["data"]["metadata"]["version"], 3);
    assert_eq!(
        kv2["data"]["metadata"]["created_time"],
        "1970-01-01T00:00:00.000000000Z"
    );
    let logical = body(LOGICAL);
    assert_eq!(logical["data"]["password"], "p\"w");
    assert_eq!(logical["lease_id"], "");
}

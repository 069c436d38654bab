//! Tests of routing across the registered APIs: their order, and what is
//! not found (each API's own paths are tested in its backend's folder).

use super::*;
use crate::source::proxy_api::tests::config;
use std::path::Path;

/// The secret a request is routed to, with the shape of the errors of the
/// API that found it.
fn secret(index: &Index, path: &str, query: Option<&str>) -> Option<(usize, Api)> {
    match route(index, path, query) {
        r @ Route::Found {
            found: Found::Secret { secret, .. },
            ..
        } => Some((secret, r.api(false))),
        _ => None,
    }
}

/// What a request found nothing at, with the shapes of its refusal without
/// and with the AWS token header.
fn not_found(index: &Index, path: &str, query: Option<&str>) -> Option<(String, Api, Api)> {
    let r = route(index, path, query);
    let apis = (r.api(false), r.api(true));
    match r {
        Route::NotFound { what } => Some((what, apis.0, apis.1)),
        Route::Found {
            found: Found::Missing(what),
            ..
        } => Some((what, apis.0, apis.1)),
        _ => None,
    }
}

#[test]
fn each_api_finds_its_own_requests() {
    let c = config();
    let i = Index::new(&c);
    assert!(matches!(route(&i, "/ping", None), Route::Ping));
    assert!(route(&i, "/ping", None).open());
    assert_eq!(
        secret(&i, "/v1/secret/data/app/db", None),
        Some((0, Api::Vault))
    );
    assert_eq!(
        secret(&i, "/secretsmanager/get", Some("secretId=prod%2Fapi")),
        Some((2, Api::Aws))
    );
    assert_eq!(
        secret(&i, "/systemsmanager/parameters/get", Some("name=/app/key")),
        Some((4, Api::Aws))
    );
    assert!(route(&i, "/v1/sys/health", None).open());
    assert!(!route(&i, "/v1/auth/token/lookup-self", None).open());
    assert!(!route(&i, "/v1/secret/data/app/db", None).open());
}

#[test]
fn vaults_paths_come_before_the_aws_agents_ids_under_v1() {
    let c = Config::parse(
        "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: a, secret_id: kv/b }\n  - { name: b, kv: { mount: kv, path: b } }\n",
        Path::new("/"),
    )
    .unwrap();
    let i = Index::new(&c);
    assert_eq!(secret(&i, "/v1/kv/b", None), Some((1, Api::Vault)));
    assert_eq!(secret(&i, "/v1/a", None), Some((0, Api::Aws)));
    assert_eq!(
        secret(&i, "/secretsmanager/get", Some("secretId=kv/b")),
        Some((0, Api::Aws))
    );
}

#[test]
fn what_is_not_found_is_named_in_the_shape_of_the_api_asked() {
    let c = config();
    let i = Index::new(&c);
    assert_eq!(
        not_found(&i, "/v1/secret/data/app/other/", None),
        Some(("secret/data/app/other".into(), Api::Vault, Api::Aws))
    );
    assert_eq!(
        not_found(&i, "/etc/passwd", None),
        Some(("/etc/passwd".into(), Api::Vault, Api::Aws))
    );
    assert_eq!(
        not_found(&i, "/secretsmanager/get", Some("secretId=nope")),
        Some(("nope".into(), Api::Aws, Api::Aws))
    );
    assert_eq!(
        not_found(&i, "/systemsmanager/parameters/get", Some("name=/nope")),
        Some(("/nope".into(), Api::Aws, Api::Aws))
    );
}

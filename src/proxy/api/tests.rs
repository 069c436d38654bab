//! Tests of the proxy's API: routing, answer shapes and errors.

use super::*;
use crate::secret::{Fetched, Fields};
use std::path::Path;

fn config() -> Config {
    Config::parse(
        "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: db\n    kv: { mount: secret, path: app/db }\n  - name: old\n    kv: { mount: kv, path: cfg, kv_version: 1 }\n  - name: api\n    secret_id: prod/api\n  - name: creds\n    read: database/creds/app\n",
        Path::new("/"),
    )
    .unwrap()
}

fn not_found(what: &str) -> Route {
    Route::NotFound {
        what: what.into(),
        by_id: false,
    }
}

#[test]
fn routes_only_configured_secrets() {
    let c = config();
    assert_eq!(route(&c, "/ping", None), Route::Ping);
    assert_eq!(
        route(&c, "/v1/secret/data/app/db", None),
        Route::Vault {
            secret: 0,
            shape: Shape::Kv2
        }
    );
    assert_eq!(
        route(&c, "/v1/kv/cfg", None),
        Route::Vault {
            secret: 1,
            shape: Shape::Logical
        }
    );
    assert_eq!(route(&c, "/v1/kv/data/cfg", None), not_found("kv/data/cfg"));
    assert_eq!(
        route(&c, "/v1/database/creds/app", None),
        Route::Vault {
            secret: 3,
            shape: Shape::Logical
        }
    );
    assert_eq!(
        route(
            &c,
            "/secretsmanager/get",
            Some("secretId=prod%2Fapi&refreshNow=true")
        ),
        Route::Aws {
            secret: 2,
            stage: None,
            version_id: None,
            refresh: true
        }
    );
    assert!(matches!(
        route(&c, "/secretsmanager/get", Some("secretId=db")),
        Route::Aws { secret: 0, .. }
    ));
    assert!(matches!(
        route(&c, "/v1/prod/api", Some("versionStage=AWSCURRENT")),
        Route::Aws {
            secret: 2,
            stage: Some(_),
            ..
        }
    ));
    let nope = route(&c, "/secretsmanager/get", Some("secretId=nope"));
    assert_eq!(
        nope,
        Route::NotFound {
            what: "nope".into(),
            by_id: true
        }
    );
    assert_eq!(nope.api(false), Api::Aws);
    assert_eq!(
        route(&c, "/secretsmanager/get", Some("versionStage=AWSCURRENT")),
        Route::MissingId
    );
    assert_eq!(
        route(&c, "/secretsmanager/get", Some("secretId=")),
        Route::MissingId
    );
    let other = route(&c, "/v1/secret/data/app/other", None);
    assert_eq!(other, not_found("secret/data/app/other"));
    assert_eq!((other.api(false), other.api(true)), (Api::Vault, Api::Aws));
    assert_eq!(route(&c, "/etc/passwd", None), not_found("/etc/passwd"));
}

#[test]
fn the_calls_vault_clients_make_before_a_read_are_routed() {
    let c = config();
    assert_eq!(route(&c, "/v1/sys/health", None), Route::Health);
    assert_eq!(
        route(&c, "/v1/auth/token/lookup-self", None),
        Route::LookupSelf
    );
    let kv2 = Route::Mount {
        mount: "secret".into(),
        version: KvVersion::V2,
    };
    assert_eq!(route(&c, "/v1/sys/internal/ui/mounts/secret", None), kv2);
    assert_eq!(
        route(&c, "/v1/sys/internal/ui/mounts/secret/app/db", None),
        kv2
    );
    assert_eq!(
        route(&c, "/v1/sys/internal/ui/mounts/kv/cfg", None),
        Route::Mount {
            mount: "kv".into(),
            version: KvVersion::V1
        }
    );
    // Only configured KV mounts, and whole path segments.
    for other in ["secrets/app/db", "database/creds/app", "sys"] {
        let path = format!("/v1/sys/internal/ui/mounts/{other}");
        assert_eq!(
            route(&c, &path, None),
            not_found(&format!("sys/internal/ui/mounts/{other}"))
        );
    }
    let mount: serde_json::Value =
        serde_json::from_slice(&mount_body("kv", KvVersion::V1)).unwrap();
    assert_eq!(mount["data"]["path"], "kv/");
    assert_eq!(mount["data"]["options"]["version"], "1");
    assert_eq!(mount["data"]["type"], "kv");
}

#[test]
fn bodies_have_the_shapes_clients_expect() {
    let c = config();
    let mut fields = Fields::new();
    fields.insert("password".into(), SecretBytes::copy_from("p\"w"));
    let mut fetched = Fetched::fields(fields);
    fetched.version = Some("3".into());
    let entry = Entry {
        fetched,
        changed_at: UNIX_EPOCH,
        revision: 1,
    };
    let kv2: serde_json::Value =
        serde_json::from_slice(body(&c.secrets[0], &entry, Shape::Kv2).unwrap().expose()).unwrap();
    assert_eq!(kv2["data"]["data"]["password"], "p\"w");
    assert_eq!(kv2["data"]["metadata"]["version"], 3);
    let aws: serde_json::Value =
        serde_json::from_slice(body(&c.secrets[2], &entry, Shape::Aws).unwrap().expose()).unwrap();
    assert_eq!(aws["Name"], "prod/api");
    assert_eq!(aws["SecretString"], "p\"w");
    assert_eq!(aws["VersionId"], "3");
    assert_eq!(aws["VersionStages"][0], "AWSCURRENT");
    let aws: serde_json::Value =
        serde_json::from_slice(body(&c.secrets[0], &entry, Shape::Aws).unwrap().expose()).unwrap();
    assert_eq!(aws["SecretString"], r#"{"password":"p\"w"}"#);
}

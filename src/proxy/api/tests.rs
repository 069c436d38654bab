//! Tests of the proxy's answers: their shapes (routing is tested in `route.rs`).

use super::*;
use crate::proxy::route::tests::config;
use crate::secret::{Fetched, Fields};

#[test]
fn the_mount_lookup_says_the_kv_version() {
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
        fetched: std::sync::Arc::new(fetched),
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

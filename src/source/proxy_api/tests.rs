//! Tests of what every API's answers share (a field's JSON, the version a
//! client sees, a query's pairs), and the config the APIs' tests and the proxy's routing
//! tests read.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::secret::Fields;

/// Five secrets, one of each address the proxy serves by path or id.
pub(crate) fn config() -> Config {
    Config::parse(
        "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: db\n    kv: { mount: secret, path: app/db }\n  - name: old\n    kv: { mount: kv, path: cfg, kv_version: 1 }\n  - name: api\n    secret_id: prod/api\n  - name: creds\n    read: database/creds/app\n  - name: key\n    parameter: /app/key\n",
        Path::new("/"),
    )
    .unwrap()
}

/// A held entry at `revision`, of a backend that says `version` or not.
fn entry(version: Option<&str>, revision: u64) -> Entry {
    let mut fetched = Fetched::fields(Fields::new());
    fetched.version = version.map(str::to_owned);
    Entry {
        fetched: Arc::new(fetched),
        changed_at: UNIX_EPOCH,
        revision,
    }
}

#[test]
fn a_field_is_its_text_or_else_base64() {
    let text = SecretBytes::copy_from("p\"w");
    let binary = SecretBytes::new(vec![0xff, 0x00]);
    assert_eq!(serde_json::to_string(&Field(&text)).unwrap(), r#""p\"w""#);
    assert_eq!(serde_json::to_string(&Field(&binary)).unwrap(), r#""/wA=""#);
}

#[test]
fn the_version_is_the_backends_else_the_revision() {
    assert_eq!(version(&entry(Some("v7"), 2)), "v7");
    assert_eq!(version(&entry(None, 2)), "rev-2");
    assert_eq!(version_number(&entry(Some("7"), 2)), 7);
    assert_eq!(version_number(&entry(Some("v7"), 2)), 2);
    assert_eq!(version_number(&entry(None, 3)), 3);
}

#[test]
fn query_pairs_are_what_form_urlencoded_parses() {
    let queries = [
        "",
        "secretId=bench/p0000",
        "secretId=bench%2Fp0000&versionStage=AWSPREVIOUS",
        "name=a+b&&withDecryption=true&",
        "refreshNow",
        "=v&k=&k2==x",
        "secret%49d=x&%zz=%C3&%C3%A9=caf%C3%A9",
        "a=1;b=2&ü=ö+",
    ];
    for q in queries {
        let fast: Vec<_> = query_pairs(Some(q)).collect();
        let parsed: Vec<_> = form_urlencoded::parse(q.as_bytes()).collect();
        assert_eq!(fast, parsed, "{q}");
    }
    assert_eq!(query_pairs(None).count(), 0);
}

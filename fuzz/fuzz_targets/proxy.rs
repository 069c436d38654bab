//! The local credential proxy's routing: any method, request target (path
//! and query) and headers, answered from a proxy holding four secrets (KV v2,
//! KV v1, a leased read, an AWS secret with its previous version). Beyond not
//! panicking: a secret's value is only ever in the answer to a GET that
//! carries the proxy's token (unless the request itself quoted it); the token
//! is never in an answer; every answer but `/ping`'s is JSON.
//!
//! Input: `METHOD TARGET` on the first line, then `Name: value` header
//! lines, so seeds are written by hand.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ramsecrets::config::Config;
use ramsecrets::fuzzing::{proxy, Fetched, Fields, Proxy, SecretBytes};
use ramsecrets_fuzz::contains;

const CONFIG: &str = "sources:\n  - { name: dev, file: { path: /nonexistent/dev.yaml } }\n  - { name: aws, aws_secrets_manager: { region: eu-west-1 } }\nproxy: { token_file: /nonexistent/token }\nsecrets:\n  - { name: db, source: dev, kv: { mount: secret, path: app/db } }\n  - { name: old, source: dev, kv: { mount: kv, path: cfg, kv_version: 1 } }\n  - { name: creds, source: dev, read: database/creds/app }\n  - { name: api, source: aws, secret_id: prod/api, previous: true }\n";
const TOKEN: &[u8] = b"tok-5ee1d7c0a9b3";
const VALUES: [&[u8]; 6] = [
    b"pw-kv2-4d1f0e",
    b"pw-kv1-8b2c7a",
    b"user-read-3e9d",
    b"pw-read-6a0f5c",
    b"api-current-91c2",
    b"api-previous-5d7e",
];

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.to_vec())))
        .collect()
}

fn the_proxy() -> &'static Proxy {
    static PROXY: OnceLock<Proxy> = OnceLock::new();
    PROXY.get_or_init(|| {
        let config = Config::parse(CONFIG, Path::new("/")).expect("the target's config");
        let mut db = Fetched::fields(fields(&[("password", VALUES[0])]));
        db.version = Some("3".into());
        let old = Fetched::fields(fields(&[("password", VALUES[1])]));
        let mut creds =
            Fetched::fields(fields(&[("username", VALUES[2]), ("password", VALUES[3])]));
        creds.lease = Some(ramsecrets::fuzzing::Lease {
            id: "database/creds/app/abc".into(),
            duration: Duration::from_secs(3600),
            renewable: true,
        });
        let mut api = Fetched::fields(fields(&[("value", VALUES[4])]));
        api.stored = Some(SecretBytes::new(VALUES[4].to_vec()));
        api.version = Some("v-current".into());
        let mut previous = Fetched::fields(fields(&[("value", VALUES[5])]));
        previous.stored = Some(SecretBytes::new(VALUES[5].to_vec()));
        previous.version = Some("v-previous".into());
        api.previous = Some(Box::new(previous));
        let values = vec![("db", db), ("old", old), ("creds", creds), ("api", api)];
        proxy(config, TOKEN, values).expect("the target's proxy")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let Some(space) = first.iter().position(|&b| b == b' ') else {
        return;
    };
    let (method, target) = (&first[..space], &first[space + 1..]);
    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            let value = &l[colon + 1..];
            Some((&l[..colon], value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();
    let Some((status, body)) = the_proxy().answer(method, target, &headers) else {
        return;
    };
    // The token header the proxy reads: the AWS agent's, else Vault's (the first of each).
    let given = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    };
    let sent = given("x-aws-parameters-secrets-token").or_else(|| given("x-vault-token"));
    let authorized = sent == Some(TOKEN) && method == b"GET";
    for value in VALUES {
        if contains(&body, value) && !contains(target, value) {
            assert!(
                authorized,
                "{status} answer holds a value without the token: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    assert!(
        !contains(&body, TOKEN) || contains(target, TOKEN),
        "the answer holds the token: {}",
        String::from_utf8_lossy(&body)
    );
    if body != b"healthy" {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "{status} answer is not JSON: {}",
            String::from_utf8_lossy(&body)
        );
    }
});

//! The hand-off state stores addresses as data: each backend's form reads
//! back from the JSON that ramsecrets wrote before the backends had a
//! variant each, and is written again as that same JSON.

use serde_json::json;

use super::Address;
use crate::source::aws::{AwsAddress, AwsVersion};
use crate::source::ssm::{Parameter, SsmAddress};
use crate::source::vault::VaultAddress;

#[test]
fn every_backends_address_is_stored_as_before() {
    let cases = [
        (
            json!({ "kv": { "mount": "secret", "path": "k", "kv_version": null, "version": 3 } }),
            Address::Vault(VaultAddress::Kv {
                mount: "secret".into(),
                path: "k".into(),
                kv_version: None,
                version: Some(3),
            }),
        ),
        (
            json!({ "read": "db/creds/app" }),
            Address::Vault(VaultAddress::Read("db/creds/app".into())),
        ),
        (
            json!({ "pki": { "mount": "pki", "role": "web", "common_name": "a.example", "ttl": null, "alt_names": ["b.example"], "ip_sans": [] } }),
            Address::Vault(VaultAddress::Pki {
                mount: "pki".into(),
                role: "web".into(),
                common_name: "a.example".into(),
                ttl: None,
                alt_names: vec!["b.example".into()],
                ip_sans: Vec::new(),
            }),
        ),
        (
            json!({ "secret_id": { "id": "prod/api", "version": { "stage": "AWSCURRENT" }, "previous": true } }),
            Address::AwsSecretsManager(AwsAddress::SecretId {
                id: "prod/api".into(),
                version: AwsVersion::Stage("AWSCURRENT".into()),
                previous: true,
            }),
        ),
        (
            json!({ "parameter": { "name": { "name": "/app/a", "selector": null } } }),
            Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Name {
                name: "/app/a".into(),
                selector: None,
            })),
        ),
        (
            json!({ "parameter": { "path": "/app" } }),
            Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Path("/app".into()))),
        ),
    ];
    for (stored, address) in cases {
        let read: Address = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(read, address, "{stored}");
        assert_eq!(serde_json::to_value(&address).unwrap(), stored);
    }
}

#[test]
fn a_form_no_backend_has_is_refused() {
    for stored in [
        json!({ "bogus": "x" }),
        json!({ "read": 1 }),
        json!({ "kv": { "mount": "secret" } }),
        json!({ "read": "a", "secret_id": "b" }),
        json!("db/creds/app"),
    ] {
        assert!(
            serde_json::from_value::<Address>(stored.clone()).is_err(),
            "{stored}"
        );
    }
}

#[test]
fn equal_addresses_are_one_identity_across_backends() {
    use std::collections::HashSet;
    let read = Address::Vault(VaultAddress::Read("a".into()));
    let set: HashSet<_> = [read.clone(), read.clone()].into_iter().collect();
    assert_eq!(set.len(), 1);
    let aws = Address::AwsSecretsManager(AwsAddress::SecretId {
        id: "a".into(),
        version: AwsVersion::Stage("AWSCURRENT".into()),
        previous: false,
    });
    let ssm = Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Path("a".into())));
    assert_ne!(read, aws);
    assert_ne!(aws, ssm);
    assert_eq!(read.key(), aws.key(), "the same key, still two addresses");
}

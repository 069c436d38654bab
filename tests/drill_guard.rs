//! What the drill must not touch, against real OpenBao: a lease that a
//! (forged) metrics page names but that is not the secret's own, or that
//! Vault does not know.

mod common;

use common::drill::*;
use common::*;
use serde_json::{json, Value};

/// The lease ids under `prefix` Vault holds now.
fn lease_keys(bao: &Bao, prefix: &str) -> Vec<String> {
    let v = bao.api("LIST", &format!("sys/leases/lookup/{prefix}"), Value::Null);
    v["data"]["keys"]
        .as_array()
        .map(|k| k.iter().map(|k| k.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_metrics_page_naming_another_lease_makes_the_drill_revoke_nothing() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    // An unrelated token, with its lease: what a forged page would point at.
    let before = lease_keys(&bao, "auth/token/create/");
    let token = bao.api(
        "POST",
        "auth/token/create",
        json!({ "policies": ["default"], "ttl": "1h" }),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = lease_keys(&bao, "auth/token/create/")
        .into_iter()
        .find(|k| !before.contains(k))
        .expect("the token's lease");
    let token_lease = format!("auth/token/create/{key}");
    let secrets = [json!({ "name": "db", "read": "database/creds/dyn", "file": "db.json" })];
    let cfg = sidecar_config(token_source(&bao, work.path()), &out, free_port(), &secrets)
        .write(work.path(), "config.yaml");
    // A drill told by a forged metrics page that the sidecar holds `lease`.
    let drill_with = |lease: &str| {
        let metrics = fake_metrics(&format!(
            "ramsecrets_secret_version{{secret=\"db\",version=\"\",lease=\"{lease}\"}} 1\n"
        ));
        let o = drill_cmd(&cfg, "db", &["--metrics", &metrics, "--deadline", "1s"])
            .output()
            .unwrap();
        assert_exit(&o, 65);
        text(&o)
    };

    let err = drill_with(&token_lease);
    assert!(
        err.contains(&token_lease) && err.contains("not a lease of `database/creds/dyn`"),
        "{err}"
    );
    assert!(err.contains("nothing was revoked"), "{err}");
    let (status, _) = bao.api_as(&token, "GET", "auth/token/lookup-self", Value::Null);
    assert_eq!(status, 200, "the unrelated token was revoked");

    // Under the secret's path, but not a lease Vault knows: refused too,
    // instead of a revoke that succeeds on nothing and passes for a rotation.
    let err = drill_with("database/creds/dyn/forged1234");
    assert!(
        err.contains("no lease `database/creds/dyn/forged1234`"),
        "{err}"
    );
}

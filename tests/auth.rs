//! The Vault logins `cert` (a TLS client certificate, against OpenBao's cert
//! method and a CA made by the test) and `aws` (IAM: an sts:GetCallerIdentity
//! signed with the AWS default credential chain, whose signature moto's STS
//! checks; see `common::auth` for the server's half). Waits poll with
//! generous limits; nothing here asserts a duration.

mod common;

use std::path::Path;
use std::time::Duration;

use common::auth::{iam_user, AwsAuth, Ca};
use common::moto::{AwsEnv, Moto};
use common::*;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn cert_login_works_refuses_an_untrusted_certificate_and_rereads_its_files() {
    let bao = Bao::start_tls();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.app_policy();
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let ca = Ca::new(work.path(), "trusted");
    let stranger = Ca::new(work.path(), "stranger");
    bao.api("POST", "sys/auth/cert", json!({ "type": "cert" }));
    // Short tokens: the sidecar logs in again every few seconds.
    bao.api(
        "POST",
        "auth/cert/certs/app",
        json!({ "certificate": read(&ca.cert), "token_policies": ["app"], "token_ttl": "3s", "token_max_ttl": "3s" }),
    );
    let (good_cert, good_key) = ca.client("app");
    let (bad_cert, bad_key) = stranger.client("app");
    let (cert, key) = (work.path().join("tls.crt"), work.path().join("tls.key"));
    let use_pair = |c: &Path, k: &Path| {
        std::fs::copy(c, &cert).unwrap();
        std::fs::copy(k, &key).unwrap();
    };
    use_pair(&good_cert, &good_key);
    let config = format!(
        "sources:
  - vault:
      address: {}
      ca_cert: {}
      auth: {{ cert: {{ name: app, client_cert: tls.crt, client_key: tls.key }} }}
output: {{ dir: {} }}
refresh: {{ interval: 1s }}
secrets:
  - {{ name: db, kv: {{ mount: secret, path: app/db }}, key: password }}
",
        bao.addr,
        bao.ca.as_ref().unwrap().display(),
        out.path().display()
    );
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 0);
    assert_eq!(out.read("db"), "one");
    assert!(
        text(&o).contains("method=\"cert\"") || text(&o).contains("method=cert"),
        "{}",
        text(&o)
    );

    // A certificate of another CA: the login is refused, 77.
    use_pair(&bad_cert, &bad_key);
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("cert login"), "{}", text(&o));
    let key_text = read(&bad_key);
    let secret_line = key_text.lines().nth(1).unwrap();
    assert!(!text(&o).contains(secret_line), "{}", text(&o));

    // The sidecar reads the files at each login: a bad pair is refused, the
    // good pair back is used at the next login.
    use_pair(&good_cert, &good_key);
    let cfg = work.path().join("config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    use_pair(&bad_cert, &bad_key);
    run.wait_log("cert login: HTTP 400", LIMIT);
    use_pair(&good_cert, &good_key);
    bao.kv2_put("app/db", json!({ "password": "two" }));
    wait_until(LIMIT, "the new value after a new login", || {
        out.read("db") == "two"
    });
}

#[test]
fn aws_login_is_signed_with_the_default_chain_and_a_wrong_role_is_77() {
    let bao = Bao::start();
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.app_policy();
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let (arn, key_id, secret_key) = iam_user(&moto.url, "app");
    let other = arn.replace(":user/app", ":user/other");
    let roles = [("app", arn.as_str()), ("other", other.as_str())];
    let auth = AwsAuth::start(&bao, &moto.url, &roles, "app", None);
    let mut env = AwsEnv::bare();
    env.set("AWS_ACCESS_KEY_ID", &key_id);
    env.set("AWS_SECRET_ACCESS_KEY", &secret_key);
    let config = |role: &str| {
        format!(
            "sources:
  - vault: {{ address: {}, auth: {{ aws: {{ role: {role} }} }} }}
output: {{ dir: {} }}
secrets:
  - {{ name: db, kv: {{ mount: secret, path: app/db }}, key: password }}
",
            auth.addr,
            out.path().display()
        )
    };
    let o = env.init(work.path(), &config("app"), &[]);
    assert_exit(&o, 0);
    assert_eq!(out.read("db"), "one");
    assert!(!text(&o).contains(&secret_key), "{}", text(&o));

    // A role bound to another principal, and a role that does not exist: 77.
    let o = env.init(work.path(), &config("other"), &[]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("does not belong to the role"),
        "{}",
        text(&o)
    );
    let o = env.init(work.path(), &config("nope"), &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("entry for role"), "{}", text(&o));

    // moto checks the signature: a wrong secret key is refused, 77.
    env.set("AWS_SECRET_ACCESS_KEY", "not-the-key");
    let o = env.init(work.path(), &config("app"), &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("SignatureDoesNotMatch"), "{}", text(&o));

    // A server that requires its ID header: given and signed, the login works.
    env.set("AWS_SECRET_ACCESS_KEY", &secret_key);
    let strict = AwsAuth::start(&bao, &moto.url, &roles, "app", Some("vault.example"));
    let with_id = config("app").replace(&auth.addr, &strict.addr);
    let o = env.init(work.path(), &with_id, &[]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("X-Vault-AWS-IAM-Server-ID"),
        "{}",
        text(&o)
    );
    let with_id = with_id.replace("role: app }", "role: app, header_value: vault.example }");
    let o = env.init(work.path(), &with_id, &[]);
    assert_exit(&o, 0);

    // No credentials anywhere in the chain: a config error, 78.
    let env = AwsEnv::bare();
    let o = env.init(work.path(), &config("app"), &[]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("no AWS credentials found"),
        "{}",
        text(&o)
    );
}

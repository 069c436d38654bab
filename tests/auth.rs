//! The Vault logins `cert` (a TLS client certificate, against OpenBao's cert
//! method and a CA made by the test) and `aws` (IAM: an sts:GetCallerIdentity
//! signed with the AWS default credential chain, whose signature moto's STS
//! checks; see `common::auth` for the server's half). Logins are forced by
//! revoking the tokens, not by short TTLs; waits poll with generous limits
//! and nothing here asserts a duration.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::auth::{iam_user, AwsAuth, Ca};
use common::moto::{AwsEnv, Moto};
use common::*;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// OpenBao on TLS with the `cert` login trusting one CA, and a config that
/// logs in with the pair at `tls.crt`/`tls.key` in `work`.
struct CertBed {
    bao: Bao,
    work: tempfile::TempDir,
    out: Tmpfs,
    /// A client pair of the trusted CA.
    good: (PathBuf, PathBuf),
    /// A client pair of another CA.
    bad: (PathBuf, PathBuf),
    config: String,
}

impl CertBed {
    fn start() -> CertBed {
        let bao = Bao::start_tls();
        let work = scratch();
        let out = Tmpfs::new("4m");
        bao.app_policy();
        bao.kv2_put("app/db", json!({ "password": "one" }));
        let ca = Ca::new(work.path(), "trusted");
        let stranger = Ca::new(work.path(), "stranger");
        bao.api("POST", "sys/auth/cert", json!({ "type": "cert" }));
        bao.api(
            "POST",
            "auth/cert/certs/app",
            json!({ "certificate": read(&ca.cert), "token_policies": ["app"], "token_ttl": "1h" }),
        );
        let config = Config::new()
            .source(json!({ "vault": {
                "address": bao.addr,
                "ca_cert": bao.ca,
                "auth": { "cert": { "name": "app", "client_cert": "tls.crt", "client_key": "tls.key" } },
            } }))
            .output(out.path())
            .set("refresh", json!({ "interval": "1s" }))
            .secret(kv_key("db", "app/db", "password"))
            .yaml();
        let (good, bad) = (ca.client("app"), stranger.client("app"));
        let bed = CertBed {
            bao,
            work,
            out,
            good,
            bad,
            config,
        };
        bed.use_pair(&bed.good);
        bed
    }

    /// Puts `pair` where the config reads its certificate and key.
    fn use_pair(&self, (cert, key): &(PathBuf, PathBuf)) {
        std::fs::copy(cert, self.work.path().join("tls.crt")).unwrap();
        std::fs::copy(key, self.work.path().join("tls.key")).unwrap();
    }
}

#[test]
fn the_cert_login_takes_a_trusted_certificate_only() {
    let bed = CertBed::start();
    let o = init(bed.work.path(), &bed.config, &[]);
    assert_exit(&o, 0);
    assert_eq!(bed.out.read("db"), "one");
    assert!(
        text(&o).contains("method=\"cert\"") || text(&o).contains("method=cert"),
        "{}",
        text(&o)
    );
    // A certificate of another CA: the login is refused, 77.
    bed.use_pair(&bed.bad);
    let o = init(bed.work.path(), &bed.config, &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("cert login"), "{}", text(&o));
    let key_text = read(&bed.bad.1);
    let secret_line = key_text.lines().nth(1).unwrap();
    assert!(!text(&o).contains(secret_line), "{}", text(&o));
}

#[test]
fn the_sidecar_reads_the_certificate_files_at_each_login() {
    let bed = CertBed::start();
    let cfg = file(bed.work.path(), "config.yaml", &bed.config);
    let mut run = Running::sidecar(bed.work.path(), &cfg);
    // A bad pair in place and the sidecar's token revoked: its next login
    // reads the bad pair and is refused.
    bed.use_pair(&bed.bad);
    bed.bao
        .api("PUT", "sys/leases/revoke-prefix/auth/cert/login", json!({}));
    run.wait_log("cert login: HTTP 400", LIMIT);
    // The good pair back is used at the next login.
    bed.use_pair(&bed.good);
    bed.bao.kv2_put("app/db", json!({ "password": "two" }));
    wait_until(LIMIT, "the new value after a new login", || {
        bed.out.read("db") == "two"
    });
    assert_eq!(run.stop(rustix::process::Signal::TERM), Some(0));
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
        Config::new()
            .source(vault(&auth.addr, json!({ "aws": { "role": role } })))
            .output(out.path())
            .secret(kv_key("db", "app/db", "password"))
    };
    let o = env.init(work.path(), &config("app").yaml(), &[]);
    assert_exit(&o, 0);
    assert_eq!(out.read("db"), "one");
    assert!(!text(&o).contains(&secret_key), "{}", text(&o));

    // A role bound to another principal, and a role that does not exist: 77.
    let o = env.init(work.path(), &config("other").yaml(), &[]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("does not belong to the role"),
        "{}",
        text(&o)
    );
    let o = env.init(work.path(), &config("nope").yaml(), &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("entry for role"), "{}", text(&o));

    // moto checks the signature: a wrong secret key is refused, 77.
    env.set("AWS_SECRET_ACCESS_KEY", "not-the-key");
    let o = env.init(work.path(), &config("app").yaml(), &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("SignatureDoesNotMatch"), "{}", text(&o));

    // A server that requires its ID header: given and signed, the login works.
    env.set("AWS_SECRET_ACCESS_KEY", &secret_key);
    let strict = AwsAuth::start(&bao, &moto.url, &roles, "app", Some("vault.example"));
    let with_id = |aws: serde_json::Value| {
        config("app")
            .set(
                "sources",
                json!([vault(&strict.addr, json!({ "aws": aws }))]),
            )
            .yaml()
    };
    let o = env.init(work.path(), &with_id(json!({ "role": "app" })), &[]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("X-Vault-AWS-IAM-Server-ID"),
        "{}",
        text(&o)
    );
    let aws = json!({ "role": "app", "header_value": "vault.example" });
    let o = env.init(work.path(), &with_id(aws), &[]);
    assert_exit(&o, 0);

    // No credentials anywhere in the chain: a config error, 78.
    let env = AwsEnv::bare();
    let o = env.init(work.path(), &config("app").yaml(), &[]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("no AWS credentials found"),
        "{}",
        text(&o)
    );
}

/// `tls_skip_verify` (what a vault-k8s pod's `tls-skip-verify` becomes where the injector
/// allows it): OpenBao over TLS with a certificate nobody trusts is refused without it, and
/// read with it, the sidecar warning at start that the certificate is not verified.
#[test]
fn tls_skip_verify_reads_from_a_server_whose_certificate_is_not_trusted() {
    let bao = Bao::start_tls();
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let token = file(work.path(), "token", &bao.token);
    let config = |skip: bool| {
        Config::new()
            .source(json!({ "vault": {
                "address": bao.addr,
                "tls_skip_verify": skip,
                "auth": { "token_file": token },
            } }))
            .output(out.path())
            .secret(kv_key("db", "app/db", "password"))
            .yaml()
    };
    let o = init(work.path(), &config(false), &[]);
    assert_exit(&o, 69);
    assert!(text(&o).contains("certificate"), "{}", text(&o));
    assert!(!out.path().join("db").exists());
    let cfg = file(work.path(), "config.yaml", &config(true));
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.read("db"), "one");
    assert_eq!(run.stop(rustix::process::Signal::TERM), Some(0));
    assert!(
        run.logs()
            .contains("tls_skip_verify: THE SERVER'S CERTIFICATE IS NOT VERIFIED"),
        "{}",
        run.logs()
    );
}

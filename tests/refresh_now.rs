//! The proxy's `refreshNow` against real OpenBao and PostgreSQL: it re-reads
//! static secrets (through the sidecar, so files and answers agree) and
//! never mints a lease or a certificate that nobody renews or revokes;
//! leases and certificates are counted in OpenBao.

mod common;

use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

/// GETs secret `id` through the proxy with `refreshNow=true`; returns its fields.
fn refresh_now(port: u16, token: &str, id: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/secretsmanager/get?secretId={id}&refreshNow=true"
        ))
        .header("X-Aws-Parameters-Secrets-Token", token)
        .timeout(Duration::from_secs(90))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().unwrap();
    serde_json::from_str(body["SecretString"].as_str().unwrap()).unwrap()
}

/// A proxy with files over `bao`, holding `secrets`; returns it, its port
/// and its token.
fn sidecar_with_proxy(
    bao: &Bao,
    work: &std::path::Path,
    out: &Tmpfs,
    secrets: &[Value],
) -> (Running, u16, String) {
    let token = file(work, "token", &bao.token);
    let port = free_port();
    let config = secrets.iter().fold(
        Config::new()
            .source(vault(&bao.addr, json!({ "token_file": token })))
            .output(out.path())
            .set(
                "proxy",
                json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "proxy-token" }),
            ),
        |config, secret| config.secret(secret.clone()),
    );
    let run = Running::sidecar(work, &config.write(work, "config.yaml"));
    let ptoken = std::fs::read_to_string(work.join("proxy-token")).unwrap();
    (run, port, ptoken)
}

#[test]
fn refresh_now_mints_no_lease_or_certificate() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    bao.database(&pg, "1h", "2h");
    bao.api("POST", "sys/mounts/pki", json!({ "type": "pki" }));
    bao.api(
        "POST",
        "pki/root/generate/internal",
        json!({ "common_name": "Test Root CA", "ttl": "87600h" }),
    );
    bao.api("POST", "pki/roles/web", json!({ "allow_any_name": true }));
    let certs = || {
        bao.api("LIST", "pki/certs", Value::Null)["data"]["keys"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let secrets = [
        json!({ "name": "db", "read": "database/creds/app", "format": "json" }),
        json!({
            "name": "tls",
            "pki": { "mount": "pki", "role": "web", "common_name": "app.svc", "ttl": "1h" },
        }),
    ];
    let (mut run, port, ptoken) = sidecar_with_proxy(&bao, work.path(), &out, &secrets);
    let (leases, issued) = (bao.leases("database/creds/app"), certs());
    assert_eq!(leases, 1);
    // Five refreshNow calls on each, more than a second apart (the proxy's own
    // rate), as the review made them.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1100));
        let db = refresh_now(port, &ptoken, "db");
        let tls = refresh_now(port, &ptoken, "tls");
        // What the proxy serves is what the files hold.
        let file_db: Value = serde_json::from_str(&out.read("db")).unwrap();
        assert_eq!(db["username"], file_db["username"]);
        assert_eq!(db["password"], file_db["password"]);
        assert_eq!(
            tls["certificate"].as_str(),
            Some(out.read("tls.crt").as_str())
        );
    }
    assert_eq!(
        bao.leases("database/creds/app"),
        leases,
        "refreshNow took leases"
    );
    assert_eq!(certs(), issued, "refreshNow issued certificates");
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    let file_db: Value = serde_json::from_str(&out.read("db")).unwrap();
    for secret in [file_db["password"].as_str().unwrap(), ptoken.as_str()] {
        assert!(!logs.contains(secret), "a secret is in the log");
    }
}

#[test]
fn refresh_now_writes_a_static_secrets_new_value_before_answering() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    bao.kv2_put("app/kv", json!({ "password": "kv-one-73c1" }));
    let secrets =
        [json!({ "name": "kv", "kv": { "mount": "secret", "path": "app/kv" }, "format": "json" })];
    let (mut run, port, ptoken) = sidecar_with_proxy(&bao, work.path(), &out, &secrets);
    // A static secret is read again, and its file is written before the answer.
    bao.kv2_put("app/kv", json!({ "password": "kv-two-9e0a" }));
    let kv = refresh_now(port, &ptoken, "kv");
    assert_eq!(kv["password"], "kv-two-9e0a");
    let file_kv: Value = serde_json::from_str(&out.read("kv")).unwrap();
    assert_eq!(file_kv["password"], "kv-two-9e0a");
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    for secret in ["kv-one-73c1", "kv-two-9e0a", ptoken.as_str()] {
        assert!(!logs.contains(secret), "a secret is in the log");
    }
}

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

#[test]
fn refresh_now_mints_no_lease_or_certificate_and_files_and_answers_agree() {
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
    bao.kv2_put("app/kv", json!({ "password": "kv-one-73c1" }));
    let certs = || {
        bao.api("LIST", "pki/certs", Value::Null)["data"]["keys"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let token = file(work.path(), "token", &bao.token);
    let port = free_port();
    let config = format!(
        "sources:\n  - vault:\n      address: {}\n      auth: {{ token_file: {} }}\noutput: {{ dir: {} }}\nproxy: {{ listen: \"127.0.0.1:{port}\", token_file: proxy-token }}\nsecrets:\n  - name: db\n    read: database/creds/app\n    format: json\n  - name: tls\n    pki: {{ mount: pki, role: web, common_name: app.svc, ttl: 1h }}\n  - name: kv\n    kv: {{ mount: secret, path: app/kv }}\n    format: json\n",
        bao.addr,
        token.display(),
        out.path().display()
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let mut run = Running::sidecar(work.path(), &cfg);
    let ptoken = std::fs::read_to_string(work.path().join("proxy-token")).unwrap();
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
    // A static secret is read again, and its file is written before the answer.
    bao.kv2_put("app/kv", json!({ "password": "kv-two-9e0a" }));
    let kv = refresh_now(port, &ptoken, "kv");
    assert_eq!(kv["password"], "kv-two-9e0a");
    let file_kv: Value = serde_json::from_str(&out.read("kv")).unwrap();
    assert_eq!(file_kv["password"], "kv-two-9e0a");
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    let file_db: Value = serde_json::from_str(&out.read("db")).unwrap();
    for secret in [
        file_db["password"].as_str().unwrap(),
        "kv-one-73c1",
        "kv-two-9e0a",
        ptoken.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret is in the log");
    }
}

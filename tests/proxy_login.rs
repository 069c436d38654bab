//! The laptop proxy and the developer's own Vault login (`~/.vault-token`):
//! a login that lapses or is revoked answers 503 with the way to log in
//! again, for every secret of its source at once, while the other sources
//! keep serving; logging in again is picked up without a restart.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::clients::aws_get;
use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// OpenBao holding `app/db` and `app/db2`, and `ramsecrets proxy` run as a
/// developer would: HOME is a scratch directory, the Vault source logs in
/// with `~/.vault-token`, and a `file` source serves `api` beside it.
struct Laptop {
    bao: Bao,
    work: tempfile::TempDir,
    home: PathBuf,
    port: u16,
}

impl Laptop {
    fn new() -> Laptop {
        let bao = Bao::start();
        bao.app_policy();
        bao.kv2_put("app/db", json!({ "password": "one" }));
        bao.kv2_put("app/db2", json!({ "password": "other" }));
        let work = scratch();
        let home = work.path().join("home");
        std::fs::create_dir(&home).unwrap();
        file(
            work.path(),
            "dev.yaml",
            "prod/api: { token: dev-api-token }\n",
        );
        let port = free_port();
        Config::new()
            .source(json!({ "name": "vault", "vault": { "address": bao.addr, "auth": { "token_file": "~/.vault-token" } } }))
            .source(json!({ "name": "dev", "file": { "path": "dev.yaml" } }))
            .set(
                "proxy",
                json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "~/proxy-token" }),
            )
            .secret(json!({ "name": "db", "source": "vault", "kv": { "mount": "secret", "path": "app/db" } }))
            .secret(json!({ "name": "db2", "source": "vault", "kv": { "mount": "secret", "path": "app/db2" } }))
            .secret(json!({ "name": "api", "source": "dev", "secret_id": "prod/api", "key": "token" }))
            .write(work.path(), "config.yaml");
        Laptop {
            bao,
            work,
            home,
            port,
        }
    }

    /// A token of the `app` policy, as `bao login` leaves one, written to `~/.vault-token`.
    fn log_in(&self) -> String {
        let token = self.bao.api(
            "POST",
            "auth/token/create",
            json!({ "policies": ["app"], "ttl": "1h" }),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        std::fs::write(self.home.join(".vault-token"), &token).unwrap();
        token
    }

    /// `ramsecrets proxy`, once it listens; returns it and the proxy token.
    fn start(&self) -> (Running, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ramsecrets"));
        cmd.args(["proxy", "--config", "config.yaml"])
            .current_dir(self.work.path())
            .env("HOME", &self.home)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        let mut run = Running::spawn(self.work.path(), cmd);
        run.wait_log("ready; keeping secrets fresh", LIMIT * 2);
        let token = std::fs::read_to_string(self.home.join("proxy-token")).unwrap();
        (run, token.trim().to_owned())
    }

    /// GET `path` with the proxy token; returns the status and the body.
    fn get(&self, token: &str, path: &str) -> (u16, String) {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("X-Vault-Token", token)
            .timeout(LIMIT * 2)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }
}

/// The message of a Vault-shaped error body.
fn said(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_revoked_login_answers_503_at_once_for_its_source_and_the_others_keep_serving() {
    let laptop = Laptop::new();
    let first = laptop.log_in();
    let (mut run, token) = laptop.start();
    let db = "/v1/secret/data/app/db";
    let db2 = "/v1/secret/data/app/db2";
    assert_eq!(laptop.get(&token, db).0, 200);
    assert_eq!(laptop.get(&token, db2).0, 200);
    // `bao token revoke -self`; the next refreshNow hears 403.
    laptop
        .bao
        .api("POST", "auth/token/revoke", json!({ "token": first }));
    let (status, body) = laptop.get(&token, "/secretsmanager/get?secretId=db&refreshNow=true");
    assert_eq!(status, 503, "{body}");
    let aws: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(aws["__type"], "ServiceUnavailableException");
    assert!(
        aws["message"].as_str().unwrap().contains("bao login"),
        "{body}"
    );
    // Every secret of that source, at once: no poll in between.
    let (status, body) = laptop.get(&token, db2);
    assert_eq!(status, 503, "{body}");
    assert!(said(&body).contains("log in again"), "{body}");
    // The other source is not touched.
    assert_eq!(aws_get(laptop.port, &token, "api", ""), "dev-api-token");
    // Logging in again is picked up by the next request.
    laptop.bao.kv2_put("app/db2", json!({ "password": "new" }));
    laptop.log_in();
    let mut answer = (0, String::new());
    wait_until(LIMIT, "the proxy to serve again after the login", || {
        answer = laptop.get(&token, db2);
        answer.0 == 200
    });
    assert!(answer.1.contains("\"new\""), "{}", answer.1);
    assert!(!run.logs().contains(&first), "a Vault token was logged");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

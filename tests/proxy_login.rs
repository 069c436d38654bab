//! The laptop proxy and the developer's own Vault login (`~/.vault-token`):
//! a login that lapses or is revoked answers 503 with the way to log in
//! again, for every secret of its source at once, while the other sources
//! keep serving; logging in again is picked up without a restart, and no
//! value read with the revoked login is served after it.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::clients::aws_get;
use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// OpenBao holding `app/db`, `app/db2` and `app/db3`, and `ramsecrets proxy` run as a
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
        bao.kv2_put("app/db3", json!({ "password": "third" }));
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
            .secret(json!({ "name": "db3", "source": "vault", "kv": { "mount": "secret", "path": "app/db3" } }))
            .secret(json!({ "name": "api", "source": "dev", "secret_id": "prod/api", "key": "token" }))
            .write(work.path(), "config.yaml");
        Laptop {
            bao,
            work,
            home,
            port,
        }
    }

    /// A new token of the `app` policy.
    fn token(&self) -> String {
        self.bao.api(
            "POST",
            "auth/token/create",
            json!({ "policies": ["app"], "ttl": "1h" }),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token of the `app` policy, as `bao login` leaves one, written to `~/.vault-token`.
    fn log_in(&self) -> String {
        let token = self.token();
        std::fs::write(self.home.join(".vault-token"), &token).unwrap();
        token
    }

    /// `sh -c script` in the work directory, as the developer: HOME is theirs,
    /// and `ramsecrets` and `bao` are on PATH.
    fn shell(&self, script: &str) -> std::process::Output {
        let bin = |p: PathBuf| p.parent().unwrap().display().to_string();
        let path = format!(
            "{}:{}:/usr/bin:/bin",
            bin(env!("CARGO_BIN_EXE_ramsecrets").into()),
            bin(repo().join(".venv/bin/bao"))
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.work.path())
            .env("HOME", &self.home)
            .env("PATH", path)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .output()
            .unwrap()
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
    // Logging in again is picked up at the next request (`refreshNow` reads
    // at most once a second: until then it answers 503): `db`, asked first,
    // logs the source in again. `db3`, not asked since the revocation and not
    // polled (its first poll is minutes away, as a rule), was read with the
    // revoked login: it is read again before it is served, so it carries the
    // value written meanwhile.
    laptop.bao.kv2_put("app/db2", json!({ "password": "new" }));
    laptop.bao.kv2_put("app/db3", json!({ "password": "new" }));
    laptop.log_in();
    let served = |path: &str| {
        let mut answer = (0, String::new());
        wait_until(LIMIT, "the proxy to serve after the login", || {
            answer = laptop.get(&token, path);
            assert!(matches!(answer.0, 200 | 503), "{answer:?}");
            answer.0 == 200
        });
        answer.1
    };
    served(db);
    for path in [db2, "/v1/secret/data/app/db3"] {
        let body = served(path);
        assert!(
            body.contains("\"new\""),
            "{path}: served a value read with the revoked login: {body}"
        );
    }
    assert!(!run.logs().contains(&first), "a Vault token was logged");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn the_printed_env_keeps_bao_login_working_and_the_503_says_how() {
    let laptop = Laptop::new();
    let first = laptop.log_in();
    let (mut run, token) = laptop.start();
    let login = format!("VAULT_ADDR={} bao login", laptop.bao.addr);
    // What --print-env prints names the real server for logging in.
    let o = laptop.shell("ramsecrets proxy --config config.yaml --print-env");
    assert_exit(&o, 0);
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        printed.contains(&format!("(the proxy only reads): {login}\n")),
        "{printed}"
    );
    assert!(run.logs().contains(&login), "{}", run.logs());
    // The login lapses: the 503 says the command that logs in.
    laptop
        .bao
        .api("POST", "auth/token/revoke", json!({ "token": first }));
    let (status, body) = laptop.get(&token, "/secretsmanager/get?secretId=db&refreshNow=true");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&login), "{body}");
    // In the app's shell, `bao login` reaches the proxy, which says where to go;
    // the command it names logs in, and the proxy serves again.
    let new = laptop.token();
    let o = laptop.shell(&format!(
        "eval \"$(ramsecrets proxy --config config.yaml --print-env)\"\nbao login -no-print {new}"
    ));
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&login), "{}", text(&o));
    let o = laptop.shell(&format!(
        "eval \"$(ramsecrets proxy --config config.yaml --print-env)\"\n{login} -no-print {new}"
    ));
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read_to_string(laptop.home.join(".vault-token")).unwrap(),
        new
    );
    let mut answer = (0, String::new());
    wait_until(LIMIT, "the proxy to serve after `bao login`", || {
        answer = laptop.get(&token, "/v1/secret/data/app/db");
        answer.0 == 200
    });
    assert!(!run.logs().contains(&new), "a Vault token was logged");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn the_proxy_starts_before_the_login_and_serves_once_it_is_there() {
    let laptop = Laptop::new();
    // No ~/.vault-token yet: the proxy starts anyway.
    let (mut run, token) = laptop.start();
    let logs = run.logs();
    assert!(logs.contains("waiting for a login"), "{logs}");
    assert!(!logs.contains("no file was written"), "{logs}");
    // Its retries speak of what it holds, not of files it has none of.
    run.wait_log("refresh failed; the values held are kept", LIMIT);
    assert!(!run.logs().contains("files left"), "{}", run.logs());
    let login = format!("VAULT_ADDR={} bao login", laptop.bao.addr);
    for path in ["/v1/secret/data/app/db", "/v1/secret/data/app/db2"] {
        let (status, body) = laptop.get(&token, path);
        assert_eq!(status, 503, "{body}");
        let said = said(&body);
        assert!(said.contains(&login), "{said}");
        assert!(said.contains(".vault-token"), "{said}");
    }
    // The other source serves from the start.
    assert_eq!(aws_get(laptop.port, &token, "api", ""), "dev-api-token");
    // `bao login`, at Vault itself as the message says, and the next request is served.
    let o = laptop.shell(&format!("{login} -no-print {}", laptop.token()));
    assert_exit(&o, 0);
    let mut answer = (0, String::new());
    wait_until(LIMIT, "the proxy to serve after `bao login`", || {
        answer = laptop.get(&token, "/v1/secret/data/app/db");
        answer.0 == 200
    });
    assert!(answer.1.contains("\"one\""), "{}", answer.1);
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

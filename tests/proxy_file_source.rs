//! The local credential proxy over the `file` source: both APIs, and each
//! hardening rule (the token, methods and headers, heads that are huge or
//! never end, the connection cap, loopback only) with errors in the shape
//! each client parses.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::clients::{aws_get, hvac_read, proxy_section, python, start_proxy};
use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

fn status(port: u16, request: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A proxy over the `file` source (`db` from `secret/app/db`, `api` from
/// `prod/api`) with at most 3 connections; returns it, its port and token.
fn file_proxy(work: &Path, out: &Path) -> (Running, u16, String) {
    file(
        work,
        "dev.yaml",
        "secret/app/db:\n  password: dev\nprod/api:\n  token: t0k\n",
    );
    let port = free_port();
    let mut proxy = proxy_section(port);
    proxy["max_connections"] = json!(3);
    let config = Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .set("proxy", proxy)
        .secret(kv("db", "secret", "app/db"))
        .secret(json!({ "name": "api", "secret_id": "prod/api", "key": "token" }));
    let (run, token) = start_proxy(work, &config.yaml());
    (run, port, token)
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn the_file_source_serves_both_apis() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port, token) = file_proxy(work.path(), out.path());
    assert_eq!(
        hvac_read(port, &token, "secret", "app/db"),
        r#"{"password": "dev"}"#
    );
    assert_eq!(
        aws_get(port, &token, "prod/api", "&versionStage=AWSCURRENT"),
        "t0k"
    );
    // The AWS agent's /v1/<secretId> path, with the Vault token header.
    let (code, body) = {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/v1/prod/api"))
            .header("X-Vault-Token", &token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["SecretString"],
        "t0k"
    );
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn requests_are_answered_only_with_the_token_and_in_shape() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port, token) = file_proxy(work.path(), out.path());
    let req = |method: &str, path: &str, headers: &str| {
        status(
            port,
            &format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"),
        )
    };
    let auth = format!("X-Aws-Parameters-Secrets-Token: {token}\r\n");
    assert_eq!(req("GET", "/ping", ""), 200);
    assert_eq!(req("GET", "/secretsmanager/get?secretId=db", ""), 401);
    assert_eq!(
        req(
            "GET",
            "/secretsmanager/get?secretId=db",
            "X-Aws-Parameters-Secrets-Token: wrong\r\n"
        ),
        403
    );
    assert_eq!(req("GET", "/secretsmanager/get?secretId=db", &auth), 200);
    assert_eq!(req("POST", "/secretsmanager/get?secretId=db", &auth), 405);
    assert_eq!(
        req(
            "GET",
            "/secretsmanager/get?secretId=db",
            &format!("{auth}X-Forwarded-For: 10.1.2.3\r\n")
        ),
        400
    );
    assert_eq!(
        req("GET", "/secretsmanager/get?secretId=unknown", &auth),
        404
    );
    assert_eq!(req("GET", "/v1/sys/seal-status", &auth), 404);
    assert_eq!(
        req(
            "GET",
            "/secretsmanager/get?secretId=db&versionStage=AWSPENDING",
            &auth
        ),
        404
    );
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_head_that_never_ends_is_cut_off() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port, _) = file_proxy(work.path(), out.path());
    // The server closes the connection, after a 408 at most.
    let answer = raw::cut_off(port, b"GET /ping HTTP/1.1\r\nHost: x\r\n");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(raw::exchange(port, PING).starts_with("HTTP/1.1 200"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_huge_head_gets_431_and_ping_still_works() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port, token) = file_proxy(work.path(), out.path());
    let huge = format!(
        "GET /secretsmanager/get?secretId=db HTTP/1.1\r\nHost: x\r\nX-Aws-Parameters-Secrets-Token: {token}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw::exchange(port, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(raw::exchange(port, PING).starts_with("HTTP/1.1 200"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn connections_over_max_connections_get_429() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port, _) = file_proxy(work.path(), out.path());
    // Three idle connections fill the proxy: the next one gets 429.
    assert!(
        raw::refused_over_the_cap(port, 3, PING),
        "the 4th connection was served"
    );
    wait_until(LIMIT, "connections to be served again", || {
        raw::exchange(port, PING).starts_with("HTTP/1.1 200")
    });
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_non_loopback_listen_address_needs_allow_remote() {
    let work = scratch();
    let base = Config::new()
        .source(file_source("dev.yaml"))
        .output(Path::new("/dev/shm"))
        .secret(kv("db", "secret", "app/db"));
    let cfg = base
        .clone()
        .set(
            "proxy",
            json!({ "listen": "0.0.0.0:2773", "token_file": "t" }),
        )
        .write(work.path(), "c.yaml");
    let o = ramsecrets(&["check", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("proxy.listen") && text(&o).contains("allow_remote"),
        "{}",
        text(&o)
    );
    let cfg = base
        .clone()
        .set(
            "proxy",
            json!({ "listen": "0.0.0.0:2773", "token_file": "t", "allow_remote": true }),
        )
        .write(work.path(), "c.yaml");
    let o = ramsecrets(&["check", "--config-only", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 0);
    // `ramsecrets proxy` needs a proxy section.
    let cfg = base.write(work.path(), "c.yaml");
    let o = ramsecrets(&["proxy", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("no `proxy:` section"), "{}", text(&o));
}

#[test]
fn errors_come_in_the_shape_each_client_parses() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: dev\n");
    let port = free_port();
    let config = Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .set("proxy", proxy_section(port))
        .secret(kv("db", "secret", "app/db"));
    let (mut run, token) = start_proxy(work.path(), &config.yaml());
    // Vault's SDK reads `errors` and raises the exception of each status.
    let said = python(&format!(
        "import hvac\nfor token, path in [('{token}', 'nope'), ('wrong', 'app/db'), (None, 'app/db')]:\n    c = hvac.Client(url='http://127.0.0.1:{port}', token=token)\n    c.token = token  # not ~/.vault-token\n    try:\n        c.secrets.kv.v2.read_secret_version(path=path, mount_point='secret', raise_on_deleted_version=True)\n        print('read')\n    except hvac.exceptions.VaultError as e:\n        print(type(e).__name__, '|', e.errors[0])"
    ));
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 3, "{said}");
    assert_eq!(
        lines[0],
        "InvalidPath | no secret is configured at `secret/data/nope` in this proxy"
    );
    assert!(
        lines[1].starts_with("Forbidden | permission denied"),
        "{said}"
    );
    assert!(
        lines[2].starts_with("Unauthorized | missing client token"),
        "{said}"
    );
    // The AWS agent API answers with the service's JSON error.
    let get = |query: &str, token: Option<&str>| {
        let mut r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/secretsmanager/get{query}"));
        if let Some(t) = token {
            r = r.header("X-Aws-Parameters-Secrets-Token", t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().unwrap())
    };
    assert_eq!(
        get("?versionStage=AWSCURRENT", Some(&token)),
        (
            400,
            json!({ "__type": "InvalidParameterException", "message": "secretId is required" })
        )
    );
    let (status, body) = get("?secretId=prod/nope", Some(&token));
    assert_eq!(
        (status, &body["__type"]),
        (404, &json!("ResourceNotFoundException"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("`prod/nope`"),
        "{body}"
    );
    let (missing, wrong) = (
        get("?secretId=db", None),
        get("?secretId=db", Some("wrong")),
    );
    assert_eq!((missing.0, wrong.0), (401, 403));
    assert_ne!(missing.1["message"], wrong.1["message"]);
    assert!(missing.1["message"]
        .as_str()
        .unwrap()
        .contains("X-Aws-Parameters-Secrets-Token"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

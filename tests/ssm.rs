//! AWS Systems Manager Parameter Store against a real moto server: `init`
//! writes String and SecureString parameters (decrypted), pinned versions and
//! labels, and a path's parameters as fields, reading 10 names per
//! GetParameters call (counted on the wire); a missing parameter exits 65
//! naming it; `run` follows a new version, which the proxy serves in the shape
//! of the AWS Parameters and Secrets extension (with the service's ARN and
//! LastModifiedDate). `check --online`: check_online.rs; the drill: drill_ssm.rs.

mod common;

use std::time::Duration;

use common::moto::{AwsEnv, Moto};
use common::recorder::Recorder;
use common::*;
use serde_json::{json, Value};

/// A config with one `ssm_parameter_store` source at `endpoint`.
fn config(endpoint: &str, out: &Tmpfs, secrets: &[Value]) -> Config {
    secrets.iter().fold(
        Config::new()
            .source(
                json!({ "ssm_parameter_store": { "region": "us-east-1", "endpoint": endpoint } }),
            )
            .output(out.path()),
        |c, s| c.secret(s.clone()),
    )
}

#[test]
fn init_writes_parameters_versions_labels_and_paths() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let out = Tmpfs::new("4m");
    moto.put_parameter("/app/db/user", "app", "String");
    moto.put_parameter("/app/db/password", "first-pass", "SecureString");
    moto.put_parameter("/app/db/password", "second-pass", "SecureString");
    moto.ssm(
        "LabelParameterVersion",
        json!({ "Name": "/app/db/password", "ParameterVersion": 1, "Labels": ["prod"] }),
    );
    moto.put_parameter("/app/db/nested/port", "5432", "String");
    moto.put_parameter("token", "plain-token", "String");
    for i in 0..21 {
        moto.put_parameter(&format!("/many/p{i}"), &format!("v{i}"), "String");
    }
    let mut secrets = vec![
        json!({ "name": "password", "parameter": "/app/db/password" }),
        json!({ "name": "first", "parameter": "/app/db/password", "version": 1 }),
        json!({ "name": "prod", "parameter": "/app/db/password", "label": "prod" }),
        json!({ "name": "token", "parameter": "token", "format": "json" }),
        json!({ "name": "db", "parameters_by_path": "/app/db", "file": "db.json" }),
        json!({ "name": "url", "parameters_by_path": "/app/db/",
                "template": "postgres://{{ user }}:{{ password }}@db:{{ port }}" }),
    ];
    let many: Vec<Value> = (0..21)
        .map(|i| json!({ "name": format!("p{i}"), "parameter": format!("/many/p{i}") }))
        .collect();
    secrets.extend(many.iter().cloned());
    let cfg = config(&proxy.url(), &out, &secrets).write(work.path(), "config.yaml");
    let o = AwsEnv::keys()
        .command(&["init", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert_eq!(out.read("password"), "second-pass");
    assert_eq!(out.read("first"), "first-pass");
    assert_eq!(out.read("prod"), "first-pass");
    assert_eq!(
        serde_json::from_str::<Value>(&out.read("token")).unwrap(),
        json!({ "value": "plain-token" })
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out.read("db.json")).unwrap(),
        json!({ "user": "app", "password": "second-pass", "port": "5432" })
    );
    assert_eq!(out.read("url"), "postgres://app:second-pass@db:5432");
    assert_eq!(out.read("p20"), "v20");
    // 25 reads of 23 parameters, 10 a call, the three of /app/db/password in
    // three calls; the two secrets of /app/db are one read of the path.
    assert_eq!(proxy.count("GetParameters"), 3, "{:?}", proxy.calls());
    assert_eq!(proxy.count("GetParametersByPath"), 1, "{:?}", proxy.calls());
    let t = text(&o);
    for value in ["first-pass", "second-pass", "plain-token"] {
        assert!(!t.contains(value), "`{value}` in the output:\n{t}");
    }
}

#[test]
fn a_missing_parameter_exits_65_and_names_it() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("1m");
    moto.put_parameter("/app/here", "x", "String");
    let env = AwsEnv::keys();
    for (secret, named) in [
        (
            json!({ "name": "gone", "parameter": "/app/gone" }),
            "parameter `/app/gone`",
        ),
        (
            json!({ "name": "old", "parameter": "/app/here", "version": 7 }),
            "parameter `/app/here` (version 7)",
        ),
        (
            json!({ "name": "none", "parameters_by_path": "/nothing/here" }),
            "parameters_by_path `/nothing/here`",
        ),
    ] {
        let cfg = config(&moto.url, &out, &[secret]).write(work.path(), "config.yaml");
        let o = env
            .command(&["init", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&o, 65);
        let t = text(&o);
        assert!(t.contains(named) && t.contains("not found"), "{t}");
    }
    assert!(out.names().is_empty(), "{:?}", out.names());
}

#[test]
fn the_sidecar_follows_a_new_version_and_the_proxy_serves_it_as_the_extension() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("1m");
    moto.put_parameter("/app/api-key", "key-1", "SecureString");
    let (health, proxy) = (free_port(), free_port());
    let cfg = config(
        &moto.url,
        &out,
        &[
            json!({ "name": "api-key", "parameter": "/app/api-key", "refresh": "1s" }),
            json!({ "name": "first", "parameter": "/app/api-key", "version": 1 }),
        ],
    )
    .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
    .set(
        "proxy",
        json!({ "listen": format!("127.0.0.1:{proxy}"), "token_file": "proxy-token" }),
    )
    .write(work.path(), "config.yaml");
    let cmd = AwsEnv::keys().command(&["run", "--config", cfg.to_str().unwrap()]);
    let mut run = Running::spawn(work.path(), cmd);
    run.wait_log("ready; keeping secrets fresh", Duration::from_secs(60));
    assert_eq!(out.read("api-key"), "key-1");
    assert_eq!(
        moto.put_parameter("/app/api-key", "key-2", "SecureString"),
        2
    );
    wait_until(
        Duration::from_secs(60),
        "the new version in the file",
        || out.read("api-key") == "key-2",
    );
    assert!(!run.logs().contains("key-2"), "{}", run.logs());
    // The proxy answers as the AWS Parameters and Secrets extension does
    // (called with curl, as its docs do), from the same refreshed state.
    let token = std::fs::read_to_string(work.path().join("proxy-token")).unwrap();
    let get = |query: &str| -> (String, Value) {
        let curl = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg(format!("X-Aws-Parameters-Secrets-Token: {token}"))
            .arg(format!(
                "http://127.0.0.1:{proxy}/systemsmanager/parameters/get?{query}"
            ))
            .output()
            .unwrap();
        let text = String::from_utf8(curl.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), serde_json::from_str(body).unwrap())
    };
    let (status, v) = get("name=%2Fapp%2Fapi-key&withDecryption=true");
    assert_eq!(status, "200", "{v}");
    assert_eq!(v["Parameter"]["Value"], "key-2");
    assert_eq!(v["Parameter"]["Version"], 2);
    assert_eq!(v["Parameter"]["Name"], "/app/api-key");
    // The service's own ARN and LastModifiedDate, not made-up ones.
    let stored = moto.ssm("GetParameter", json!({ "Name": "/app/api-key" }))["Parameter"].clone();
    assert_eq!(v["Parameter"]["ARN"], stored["ARN"], "{v}");
    let modified = v["Parameter"]["LastModifiedDate"].as_str().unwrap();
    let modified = humantime::parse_rfc3339(modified).unwrap();
    let since = modified.duration_since(std::time::UNIX_EPOCH).unwrap();
    let moto_at = stored["LastModifiedDate"].as_f64().unwrap();
    assert!((since.as_secs_f64() - moto_at).abs() < 1.0, "{v} {stored}");
    let (status, v) = get("name=%2Fapp%2Fapi-key:1&withDecryption=true");
    assert_eq!(
        (status.as_str(), &v["Parameter"]["Value"]),
        ("200", &json!("key-1"))
    );
    let (status, v) = get("name=%2Fapp%2Fother&withDecryption=true");
    assert_eq!(status, "404", "{v}");
    assert!(v["message"].as_str().unwrap().contains("/app/other"), "{v}");
    // Calls are counted per operation in the metrics.
    let (_, m) = http_get(&format!("http://127.0.0.1:{health}/metrics")).unwrap();
    let calls = r#"ramsecrets_backend_api_calls_total{source="ssm",operation="GetParameters"}"#;
    assert!(metric(&m, calls).unwrap() >= 2.0, "{m}");
}

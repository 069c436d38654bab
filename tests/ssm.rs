//! AWS Systems Manager Parameter Store against a real moto server: `init`
//! writes String and SecureString parameters (decrypted), pinned versions and
//! labels, and a path's parameters as fields, reading 10 names per
//! GetParameters call (counted on the wire); a missing parameter exits 65
//! naming it; `run` follows a new version. `check --online`: check_online.rs.

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
fn the_sidecar_follows_a_new_version() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("1m");
    moto.put_parameter("/app/api-key", "key-1", "SecureString");
    let cfg = config(
        &moto.url,
        &out,
        &[json!({ "name": "api-key", "parameter": "/app/api-key", "refresh": "1s" })],
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
}

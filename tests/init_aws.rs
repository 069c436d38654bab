//! `ramsecrets init` against a real moto server (AWS Secrets Manager and STS):
//! formats, JSON keys, binary secrets, version stages, `previous: true`
//! during a rotation, batching counted on the wire, the fallback when a policy
//! denies the batch call, and the web identity credential flow. Faults and
//! their exit codes are in aws_faults.rs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::moto::{AwsEnv, Moto};
use common::recorder::Recorder;
use common::*;
use serde_json::json;

/// An unnamed `aws_secrets_manager` source (named `aws`) at `endpoint`.
fn source(endpoint: &str) -> String {
    format!(
        "sources:\n  - aws_secrets_manager:\n      region: us-east-1\n      endpoint: {endpoint}\n"
    )
}

fn config(endpoint: &str, out: &Tmpfs, secrets: &str) -> String {
    format!(
        "{}output:\n  dir: {}\nsecrets:\n{secrets}",
        source(endpoint),
        out.path().display()
    )
}

#[test]
fn writes_aws_secrets_through_every_format() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("16m");
    let first = moto.create(
        "app/db",
        r#"{"username":"app","password":"first-pass","port":5432}"#,
    );
    moto.put(
        "app/db",
        r#"{"username":"app","password":"second pass's \"$x\"","port":5432}"#,
        &[],
    );
    moto.put(
        "app/db",
        r#"{"username":"app","password":"pending-pass","port":5432}"#,
        &["AWSPENDING"],
    );
    moto.create("app/token", "plain-token-value\n");
    let blob = [0u8, 159, 146, 150, 255, 10, 13, 0];
    moto.create_binary("app/keystore", &blob);
    let arn = moto.arn("app/token");
    // A template's braces, kept out of the format string below.
    let url_template =
        "    template: \"postgres://{{ username }}@db:{{ port }}/{{ password | length }}\"\n";
    let o = AwsEnv::keys().init(
        work.path(),
        &config(
            &moto.url,
            &out,
            &format!(
                "  - name: db
    secret_id: app/db
    file: db.json
    format: json
  - name: stored
    secret_id: app/db
  - name: db-env
    secret_id: app/db
    file: db.env
    format: env
  - name: db-yaml
    secret_id: app/db
    file: db.yaml
    format: yaml
  - name: url
    secret_id: app/db
{url_template}  - name: password
    secret_id: app/db
    key: password
    mode: \"0440\"
  - name: pending
    secret_id: app/db
    version_stage: AWSPENDING
    key: password
  - name: first
    secret_id: app/db
    version_id: {first}
    key: password
  - name: token
    secret_id: {arn}
  - name: token-key
    secret_id: app/token
    key: value
  - name: keystore
    secret_id: app/keystore
    file: keystore.p12
"
            ),
        ),
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(
        out.names(),
        [
            "db.env",
            "db.json",
            "db.yaml",
            "first",
            "keystore.p12",
            "password",
            "pending",
            "stored",
            "token",
            "token-key",
            "url"
        ]
    );
    let db: serde_json::Value = serde_json::from_str(&out.read("db.json")).unwrap();
    assert_eq!(
        db,
        json!({ "username": "app", "password": "second pass's \"$x\"", "port": "5432" })
    );
    assert_eq!(
        out.read("db.yaml"),
        "password: second pass's \"$x\"\nport: \"5432\"\nusername: app\n"
    );
    assert_eq!(out.source_var("db.env", "password"), "second pass's \"$x\"");
    // By default, the SecretString exactly as stored.
    assert_eq!(
        out.read("stored"),
        r#"{"username":"app","password":"second pass's \"$x\"","port":5432}"#
    );
    assert_eq!(out.read("url"), "postgres://app@db:5432/18");
    assert_eq!(out.read("password"), "second pass's \"$x\"");
    assert_eq!(out.read("pending"), "pending-pass");
    assert_eq!(out.read("first"), "first-pass");
    assert_eq!(out.read("token"), "plain-token-value\n");
    assert_eq!(out.read("token-key"), "plain-token-value\n");
    assert_eq!(
        std::fs::read(out.path().join("keystore.p12")).unwrap(),
        blob
    );
    let mode = |f: &str| {
        std::fs::metadata(out.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("password"), mode("db.json")), (0o440, 0o400));
    let t = text(&o);
    for value in [
        "first-pass",
        "second pass",
        "pending-pass",
        "plain-token-value",
    ] {
        assert!(!t.contains(value), "`{value}` in the output:\n{t}");
    }
}

#[test]
fn a_missing_secret_or_field_exits_65_and_names_it() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    moto.create("app/db", r#"{"username":"app","password":"pw-65"}"#);
    let env = AwsEnv::keys();
    let o = env.init(
        work.path(),
        &config(&moto.url, &out, "  - name: gone\n    secret_id: app/nope\n"),
        &[],
    );
    assert_exit(&o, 65);
    let t = text(&o);
    assert!(
        t.contains("secret `gone`")
            && t.contains("secret_id `app/nope`")
            && t.contains("not found"),
        "{t}"
    );
    let o = env.init(
        work.path(),
        &config(
            &moto.url,
            &out,
            "  - name: db\n    secret_id: app/db\n    key: passwd\n",
        ),
        &[],
    );
    assert_exit(&o, 65);
    let t = text(&o);
    assert!(
        t.contains("field `passwd` is not in the secret (it has: password, username)"),
        "{t}"
    );
    assert!(!t.contains("pw-65"), "{t}");
    let o = env.init(
        work.path(),
        &config(
            &moto.url,
            &out,
            "  - name: db\n    secret_id: app/db\n    version_stage: AWSPENDING\n",
        ),
        &[],
    );
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("secret_id `app/db` (AWSPENDING)"),
        "{}",
        text(&o)
    );
    assert!(out.names().is_empty(), "{:?}", out.names());
}

#[test]
fn forty_five_secrets_cost_three_batch_calls_on_the_wire() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let out = Tmpfs::new("16m");
    let mut secrets = String::new();
    for i in 0..45 {
        moto.create(
            &format!("bulk/s{i:02}"),
            &json!({ "n": format!("value-{i}") }).to_string(),
        );
        secrets.push_str(&format!(
            "  - name: s{i:02}\n    secret_id: bulk/s{i:02}\n    key: n\n"
        ));
    }
    // The same secret twice costs no second entry in a batch.
    secrets.push_str("  - name: again\n    secret_id: bulk/s00\n    format: json\n");
    let o = AwsEnv::keys().init(
        work.path(),
        &config(&proxy.url(), &out, &secrets),
        &["--log-level", "debug"],
    );
    assert_exit(&o, 0);
    assert_eq!(out.names().len(), 46);
    assert_eq!(out.read("s07"), "value-7");
    assert_eq!(out.read("s44"), "value-44");
    assert_eq!(out.read("again"), r#"{"n":"value-0"}"#);
    assert_eq!(
        proxy.calls(),
        ["BatchGetSecretValue"; 3],
        "calls on the wire"
    );
    assert!(
        text(&o).contains("batch_get_secret_value=3 get_secret_value=0"),
        "{}",
        text(&o)
    );
}

/// Calls per refresh cycle for 1, 20, 45 and 200 secrets, counted on the
/// wire; `cargo test --test init_aws calls_per -- --nocapture` prints them.
#[test]
fn calls_per_refresh_cycle_are_one_per_twenty_secrets() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let env = AwsEnv::keys();
    for i in 0..200 {
        moto.create(&format!("n/s{i:03}"), &format!("v{i}"));
    }
    let mut table = String::from("secrets  BatchGetSecretValue  GetSecretValue  total\n");
    for n in [1usize, 20, 45, 200] {
        let out = Tmpfs::new("16m");
        let secrets: String = (0..n)
            .map(|i| format!("  - name: s{i:03}\n    secret_id: n/s{i:03}\n"))
            .collect();
        proxy.reset();
        let o = env.init(work.path(), &config(&proxy.url(), &out, &secrets), &[]);
        assert_exit(&o, 0);
        assert_eq!(out.names().len(), n);
        let (batch, get) = (
            proxy.count("BatchGetSecretValue"),
            proxy.count("GetSecretValue"),
        );
        table.push_str(&format!(
            "{n:>7}  {batch:>19}  {get:>14}  {:>5}\n",
            proxy.calls().len()
        ));
        assert_eq!((batch, get), (n.div_ceil(20), 0), "{n} secrets");
        assert_eq!(proxy.calls().len(), n.div_ceil(20), "{n} secrets");
    }
    println!("AWS calls per refresh cycle (on the wire):\n{table}");
}

#[test]
fn previous_true_follows_a_staged_rotation() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let out = Tmpfs::new("4m");
    let env = AwsEnv::keys();
    let v1 = moto.create("rot/db", r#"{"username":"user-a","password":"pw-one"}"#);
    let cfg = config(
        &proxy.url(),
        &out,
        "  - name: db\n    secret_id: rot/db\n    file: db.json\n    previous: true\n  - name: plain\n    secret_id: rot/db\n    key: password\n",
    );
    let user = |f: &str| -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&out.read(f)).unwrap();
        (
            v["username"].as_str().unwrap().to_owned(),
            v["password"].as_str().unwrap().to_owned(),
        )
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());

    // Never rotated: no AWSPREVIOUS yet, so .previous holds the current version.
    let o = env.init(work.path(), &cfg, &[]);
    assert_exit(&o, 0);
    assert_eq!(out.names(), ["db.json", "db.json.previous", "plain"]);
    assert_eq!(user("db.json"), pair("user-a", "pw-one"));
    assert_eq!(user("db.json.previous"), pair("user-a", "pw-one"));
    // One batch call for both secrets, one GetSecretValue for AWSPREVIOUS.
    let mut calls = proxy.calls();
    calls.sort();
    assert_eq!(calls, ["BatchGetSecretValue", "GetSecretValue"]);

    // put-secret-value: the new version is current, the old one previous.
    let v2 = moto.put(
        "rot/db",
        r#"{"username":"user-b","password":"pw-two"}"#,
        &[],
    );
    assert_exit(&env.init(work.path(), &cfg, &[]), 0);
    assert_eq!(user("db.json"), pair("user-b", "pw-two"));
    assert_eq!(user("db.json.previous"), pair("user-a", "pw-one"));

    // A rotation in progress: AWSPENDING changes nothing yet.
    let v3 = moto.put(
        "rot/db",
        r#"{"username":"user-a","password":"pw-three"}"#,
        &["AWSPENDING"],
    );
    assert_exit(&env.init(work.path(), &cfg, &[]), 0);
    assert_eq!(user("db.json"), pair("user-b", "pw-two"));
    assert_eq!(user("db.json.previous"), pair("user-a", "pw-one"));
    assert_eq!(out.read("plain"), "pw-two");
    // Moving AWSCURRENT with UpdateSecretVersionStage: see tests/drill.rs.

    // The next rotation: the pending value is put as current.
    moto.put(
        "rot/db",
        r#"{"username":"user-a","password":"pw-three"}"#,
        &[],
    );
    assert_exit(&env.init(work.path(), &cfg, &[]), 0);
    assert_eq!(user("db.json"), pair("user-a", "pw-three"));
    assert_eq!(user("db.json.previous"), pair("user-b", "pw-two"));
    assert_eq!(out.read("plain"), "pw-three");
    assert_ne!(v1, v2);
    assert_ne!(v2, v3);
}

#[test]
fn a_denied_batch_call_falls_back_to_one_call_per_secret_and_says_why_once() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let out = Tmpfs::new("4m");
    let mut secrets = String::new();
    for i in 0..25 {
        moto.create(&format!("fb/s{i:02}"), &format!("value-{i}"));
        secrets.push_str(&format!("  - name: s{i:02}\n    secret_id: fb/s{i:02}\n"));
    }
    proxy.fail(
        "BatchGetSecretValue",
        400,
        "AccessDeniedException",
        usize::MAX,
    );
    let o = AwsEnv::keys().init(work.path(), &config(&proxy.url(), &out, &secrets), &[]);
    assert_exit(&o, 0);
    assert_eq!(out.names().len(), 25);
    assert_eq!(out.read("s24"), "value-24");
    assert_eq!(proxy.count("BatchGetSecretValue"), 2, "{:?}", proxy.calls());
    assert_eq!(proxy.count("GetSecretValue"), 25);
    let t = text(&o);
    assert_eq!(
        t.matches("BatchGetSecretValue is denied by policy").count(),
        1,
        "{t}"
    );
    assert!(
        t.contains("allow secretsmanager:BatchGetSecretValue"),
        "{t}"
    );
}

#[test]
fn web_identity_credentials_come_from_sts() {
    let moto = Moto::start();
    let proxy = Recorder::start(moto.port);
    let work = scratch();
    let out = Tmpfs::new("4m");
    moto.create("wi/api", r#"{"token":"tok-web-identity"}"#);
    let cfg = config(
        &proxy.url(),
        &out,
        "  - name: api\n    secret_id: wi/api\n    key: token\n",
    );

    // No credentials anywhere: a configuration error that says what was tried.
    let o = AwsEnv::bare().init(work.path(), &cfg, &[]);
    assert_exit(&o, 78);
    let t = text(&o);
    assert!(t.contains("no AWS credentials found"), "{t}");
    assert!(t.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{t}");

    // IRSA: a role and a projected token; STS (moto's, through the proxy) swaps them for keys.
    let mut env = AwsEnv::bare();
    let token = file(
        env.dir(),
        "token",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln",
    );
    env.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/app");
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap());
    env.set("AWS_ROLE_SESSION_NAME", "ramsecrets-test");
    env.set("AWS_ENDPOINT_URL_STS", &proxy.url());
    proxy.reset();
    let o = env.init(work.path(), &cfg, &[]);
    assert_exit(&o, 0);
    assert_eq!(out.read("api"), "tok-web-identity");
    assert_eq!(
        proxy.calls(),
        ["AssumeRoleWithWebIdentity", "BatchGetSecretValue"]
    );
}

#[test]
fn a_trace_level_run_shows_no_secret_value() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    moto.create(
        "tr/db",
        r#"{"username":"trace-user-x","password":"trace-pw-9f3k"}"#,
    );
    moto.put(
        "tr/db",
        r#"{"username":"trace-user-x","password":"trace-pw-next-7q"}"#,
        &[],
    );
    moto.create("tr/plain", "trace-plain-z81");
    moto.create_binary("tr/bin", b"trace-binary-q55");
    let o = AwsEnv::keys().init(
        work.path(),
        &config(
            &moto.url,
            &out,
            "  - name: db\n    secret_id: tr/db\n    previous: true\n  - name: plain\n    secret_id: tr/plain\n  - name: bin\n    secret_id: tr/bin\n  - name: pinned\n    secret_id: tr/db\n    version_stage: AWSPREVIOUS\n    key: password\n",
        ),
        &["--log-level", "trace"],
    );
    assert_exit(&o, 0);
    assert_eq!(out.read("bin"), "trace-binary-q55");
    assert_eq!(out.read("pinned"), "trace-pw-9f3k");
    let t = text(&o);
    assert!(t.contains("TRACE"), "not a trace-level run:\n{t}");
    for value in [
        "trace-user-x",
        "trace-pw-9f3k",
        "trace-pw-next-7q",
        "trace-plain-z81",
        "trace-binary-q55",
        // SecretBinary travels base64-encoded.
        "dHJhY2UtYmluYXJ5LXE1NQ",
    ] {
        assert!(!t.contains(value), "`{value}` is in the trace output");
    }
}

#[test]
fn check_prints_the_aws_plan_of_the_example() {
    let o = ramsecrets(&[
        "check",
        "--config-only",
        "--config",
        repo().join("examples/aws.yaml").to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    let t = text(&o);
    for line in [
        "  aws: aws_secrets_manager (region eu-west-1, credentials from the SDK default chain; BatchGetSecretValue, 20 per call)",
        "  api: secret_id prod/api from aws -> api (raw, mode 0400)",
        "  db-password: secret_id prod/db +AWSPREVIOUS from aws -> db-password, db-password.previous (raw key password, mode 0400)",
        "  db-pending: secret_id prod/db @AWSPENDING from aws -> db-pending (template, mode 0400)",
    ] {
        assert!(t.contains(line), "{line}\nnot in\n{t}");
    }
}

#[test]
fn in_run_mode_a_put_secret_value_reaches_the_file_and_the_proxy() {
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    moto.create("app/db", r#"{"password":"one"}"#);
    let recorder = Recorder::start(moto.port);
    let (health, proxy) = (free_port(), free_port());
    let cfg = Config::new()
        .source(
            json!({ "aws_secrets_manager": { "region": "us-east-1", "endpoint": recorder.url() } }),
        )
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .set(
            "proxy",
            json!({ "listen": format!("127.0.0.1:{proxy}"), "token_file": "proxy-token" }),
        )
        .secret(json!({ "name": "db", "secret_id": "app/db", "key": "password", "previous": true }))
        .write(work.path(), "config.yaml");
    let env = AwsEnv::keys();
    let mut run = Running::spawn(
        work.path(),
        env.command(&["run", "--config", cfg.to_str().unwrap()]),
    );
    run.wait_log(
        "ready; keeping secrets fresh",
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.read("db"), "one");
    moto.put("app/db", r#"{"password":"two"}"#, &[]);
    wait_until(
        std::time::Duration::from_secs(30),
        "the new value in the file",
        || out.read("db") == "two",
    );
    // The proxy answers as the AWS agent does (called with curl, as its docs do),
    // from the same refreshed state.
    let token = std::fs::read_to_string(work.path().join("proxy-token")).unwrap();
    let get = |query: &str| -> serde_json::Value {
        let curl = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("X-Aws-Parameters-Secrets-Token: {token}"))
            .arg(format!(
                "http://127.0.0.1:{proxy}/secretsmanager/get?secretId=app/db{query}"
            ))
            .output()
            .unwrap();
        assert!(curl.status.success(), "curl failed for {query}");
        serde_json::from_slice(&curl.stdout).unwrap()
    };
    let answer = get("");
    // `previous: true` keeps AWSPREVIOUS at hand, in the file and through the proxy.
    wait_until(
        std::time::Duration::from_secs(30),
        "the previous value",
        || std::fs::read_to_string(out.path().join("db.previous")).is_ok_and(|v| v == "one"),
    );
    let previous = get("&versionStage=AWSPREVIOUS");
    assert_eq!(previous["SecretString"], "one");
    assert_eq!(previous["VersionStages"][0], "AWSPREVIOUS");
    let by_id = get(&format!(
        "&versionId={}",
        previous["VersionId"].as_str().unwrap()
    ));
    assert_eq!(by_id["SecretString"], "one");
    assert_eq!(answer["SecretString"], "two");
    assert_eq!(answer["Name"], "app/db");
    // Calls per API operation are in the metrics, and match the wire.
    let (_, m) = http_get(&format!("http://127.0.0.1:{health}/metrics")).unwrap();
    let batch = metric(
        &m,
        "ramsecrets_backend_api_calls_total{source=\"aws\",operation=\"BatchGetSecretValue\"}",
    )
    .unwrap();
    assert!(batch >= 2.0, "{m}");
    assert!(
        (batch - recorder.count("BatchGetSecretValue") as f64).abs() <= 1.0,
        "{m}"
    );
    assert_eq!(run.stop(rustix::process::Signal::TERM), Some(0));
}

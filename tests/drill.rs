//! `ramsecrets drill` end to end: real OpenBao, PostgreSQL and moto, a real
//! sidecar (`ramsecrets run`), and the example app (examples/drill-app) as
//! the app under test. Nothing here asserts a duration: waits poll with
//! generous limits, and the lag is checked against the sidecar's own refresh
//! cadence as its metrics report it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::drill::*;
use common::moto::{AwsEnv, Moto};
use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

fn python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    let ok = Command::new(&p)
        .args(["-c", "import psycopg"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import psycopg: run `bash scripts/testbed`",
        p.display()
    );
    p
}

/// The example app, serving /healthz on a free port; killed on drop.
struct App {
    child: Child,
    port: u16,
    pid_file: PathBuf,
    log: PathBuf,
}

impl App {
    /// Starts the app; it writes its pid to `work/app.pid`, which the sidecar signals.
    fn start(work: &Path, creds: &Path, pg: &Postgres, extra: &[&str]) -> App {
        let port = free_port();
        let pid_file = work.join("app.pid");
        let log = work.join(format!("app-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(python())
            .arg(repo().join("examples/drill-app/app.py"))
            .arg("--credentials")
            .arg(creds)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--db-port", &pg.port.to_string()])
            .arg("--pid-file")
            .arg(&pid_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let app = App {
            child,
            port,
            pid_file,
            log,
        };
        wait_until(LIMIT, "the app to answer healthy", || {
            app.health().is_some_and(|(s, _)| s == 200)
        });
        app
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz", self.port)
    }

    fn health(&self) -> Option<(u16, String)> {
        http_get(&self.url())
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options that check the app at `url` and load it with 50 requests a second, and `extra`.
fn under_load<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--check-url", url, "--load", url, "--rps", "50"];
    args.extend_from_slice(extra);
    args
}

fn at(report: &Value, event: &str) -> f64 {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == event)
        .and_then(|e| e["at_ms"].as_f64())
        .unwrap_or_else(|| panic!("no `{event}` in the timeline: {report:#}"))
}

/// The events are all there, in this order.
fn assert_ordered(report: &Value, events: &[&str]) {
    let times: Vec<f64> = events.iter().map(|e| at(report, e)).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{events:?} at {times:?}: {report:#}"
    );
}

/// The change came with the sidecar's first refresh after the write (or one
/// already running), so the lag is within one refresh interval as the
/// sidecar kept it, jitter and the load of the machine included.
fn assert_lag_within_the_interval(report: &Value) {
    let lag = &report["lag"];
    let refreshes = lag["sidecar_refreshes"].as_u64().unwrap();
    assert!((1..=2).contains(&refreshes), "{lag:#}");
    let gap = lag["sidecar_gap_ms"].as_f64().unwrap();
    let bound = lag["bound_ms"].as_f64().unwrap().max(gap);
    assert!(lag["ms"].as_f64().unwrap() <= bound + gap, "{lag:#}");
}

/// The drill saw every step in order, the sidecar followed within its
/// interval, and the app reconnected once.
fn assert_followed(report: &Value, app: &App) {
    assert_ordered(
        report,
        &[
            "rotation started",
            "backend written",
            "file changed",
            "action delivered",
            "app healthy",
        ],
    );
    assert_lag_within_the_interval(report);
    let (_, body) = app.health().unwrap();
    assert!(body.contains("generation=1"), "{body}\n{}", app.logs());
}

/// The old credentials no longer log in; the new ones do.
fn assert_replaced(pg: &Postgres, old: &(String, String), new: &(String, String)) {
    assert_ne!(new.1, old.1);
    assert!(
        !pg.can_login(&old.0, &old.1),
        "the old credentials still log in"
    );
    assert!(
        pg.can_login(&new.0, &new.1),
        "the new credentials do not log in"
    );
}

fn creds(out: &Tmpfs, file: &str) -> (String, String) {
    let v: Value = serde_json::from_str(&out.read(file)).unwrap();
    (
        v["username"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

/// Secret `name` read from `read` as JSON into `<name>.json`, signalling the app on a change.
fn signalling(name: &str, read: Value, pid_file: &Path) -> Value {
    let mut secret = json!({
        "name": name,
        "file": format!("{name}.json"),
        "format": "json",
        "on_change": [{ "signal": { "pid_file": pid_file, "signal": "HUP" } }],
    });
    for (key, value) in read.as_object().unwrap() {
        secret[key] = value.clone();
    }
    secret
}

#[test]
fn kv_rotation_under_load_fails_no_request_and_the_lag_is_within_the_interval() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    pg.sql("CREATE ROLE app LOGIN PASSWORD 'kv-old-password-1'");
    bao.kv2_put(
        "app/db",
        json!({ "username": "app", "password": "kv-old-password-1" }),
    );
    let health = free_port();
    let pid_file = work.path().join("app.pid");
    let secrets = [signalling(
        "db",
        json!({ "kv": { "mount": "secret", "path": "app/db" } }),
        &pid_file,
    )];
    let (cfg, mut run) = vault_sidecar(&bao, work.path(), &out, health, &secrets);
    let app = App::start(work.path(), &out.path().join("db.json"), &pg, &[]);
    assert_eq!(app.pid_file, pid_file);
    // As in a real rotation of a KV-held password: the database first, then KV.
    pg.sql("ALTER ROLE app PASSWORD 'kv-new-password-2'");
    let new = file(work.path(), "new-password", "kv-new-password-2\n");
    let set = format!("password=@{}", new.display());
    let url = app.url();
    let (o, report) = drill(drill_cmd(&cfg, "db", &under_load(&url, &["--set", &set])));
    assert_exit(&o, 0);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["kind"], "kv");
    assert_eq!(report["rotation"]["fields"], json!(["password"]));
    let load = &report["load"];
    assert_eq!(load["failed"], 0, "{report:#}");
    assert!(load["sent"].as_u64().unwrap() > 0, "{report:#}");
    assert!(load["p99_ms"].as_f64().is_some(), "{report:#}");
    assert_followed(&report, &app);
    assert_eq!(creds(&out, "db.json").1, "kv-new-password-2");
    assert!(
        app.health()
            .unwrap()
            .1
            .contains("credentials=current generation=1"),
        "{}",
        app.logs()
    );
    assert!(!pg.can_login("app", "kv-old-password-1"));
    assert_no_secret(&o, &["kv-old-password-1", "kv-new-password-2"]);
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn static_role_rotation_is_followed_with_the_reconnect_handler_and_fails_without_it() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    pg.sql("CREATE ROLE app_static LOGIN PASSWORD 'before-vault'");
    pg.sql("CREATE ROLE ticking LOGIN PASSWORD 'before-vault'");
    bao.database_engine(&pg, &["static", "ticking"]);
    bao.api(
        "POST",
        "database/static-roles/static",
        json!({ "db_name": "pg", "username": "app_static", "rotation_period": "1h" }),
    );
    // Vault rotates this one by itself every 5 s: the sidecar must follow at
    // Vault's `ttl`, although its own poll interval is an hour.
    bao.api(
        "POST",
        "database/static-roles/ticking",
        json!({ "db_name": "pg", "username": "ticking", "rotation_period": "5s" }),
    );
    let health = free_port();
    let pid_file = work.path().join("app.pid");
    let secrets = [
        signalling(
            "db",
            json!({ "read": "database/static-creds/static" }),
            &pid_file,
        ),
        json!({
            "name": "ticking",
            "read": "database/static-creds/ticking",
            "file": "ticking.json",
            "format": "json",
            "refresh": "1h",
        }),
    ];
    let (cfg, mut run) = vault_sidecar(&bao, work.path(), &out, health, &secrets);
    let ticking = creds(&out, "ticking.json");
    wait_until(LIMIT, "the sidecar to follow Vault's own rotation", || {
        creds(&out, "ticking.json") != ticking
    });
    let now = creds(&out, "ticking.json");
    assert!(pg.can_login(&now.0, &now.1) || creds(&out, "ticking.json") != now);

    // With the reconnect handler: no request fails.
    let app = App::start(work.path(), &out.path().join("db.json"), &pg, &[]);
    let old = creds(&out, "db.json");
    assert!(pg.can_login(&old.0, &old.1));
    let url = app.url();
    let (o, report) = drill(drill_cmd(&cfg, "db", &under_load(&url, &[])));
    assert_exit(&o, 0);
    assert_eq!(report["kind"], "database static role");
    assert_eq!(report["rotation"]["action"], "rotate-role");
    assert_eq!(report["load"]["failed"], 0, "{report:#}");
    assert_followed(&report, &app);
    let new = creds(&out, "db.json");
    assert_replaced(&pg, &old, &new);
    assert_no_secret(&o, &[&old.1, &new.1]);
    drop(app);

    // Without it, the app's next connection uses the old password: the drill fails.
    let app = App::start(
        work.path(),
        &out.path().join("db.json"),
        &pg,
        &["--no-reload", "--max-conn-age", "1"],
    );
    let url = app.url();
    let (o, report) = drill(drill_cmd(
        &cfg,
        "db",
        &under_load(&url, &["--deadline", "15s"]),
    ));
    assert_exit(&o, 1);
    assert_eq!(report["passed"], false, "{report:#}");
    assert_eq!(report["recovered"], false, "{report:#}");
    assert!(report["load"]["failed"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["checks"]["failed"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    at(&report, "deadline");
    assert!(app.logs().contains("SIGHUP ignored"), "{}", app.logs());
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_revoked_dynamic_lease_is_replaced_and_the_app_recovers() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.database_engine(&pg, &["dyn"]);
    bao.api(
        "POST",
        "database/roles/dyn",
        json!({
            "db_name": "pg",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
            "default_ttl": "1h",
            "max_ttl": "2h"
        }),
    );
    let health = free_port();
    let pid_file = work.path().join("app.pid");
    let secrets = [signalling(
        "db",
        json!({ "read": "database/creds/dyn" }),
        &pid_file,
    )];
    let (cfg, mut run) = vault_sidecar(&bao, work.path(), &out, health, &secrets);
    let app = App::start(work.path(), &out.path().join("db.json"), &pg, &[]);
    let old = creds(&out, "db.json");
    let url = app.url();
    let (o, report) = drill(drill_cmd(&cfg, "db", &["--check-url", &url]));
    assert_exit(&o, 0);
    assert_eq!(report["kind"], "leased credentials");
    assert_eq!(report["rotation"]["action"], "lease revoked");
    let lease = report["rotation"]["from"].as_str().unwrap();
    assert!(lease.starts_with("database/creds/dyn/"), "{report:#}");
    assert_followed(&report, &app);
    let new = creds(&out, "db.json");
    assert_ne!(new.0, old.0);
    assert_replaced(&pg, &old, &new);
    let (_, m) = http_get(&format!("http://127.0.0.1:{health}/metrics")).unwrap();
    assert!(
        !m.contains(lease),
        "the sidecar still shows the revoked lease:\n{m}"
    );
    assert_no_secret(&o, &[&old.1, &new.1]);
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_revoked_certificate_is_reissued_at_the_next_poll() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.pki_role("web", "2h");
    let health = free_port();
    let secrets = [json!({
        "name": "tls",
        "pki": { "mount": "pki", "role": "web", "common_name": "app.svc", "ttl": "1h" },
    })];
    let (cfg, mut run) = vault_sidecar(&bao, work.path(), &out, health, &secrets);
    let first = out.read("tls.crt");
    let (o, report) = drill(drill_cmd(&cfg, "tls", &["--check", "true"]));
    assert_exit(&o, 0);
    assert_eq!(report["rotation"]["action"], "certificate revoked");
    let serial = report["rotation"]["from"].as_str().unwrap().to_owned();
    assert_ordered(
        &report,
        &[
            "rotation started",
            "backend written",
            "file changed",
            "app healthy",
        ],
    );
    assert_ne!(out.read("tls.crt"), first);
    let cert = bao.api("GET", &format!("pki/cert/{serial}"), Value::Null);
    assert!(
        cert["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{cert:#}"
    );
    assert!(!text(&o).contains("PRIVATE KEY"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn aws_staged_rotation_lets_the_app_fall_back_to_awsprevious_and_restore_moves_stages_back() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    pg.sql("CREATE ROLE app_aws LOGIN PASSWORD 'aws-old-password'");
    let old_version = moto.create(
        "app/db",
        r#"{"username":"app_aws","password":"aws-old-password"}"#,
    );
    let env = AwsEnv::keys();
    let health = free_port();
    let pid_file = work.path().join("app.pid");
    let source = json!({ "aws_secrets_manager": { "endpoint": moto.url } });
    let secrets = [signalling(
        "db",
        json!({ "secret_id": "app/db", "previous": true }),
        &pid_file,
    )];
    let cfg = sidecar_config(source, &out, health, &secrets).write(work.path(), "config.yaml");
    let mut run = Running::spawn(
        work.path(),
        env.command(&["run", "--config", cfg.to_str().unwrap()]),
    );
    run.wait_log("ready; keeping secrets fresh", LIMIT);
    let app = App::start(work.path(), &out.path().join("db.json"), &pg, &[]);
    let url = app.url();
    let mut cmd = env.command(&[
        "drill",
        "--config",
        cfg.to_str().unwrap(),
        "--secret",
        "db",
        "--json",
    ]);
    cmd.args([
        "--check-url",
        &url,
        "--load",
        &url,
        "--rps",
        "50",
        "--restore",
    ])
    .stdin(Stdio::null());
    let (o, report) = drill(cmd);
    assert_exit(&o, 0);
    assert_eq!(report["rotation"]["action"], "AWSPENDING -> AWSCURRENT");
    assert_eq!(report["rotation"]["from"], old_version.as_str());
    let new_version = report["rotation"]["to"].as_str().unwrap().to_owned();
    assert_eq!(report["load"]["failed"], 0, "{report:#}");
    assert_ordered(
        &report,
        &[
            "rotation started",
            "AWSPENDING written",
            "backend written",
            "file changed",
            "action delivered",
            "app healthy",
        ],
    );
    assert_lag_within_the_interval(&report);
    // The new AWSCURRENT does not log in (no rotation function set it in the
    // database): the app moved to AWSPREVIOUS during the window.
    assert!(
        app.logs()
            .contains("reconnected with the previous credentials"),
        "{}",
        app.logs()
    );
    assert!(
        report["restored"].as_str().unwrap().contains(&old_version),
        "{report:#}"
    );
    let stages =
        moto.sm("DescribeSecret", json!({ "SecretId": "app/db" }))["VersionIdsToStages"].clone();
    assert!(
        stages[&old_version]
            .as_array()
            .unwrap()
            .contains(&json!("AWSCURRENT")),
        "{stages:#}"
    );
    assert!(
        !stages[&new_version]
            .as_array()
            .unwrap()
            .contains(&json!("AWSCURRENT")),
        "{stages:#}"
    );
    let generated = moto.sm(
        "GetSecretValue",
        json!({ "SecretId": "app/db", "VersionId": new_version }),
    )["SecretString"]
        .as_str()
        .unwrap()
        .to_owned();
    let generated: Value = serde_json::from_str(&generated).unwrap();
    let generated = generated["password"].as_str().unwrap();
    assert_eq!(generated.len(), "aws-old-password".len());
    assert_no_secret(&o, &["aws-old-password", generated]);
    // The sidecar follows the restore, and the app goes back to AWSCURRENT.
    wait_until(LIMIT, "the restored value", || {
        creds(&out, "db.json").1 == "aws-old-password"
    });
    wait_until(LIMIT, "the app on AWSCURRENT again", || {
        app.health()
            .is_some_and(|(_, b)| b.contains("credentials=current"))
    });
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

//! Templates over several secrets (`templates:`), `template_file` and
//! `write: false`, in `init`, `check` and the sidecar, against real OpenBao
//! and the `file` source. Waits poll with generous limits; nothing here
//! asserts a duration.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

const PROPERTIES: &str = "db.user={{ secrets.db.username }}
db.password={{ secrets[\"db\"].password }}
api.token={{ secrets[\"api-key\"].token }}
tls.password={{ secrets.keystore.password }}
";

/// A config of three secrets from two sources (Vault KV and the file source)
/// rendered into one properties file; `keystore` is also written on its own.
fn config(bao: &Bao, work: &Path, out: &Path, extra: &str) -> String {
    let token = file(work, "token", &bao.token);
    file(work, "dev-secrets.yaml", "prod/api:\n  token: t0k3n\n");
    format!(
        "sources:
  - name: vault
    vault: {{ address: {}, request_timeout: 1s, auth: {{ token_file: {} }} }}
  - name: dev
    file: {{ path: dev-secrets.yaml }}
output: {{ dir: {} }}
refresh: {{ interval: 1s }}
secrets:
  - {{ name: db, source: vault, kv: {{ mount: secret, path: app/db }}, write: false }}
  - {{ name: api-key, source: dev, secret_id: prod/api, write: false }}
  - {{ name: keystore, source: vault, kv: {{ mount: secret, path: app/keystore }}, key: password }}
templates:
  - file: conf/application.properties
    template_file: app.properties.tmpl
    mode: \"0440\"
{extra}",
        bao.addr,
        token.display(),
        out.display()
    )
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn init_renders_one_file_from_secrets_of_two_sources() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "username": "app", "password": "pw-1" }));
    bao.kv2_put("app/keystore", json!({ "password": "ks-1" }));
    file(work.path(), "app.properties.tmpl", PROPERTIES);
    let cfg = config(&bao, work.path(), out.path(), "");
    let o = init(work.path(), &cfg, &[]);
    assert_exit(&o, 0);
    assert_eq!(
        out.read("conf/application.properties"),
        "db.user=app\ndb.password=pw-1\napi.token=t0k3n\ntls.password=ks-1\n"
    );
    // `write: false` secrets have no file of their own.
    assert_eq!(out.names(), ["conf", "keystore"]);
    let mode = std::fs::metadata(out.path().join("conf/application.properties"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o440
    );
    assert!(!text(&o).contains("pw-1"), "{}", text(&o));

    // `check` lists the template with the secrets it reads.
    let o = ramsecrets(&[
        "check",
        "--config",
        work.path().join("config.yaml").to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    let t = text(&o);
    assert!(
        t.contains(
            "templates:\n  conf/application.properties <- db, api-key, keystore (mode 0440)"
        ),
        "{t}"
    );
    assert!(
        t.contains("  db: kv secret/app/db from vault (write: false)"),
        "{t}"
    );
}

#[test]
fn a_missing_input_or_field_writes_nothing_and_names_both() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "username": "app", "pass": "pw-1" }));
    bao.kv2_put("app/keystore", json!({ "password": "ks-1" }));
    file(work.path(), "app.properties.tmpl", PROPERTIES);
    // A field the secret lacks: the error names the template, the secret and
    // the field; no file at all is written, not even `keystore`.
    let cfg = config(&bao, work.path(), out.path(), "");
    let o = init(work.path(), &cfg, &[]);
    assert_exit(&o, 65);
    let t = text(&o);
    assert!(
        t.contains("template `conf/application.properties`: field `password` is not in secret `db` (it has: pass, username)"),
        "{t}"
    );
    assert!(!t.contains("pw-1"), "{t}");
    assert!(out.names().is_empty(), "{:?}", out.names());
    // An input that cannot be read: nothing is written either.
    bao.api("DELETE", "secret/metadata/app/db", serde_json::Value::Null);
    let o = init(work.path(), &cfg, &[]);
    assert_exit(&o, 65);
    assert!(text(&o).contains("secret `db`: not found"), "{}", text(&o));
    assert!(out.names().is_empty(), "{:?}", out.names());
}

#[test]
fn the_sidecar_renders_once_per_change_and_watches_the_template_file() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "username": "app", "password": "pw-1" }));
    bao.kv2_put("app/keystore", json!({ "password": "ks-1" }));
    let tmpl = file(work.path(), "app.properties.tmpl", PROPERTIES);
    let count = work.path().join("count");
    let health = free_port();
    let extra = format!(
        "    on_change: [ {{ exec: [\"/bin/sh\", \"-c\", \"echo x >> {}\"] }} ]\nhealth: {{ listen: \"127.0.0.1:{health}\" }}\n",
        count.display()
    );
    let cfg = file(
        work.path(),
        "config.yaml",
        &config(&bao, work.path(), out.path(), &extra),
    );
    let mut run = Running::sidecar(work.path(), &cfg);
    let props = || out.read("conf/application.properties");
    let polls = || {
        http_get(&format!("http://127.0.0.1:{health}/metrics"))
            .and_then(|(_, m)| metric(&m, "ramsecrets_backend_request_duration_seconds_count"))
            .unwrap_or(0.0)
    };
    assert!(props().contains("db.password=pw-1\n"));

    // One input changes: the file is rendered and the action runs, once.
    bao.kv2_put("app/db", json!({ "username": "app", "password": "pw-2" }));
    wait_until(LIMIT, "the new password in the file", || {
        props().contains("db.password=pw-2\n")
    });
    wait_until(LIMIT, "the action", || lines(&count) == 1);
    let seen = polls();
    wait_until(LIMIT, "more polls", || polls() >= seen + 6.0);
    assert_eq!(lines(&count), 1, "{}", run.logs());
    assert_eq!(
        run.logs().matches("template changed; file written").count(),
        1,
        "{}",
        run.logs()
    );

    // Two inputs change while the sidecar is stopped: both are due in the
    // same round when it resumes, so the file is written and notified once.
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::STOP).unwrap();
    // Requests already sent are answered before the secrets change.
    std::thread::sleep(Duration::from_millis(500));
    bao.kv2_put("app/db", json!({ "username": "app", "password": "pw-3" }));
    bao.kv2_put("app/keystore", json!({ "password": "ks-3" }));
    // Longer than the refresh interval: every secret is overdue.
    std::thread::sleep(Duration::from_millis(2500));
    rustix::process::kill_process(pid, Signal::CONT).unwrap();
    wait_until(LIMIT, "both new values in the file", || {
        let p = props();
        p.contains("db.password=pw-3\n") && p.contains("tls.password=ks-3\n")
    });
    wait_until(LIMIT, "the action", || lines(&count) == 2);
    let seen = polls();
    wait_until(LIMIT, "more polls", || polls() >= seen + 6.0);
    assert_eq!(lines(&count), 2, "{}", run.logs());
    assert_eq!(
        run.logs().matches("template changed; file written").count(),
        2,
        "{}",
        run.logs()
    );
    assert_eq!(out.read("keystore"), "ks-3");

    // The template file is edited: the file is rendered again.
    std::fs::write(&tmpl, format!("# edited\n{PROPERTIES}")).unwrap();
    wait_until(LIMIT, "the edited template's output", || {
        props().starts_with("# edited\n")
    });
    wait_until(LIMIT, "the action", || lines(&count) == 3);
    // A broken template is refused and the last good file stays.
    std::fs::write(&tmpl, "{{ secrets.db.password ").unwrap();
    run.wait_log("config change refused", LIMIT);
    let seen = polls();
    wait_until(LIMIT, "more polls", || polls() >= seen + 3.0);
    assert!(props().starts_with("# edited\n"));
    assert!(props().contains("db.password=pw-3\n"));
    // Fixed again: taken.
    std::fs::write(&tmpl, format!("# fixed\n{PROPERTIES}")).unwrap();
    wait_until(LIMIT, "the fixed template's output", || {
        props().starts_with("# fixed\n")
    });
    let logs = run.logs();
    assert!(!logs.contains("pw-3") && !logs.contains("ks-3"), "{logs}");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

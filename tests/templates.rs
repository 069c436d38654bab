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

/// A config of three secrets from two sources (Vault KV at `address` and
/// the file source), to be rendered into one properties file by
/// [`properties`]; `keystore` is also written on its own.
fn config(bao: &Bao, address: &str, work: &Path, out: &Path) -> Config {
    let token = file(work, "token", &bao.token);
    file(work, "dev-secrets.yaml", "prod/api:\n  token: t0k3n\n");
    Config::new()
        .source(json!({ "name": "vault", "vault": {
            "address": address,
            "request_timeout": "1s",
            "auth": { "token_file": token },
        } }))
        .source(json!({ "name": "dev", "file": { "path": "dev-secrets.yaml" } }))
        .output(out)
        .set("refresh", json!({ "interval": "1s" }))
        .secret(json!({ "name": "db", "source": "vault", "kv": { "mount": "secret", "path": "app/db" }, "write": false }))
        .secret(json!({ "name": "api-key", "source": "dev", "secret_id": "prod/api", "write": false }))
        .secret(json!({
            "name": "keystore",
            "source": "vault",
            "kv": { "mount": "secret", "path": "app/keystore" },
            "key": "password",
        }))
}

/// The template that renders `conf/application.properties`.
fn properties() -> serde_json::Value {
    json!({
        "file": "conf/application.properties",
        "template_file": "app.properties.tmpl",
        "mode": "0440",
    })
}

/// The port of a `http://127.0.0.1:PORT` address.
fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
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
    let cfg = config(&bao, &bao.addr, work.path(), out.path())
        .template(properties())
        .yaml();
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
    let cfg = config(&bao, &bao.addr, work.path(), out.path())
        .template(properties())
        .yaml();
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

/// A sidecar rendering the properties file from OpenBao (behind a recorder,
/// to see when every request sent has its answer), its action counting runs.
struct Rendering {
    bao: Bao,
    _work: tempfile::TempDir,
    out: Tmpfs,
    tmpl: std::path::PathBuf,
    count: std::path::PathBuf,
    health: u16,
    recorder: recorder::Recorder,
    run: Running,
}

impl Rendering {
    fn start() -> Rendering {
        let bao = Bao::start();
        let work = scratch();
        let out = Tmpfs::new("4m");
        bao.kv2_put("app/db", json!({ "username": "app", "password": "pw-1" }));
        bao.kv2_put("app/keystore", json!({ "password": "ks-1" }));
        let tmpl = file(work.path(), "app.properties.tmpl", PROPERTIES);
        let count = work.path().join("count");
        let health = free_port();
        let recorder = recorder::Recorder::start(port_of(&bao.addr));
        let mut template = properties();
        template["on_change"] =
            json!([{ "exec": ["/bin/sh", "-c", format!("echo x >> {}", count.display())] }]);
        let cfg = config(&bao, &recorder.url(), work.path(), out.path())
            .template(template)
            .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
            .write(work.path(), "config.yaml");
        let run = Running::sidecar(work.path(), &cfg);
        let rendering = Rendering {
            bao,
            _work: work,
            out,
            tmpl,
            count,
            health,
            recorder,
            run,
        };
        assert!(rendering.props().contains("db.password=pw-1\n"));
        rendering
    }

    fn props(&self) -> String {
        self.out.read("conf/application.properties")
    }

    /// Backend requests made so far, from /metrics.
    fn polls(&self) -> f64 {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.health))
            .and_then(|(_, m)| metric(&m, "ramsecrets_backend_request_duration_seconds_count"))
            .unwrap_or(0.0)
    }

    /// Waits until the sidecar has made `more` requests after now.
    fn wait_polls(&self, more: f64) {
        let seen = self.polls();
        wait_until(LIMIT, "more polls", || self.polls() >= seen + more);
    }

    /// How many times the action ran.
    fn actions(&self) -> usize {
        lines(&self.count)
    }
}

#[test]
fn the_sidecar_renders_a_template_once_per_change() {
    let mut r = Rendering::start();
    // One input changes: the file is rendered and the action runs, once.
    r.bao
        .kv2_put("app/db", json!({ "username": "app", "password": "pw-2" }));
    wait_until(LIMIT, "the new password in the file", || {
        r.props().contains("db.password=pw-2\n")
    });
    wait_until(LIMIT, "the action", || r.actions() == 1);
    r.wait_polls(6.0);
    assert_eq!(r.actions(), 1, "{}", r.run.logs());
    assert_eq!(
        r.run
            .logs()
            .matches("template changed; file written")
            .count(),
        1,
        "{}",
        r.run.logs()
    );

    // Two inputs change while the sidecar is stopped: both are due in the
    // same round when it resumes, so the file is written and notified once.
    let pid = rustix::process::Pid::from_raw(r.run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::STOP).unwrap();
    // Requests already sent are answered before the secrets change.
    wait_until(LIMIT, "every request sent to be answered", || {
        r.recorder.records().iter().all(|c| c.status != 0)
    });
    r.bao
        .kv2_put("app/db", json!({ "username": "app", "password": "pw-3" }));
    r.bao.kv2_put("app/keystore", json!({ "password": "ks-3" }));
    // Longer than the refresh interval: every secret is overdue. (A sleep
    // only makes the gap; nothing is timed by it.)
    std::thread::sleep(Duration::from_millis(2500));
    rustix::process::kill_process(pid, Signal::CONT).unwrap();
    wait_until(LIMIT, "both new values in the file", || {
        let p = r.props();
        p.contains("db.password=pw-3\n") && p.contains("tls.password=ks-3\n")
    });
    wait_until(LIMIT, "the action", || r.actions() == 2);
    r.wait_polls(6.0);
    assert_eq!(r.actions(), 2, "{}", r.run.logs());
    assert_eq!(
        r.run
            .logs()
            .matches("template changed; file written")
            .count(),
        2,
        "{}",
        r.run.logs()
    );
    assert_eq!(r.out.read("keystore"), "ks-3");
    let logs = r.run.logs();
    assert!(!logs.contains("pw-3") && !logs.contains("ks-3"), "{logs}");
    assert_eq!(r.run.stop(Signal::TERM), Some(0));
}

#[test]
fn the_sidecar_renders_an_edited_template_file_and_refuses_a_broken_one() {
    let mut r = Rendering::start();
    // The template file is edited: the file is rendered again.
    std::fs::write(&r.tmpl, format!("# edited\n{PROPERTIES}")).unwrap();
    wait_until(LIMIT, "the edited template's output", || {
        r.props().starts_with("# edited\n")
    });
    wait_until(LIMIT, "the action", || r.actions() == 1);
    // A broken template is refused and the last good file stays.
    std::fs::write(&r.tmpl, "{{ secrets.db.password ").unwrap();
    r.run.wait_log("config change refused", LIMIT);
    r.wait_polls(3.0);
    assert!(r.props().starts_with("# edited\n"));
    assert!(r.props().contains("db.password=pw-1\n"));
    // Fixed again: taken.
    std::fs::write(&r.tmpl, format!("# fixed\n{PROPERTIES}")).unwrap();
    wait_until(LIMIT, "the fixed template's output", || {
        r.props().starts_with("# fixed\n")
    });
    let logs = r.run.logs();
    assert!(!logs.contains("pw-1") && !logs.contains("ks-1"), "{logs}");
    assert_eq!(r.run.stop(Signal::TERM), Some(0));
}

//! `run` and `exec` on the `file` source, as a new user runs them on a laptop:
//! one restart per change, edits seen at once, reloads that reschedule, and
//! the child as a real entrypoint. No server is needed; waits poll for events
//! with generous limits and nothing asserts a duration.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// Backend fetches and renewals the sidecar has made so far, from /metrics.
fn polls(health: u16) -> f64 {
    http_get(&format!("http://127.0.0.1:{health}/metrics"))
        .and_then(|(_, m)| metric(&m, "ramsecrets_backend_request_duration_seconds_count"))
        .unwrap_or(0.0)
}

/// Waits until the sidecar has polled `more` times after now.
fn wait_polls(health: u16, more: f64) {
    let from = polls(health);
    wait_until(LIMIT, "more polls", || polls(health) >= from + more);
}

/// Logs are for people: no Rust `Debug` text in them.
fn assert_plain(logs: &str) {
    for debug in ["Signal::", "=None", "Some(", "=[\"", "Json", "Raw"] {
        assert!(!logs.contains(debug), "`{debug}` in the logs:\n{logs}");
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn secrets_file(dir: &Path, password: &str) {
    // Written to a new name, then renamed, as editors save.
    let tmp = dir.join("dev.yaml.new");
    std::fs::write(
        &tmp,
        format!("secret/app/db:\n  username: app\n  password: {password}\n"),
    )
    .unwrap();
    std::fs::rename(tmp, dir.join("dev.yaml")).unwrap();
}

#[test]
fn one_edit_read_by_three_secrets_restarts_the_child_once_with_every_file_new() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    secrets_file(work.path(), "one");
    let actions = work.path().join("actions");
    let events = work.path().join("events");
    let health = free_port();
    let action =
        json!([{ "exec": ["/bin/sh", "-c", format!("echo ran >> {}", actions.display())] }]);
    let cfg = Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .set("exec", json!({ "on_change": "restart", "grace": "5s" }))
        .secret(json!({
            "name": "db",
            "kv": { "mount": "secret", "path": "app/db" },
            "format": "json",
            "on_change": action,
        }))
        .secret(json!({
            "name": "db-url",
            "kv": { "mount": "secret", "path": "app/db" },
            "template": "{{ password }}",
            "on_change": action,
        }))
        .secret(json!({
            "name": "db-password",
            "kv": { "mount": "secret", "path": "app/db" },
            "key": "password",
            "on_change": action,
        }))
        .write(work.path(), "config.yaml");
    let o = out.path().display();
    let script = format!(
        "trap 'exit 0' TERM; echo start:$(cat {o}/db-url):$(cat {o}/db-password):$(grep -o 'one\\|two\\|three' {o}/db) >> {}; while :; do sleep 0.1; done",
        events.display()
    );
    let mut run = Running::exec(work.path(), &cfg, &script);
    wait_until(LIMIT, "the child", || {
        lines(&events) == ["start:one:one:one"]
    });
    for (n, value) in [(2, "two"), (3, "three")] {
        secrets_file(work.path(), value);
        wait_until(LIMIT, "the restart", || lines(&events).len() == n);
        // Polls after the change bring no second restart and no second action.
        wait_polls(health, 4.0);
        let seen = lines(&events);
        assert_eq!(seen.len(), n, "{seen:?}\n{}", run.logs());
        assert_eq!(seen[n - 1], format!("start:{value}:{value}:{value}"));
        assert_eq!(lines(&actions).len(), n - 1, "{}", run.logs());
    }
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert!(
        run.logs()
            .contains("secret changed; files written secret=db version=none"),
        "{}",
        run.logs()
    );
    assert!(
        run.logs()
            .contains("forwarding signal to the child signal=TERM"),
        "{}",
        run.logs()
    );
    assert_plain(&run.logs());
}

/// A sidecar on one secret of `dev.yaml` polled every `interval`, with its health port.
fn polled(out: &Path, health: u16, interval: &str) -> String {
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .set("refresh", json!({ "interval": interval }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .secret(kv_key("db", "app/db", "password"))
        .yaml()
}

#[test]
fn an_edit_of_the_file_source_shows_at_once() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    secrets_file(work.path(), "one");
    let cfg = file(
        work.path(),
        "config.yaml",
        &polled(out.path(), free_port(), "5m"),
    );
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.read("db"), "one");
    // Saved in place, and saved as editors do (a new file renamed over it).
    std::fs::write(
        work.path().join("dev.yaml"),
        "secret/app/db:\n  password: two\n",
    )
    .unwrap();
    wait_until(LIMIT, "the edit in the file", || out.read("db") == "two");
    secrets_file(work.path(), "three");
    wait_until(LIMIT, "the second edit", || out.read("db") == "three");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_reload_to_a_shorter_interval_reschedules_the_planned_polls() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    secrets_file(work.path(), "one");
    let health = free_port();
    let cfg = file(
        work.path(),
        "config.yaml",
        &polled(out.path(), health, "5m"),
    );
    let mut run = Running::sidecar(work.path(), &cfg);
    // The poll planned 5 minutes ahead follows a reload to 1s.
    std::fs::write(&cfg, polled(out.path(), health, "1s")).unwrap();
    run.wait_log("config reloaded", LIMIT);
    wait_polls(health, 2.0);
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_broken_file_source_is_reported_once_per_cause() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let config = Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .secret(kv("alpha", "secret", "app/a"))
        .secret(kv("beta", "secret", "app/b"))
        .secret(json!({ "name": "gamma", "read": "database/creds/app" }))
        .yaml();
    let broken = "secret/app/a:\n  - x\n   y: [\n";
    let good = "secret/app/a: { v: 1 }\nsecret/app/b: { v: 2 }\ndatabase/creds/app: { v: 3 }\n";
    // init: one cause, said once.
    file(work.path(), "dev.yaml", broken);
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 78);
    let t = text(&o);
    let path = work.path().join("dev.yaml").display().to_string();
    assert_eq!(t.matches(&path).count(), 1, "{t}");
    assert!(t.contains("`alpha`, `beta` and `gamma`"), "{t}");
    // run: each failed round logs the cause once, naming every secret.
    file(work.path(), "dev.yaml", good);
    let cfg = file(work.path(), "config.yaml", &config);
    let mut run = Running::sidecar(work.path(), &cfg);
    file(work.path(), "dev.yaml", broken);
    let failed = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("refresh failed"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait_until(LIMIT, "two failed rounds", || {
        failed(&run.logs()).len() >= 2
    });
    for line in failed(&run.logs()) {
        assert!(line.contains("`alpha`, `beta` and `gamma`"), "{line}");
        assert_eq!(line.matches(&path).count(), 1, "{line}");
    }
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

/// A config of one secret from a `file` source in `work`, written to `out`.
fn simple_config(work: &Path, out: &Path) -> Config {
    file(work, "dev.yaml", "secret/app/db:\n  password: one\n");
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .secret(kv_key("db", "app/db", "password"))
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn exec_is_a_real_entrypoint() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = simple_config(work.path(), out.path()).write(work.path(), "config.yaml");
    let cfg = cfg.to_str().unwrap();
    // A command that does not exist: 127, as a shell says; one that cannot run: 126.
    let o = ramsecrets(&["exec", "--config", cfg, "--", "/nonexistent/app"]);
    assert_exit(&o, 127);
    assert_eq!(
        text(&o).matches("no such executable").count(),
        1,
        "{}",
        text(&o)
    );
    let script = file(work.path(), "not-executable.sh", "echo hi\n");
    let o = ramsecrets(&["exec", "--config", cfg, "--", script.to_str().unwrap()]);
    assert_exit(&o, 126);
    // SIGTERM reaches what the child started, too.
    let pid_file = work.path().join("sleep.pid");
    let mut run = Running::exec(
        work.path(),
        Path::new(cfg),
        &format!("sleep 100 & echo $! > {}; wait", pid_file.display()),
    );
    wait_until(LIMIT, "the child's child", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(alive(&pid));
    assert_eq!(run.stop(Signal::TERM), Some(128 + 15));
    let ended = std::time::Instant::now() + LIMIT;
    while alive(&pid) && std::time::Instant::now() < ended {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(&pid) {
        let _ = std::process::Command::new("kill").arg(&pid).status();
        panic!("the shell's `sleep` outlived SIGTERM:\n{}", run.logs());
    }
}

#[test]
fn metrics_have_every_series_from_the_start() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let health = free_port();
    let cfg = simple_config(work.path(), out.path())
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{health}/metrics"))
        .send()
        .unwrap();
    // The content type the book names.
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let m = r.text().unwrap();
    for series in [
        "ramsecrets_secret_fetch_errors_total{secret=\"db\"} 0",
        "ramsecrets_secret_renewals_total{secret=\"db\"} 0",
        "ramsecrets_ready 1",
    ] {
        assert!(m.contains(series), "{series} not in\n{m}");
    }
    assert!(
        !m.contains("ramsecrets_proxy"),
        "proxy series without a proxy:\n{m}"
    );
    let page = std::fs::read_to_string(repo().join("docs/reference/metrics.md")).unwrap();
    assert!(page.contains("application/openmetrics-text; version=1.0.0;"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn wipe_on_exit_leaves_the_output_dir_as_it_found_it() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: one\n");
    let cfg = Config::new()
        .source(file_source("dev.yaml"))
        .set("output", json!({ "dir": out.path(), "wipe_on_exit": true }))
        .secret(json!({
            "name": "db",
            "kv": { "mount": "secret", "path": "app/db" },
            "key": "password",
            "file": "config/app/db",
        }))
        .secret(kv("top", "secret", "app/db"))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.read("config/app/db"), "one");
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert_eq!(out.names(), Vec::<String>::new(), "{}", run.logs());
}

#[test]
fn a_hanging_action_holds_up_neither_refreshes_nor_health_nor_shutdown() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    secrets_file(work.path(), "one");
    // A pid file the app turned into a FIFO (an open would block), and a
    // command that runs for its whole time limit.
    let fifo = work.path().join("app.pid");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let health = free_port();
    let cfg = Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .secret(json!({
            "name": "db-password",
            "kv": { "mount": "secret", "path": "app/db" },
            "key": "password",
            "on_change": [
                { "signal": { "pid_file": fifo, "signal": "HUP" } },
                { "exec": ["sleep", "3600"], "timeout": "1h" },
            ],
        }))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    secrets_file(work.path(), "two");
    wait_until(LIMIT, "the first change", || {
        out.read("db-password") == "two"
    });
    run.wait_log("not a regular file", LIMIT);
    // The `exec` action now sleeps; the next change and health go on.
    secrets_file(work.path(), "three");
    wait_until(LIMIT, "the second change", || {
        out.read("db-password") == "three"
    });
    let ready = http_get(&format!("http://127.0.0.1:{health}/readyz"));
    assert_eq!(ready.map(|(status, _)| status), Some(200));
    wait_polls(health, 2.0);
    assert_eq!(run.stop(Signal::TERM), Some(0), "{}", run.logs());
}

//! `ramsecrets run` and `exec` against real OpenBao (and PostgreSQL for the
//! database engine): rotation, leases, certificates, outages, re-login,
//! actions, the child process, reload and restore. Waits poll with generous
//! limits; nothing here asserts a duration.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

/// The Vault source logging in with the token in `token`.
fn token_source(bao: &Bao, token: &Path) -> Value {
    json!({ "name": "vault", "vault": {
        "address": bao.addr,
        "request_timeout": "1s",
        "auth": { "token_file": token },
    } })
}

/// A sidecar config reading `app/db`'s password from `bao` with the token
/// in `token`, writing to `out`, polling every second.
fn db_config(bao: &Bao, token: &Path, out: &Path) -> Config {
    Config::new()
        .source(token_source(bao, token))
        .output(out)
        .set("refresh", json!({ "interval": "1s" }))
        .secret(kv_key("db", "app/db", "password"))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A loopback HTTP server that counts the POSTs it gets.
fn post_counter() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            if buf[..n].starts_with(b"POST /-/reload") {
                c.fetch_add(1, Ordering::SeqCst);
            }
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, count)
}

#[test]
fn kv_updates_reach_the_file_and_actions_fire_once_per_change() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "password": "one" }));
    bao.kv2_put("app/other", json!({ "v": "still" }));
    let token = file(work.path(), "token", &bao.token);
    let hup_log = work.path().join("hups");
    let exec_log = work.path().join("execs");
    let pid_file = work.path().join("app.pid");
    // An "app" that records each HUP it gets. `env --default-signal` undoes an
    // ignored SIGHUP inherited from the caller (nohup), which sh could not trap.
    let mut app = std::process::Command::new("env")
        .args(["--default-signal=HUP", "sh", "-c"])
        .arg(format!(
            "trap 'echo hup >> {}' HUP; echo $$ > {}; while :; do sleep 0.1; done",
            hup_log.display(),
            pid_file.display()
        ))
        .spawn()
        .unwrap();
    wait_until(LIMIT, "the app's pid file", || pid_file.exists());
    let (http_port, posts) = post_counter();
    let health = free_port();
    let cfg = db_config(&bao, &token, out.path())
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .secret_with(
            "db",
            json!({ "on_change": [
                { "signal": { "pid_file": pid_file, "signal": "HUP" } },
                { "exec": ["/bin/sh", "-c", format!("echo ran >> {}", exec_log.display())] },
                { "http": { "url": format!("http://127.0.0.1:{http_port}/-/reload") } },
            ] }),
        )
        .secret(kv_key("other", "app/other", "v"))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    let (status, _) = http_get(&format!("http://127.0.0.1:{health}/readyz")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(out.read("db"), "one");
    let inode = std::fs::metadata(out.path().join("other")).unwrap().ino();
    // Several polls of unchanged secrets: nothing rewritten, nothing notified.
    wait_until(LIMIT, "three polls", || {
        http_get(&format!("http://127.0.0.1:{health}/metrics"))
            .and_then(|(_, m)| metric(&m, "ramsecrets_backend_request_duration_seconds_count"))
            .is_some_and(|n| n >= 6.0)
    });
    assert_eq!(
        std::fs::metadata(out.path().join("other")).unwrap().ino(),
        inode
    );
    assert_eq!(
        (
            lines(&hup_log),
            lines(&exec_log),
            posts.load(Ordering::SeqCst)
        ),
        (0, 0, 0)
    );
    // Two changes: each action fires once per change.
    for (n, value) in [(1, "two"), (2, "three")] {
        bao.kv2_put("app/db", json!({ "password": value }));
        wait_until(LIMIT, "the new value in the file", || {
            out.read("db") == value
        });
        wait_until(LIMIT, "the actions", || {
            lines(&hup_log) == n && lines(&exec_log) == n && posts.load(Ordering::SeqCst) == n
        });
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        (
            lines(&hup_log),
            lines(&exec_log),
            posts.load(Ordering::SeqCst)
        ),
        (2, 2, 2)
    );
    assert_eq!(
        std::fs::metadata(out.path().join("other")).unwrap().ino(),
        inode
    );
    let (_, m) = http_get(&format!("http://127.0.0.1:{health}/metrics")).unwrap();
    assert_eq!(
        metric(
            &m,
            "ramsecrets_on_change_actions_total{secret=\"db\",action=\"signal\",result=\"ok\"}"
        ),
        Some(2.0),
        "{m}"
    );
    assert!(!m.contains("three") && !run.logs().contains("three"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let _ = app.kill();
    let _ = app.wait();
}

#[test]
fn database_credentials_are_handed_over_renewed_and_replaced() {
    // Leases of 20s (the sidecar adopts one with more than 5s left, so it may
    // start up to 15s after init) up to 30s; renewals at half of that. Every
    // step below waits for its event, with limits far beyond the schedule.
    const LEASE: Duration = Duration::from_secs(90);
    let pg = Postgres::start();
    let bao = Bao::start();
    let work = scratch();
    let (out, state) = (Tmpfs::new("4m"), Tmpfs::new("1m"));
    bao.database(&pg, "20s", "30s");
    let token = file(work.path(), "token", &bao.token);
    let health = free_port();
    let mut source = token_source(&bao, &token);
    source["vault"]["revoke_on_exit"] = json!(true);
    let config = Config::new()
        .source(source)
        .set(
            "output",
            json!({ "dir": out.path(), "state_dir": state.path().join("state"), "wipe_on_exit": true }),
        )
        .set("refresh", json!({ "renew_at": 0.5 }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .secret(json!({ "name": "db", "read": "database/creds/app", "format": "json" }));
    let cfg = config.write(work.path(), "config.yaml");
    let creds = || -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&out.read("db")).unwrap();
        (
            v["username"].as_str().unwrap().into(),
            v["password"].as_str().unwrap().into(),
        )
    };
    let leases = || bao.leases("database/creds/app");
    assert_exit(&init(work.path(), &config.yaml(), &[]), 0);
    assert!(state.path().join("state/state.json").exists());
    let first = creds();
    // The sidecar starts right away; the login check comes after it adopted the lease.
    let mut run = Running::start(work.path(), &["run", "--config", cfg.to_str().unwrap()]);
    run.wait_log("adopting the lease or certificate init took", LEASE);
    run.wait_log("ready; keeping secrets fresh", LEASE);
    assert_eq!(leases(), 1, "init and run took separate credentials");
    assert_eq!(creds(), first);
    assert!(
        pg.can_login(&first.0, &first.1),
        "init's credentials do not log in"
    );
    run.wait_log("lease renewed", LEASE);
    assert_eq!(creds(), first);
    assert!(pg.can_login(&first.0, &first.1));
    // Near the max TTL, new credentials are read and written.
    wait_until(LEASE, "new credentials", || creds() != first);
    let second = creds();
    assert!(
        pg.can_login(&second.0, &second.1),
        "the new credentials do not log in"
    );
    // The old lease is left to expire, and with it the old role.
    wait_until(LEASE, "the old credentials to expire", || {
        !pg.can_login(&first.0, &first.1)
    });
    let (_, m) = http_get(&format!("http://127.0.0.1:{health}/metrics")).unwrap();
    assert!(
        metric(&m, "ramsecrets_secret_renewals_total{secret=\"db\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "ramsecrets_secret_expiry_seconds{secret=\"db\"}").is_some(),
        "{m}"
    );
    assert!(!run.logs().contains(&second.1));
    // SIGTERM: the lease is revoked (revoke_on_exit) and the files removed (wipe_on_exit).
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert!(run.logs().contains("lease revoked"), "{}", run.logs());
    assert_eq!(leases(), 0);
    assert!(!pg.can_login(&second.0, &second.1));
    assert!(!out.path().join("db").exists());
}

#[test]
fn certificates_are_reissued_before_they_expire() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.pki_role("web", "1h");
    let token = file(work.path(), "token", &bao.token);
    let cfg = Config::new()
        .source(token_source(&bao, &token))
        .output(out.path())
        .set("refresh", json!({ "renew_at": 0.5 }))
        .secret(json!({
            "name": "tls",
            "pki": { "mount": "pki", "role": "web", "common_name": "app.svc", "ttl": "4s" },
        }))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    let first = out.read("tls.crt");
    wait_until(LIMIT, "a new certificate", || out.read("tls.crt") != first);
    assert_ne!(out.read("tls.key"), "");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

/// A sidecar on `app/db` (value "before") that logs in with AppRole,
/// polling every 2 s, with its health port.
fn approle_sidecar(bao: &Bao, work: &Path, out: &Path) -> (Running, u16) {
    bao.kv2_put("app/db", json!({ "password": "before" }));
    bao.app_policy();
    let (rid, sid) = bao.approle(work);
    let health = free_port();
    let cfg = Config::new()
        .source(json!({ "vault": {
            "address": bao.addr,
            "request_timeout": "1s",
            "auth": { "approle": { "role_id_file": rid, "secret_id_file": sid } },
        } }))
        .output(out)
        .set("refresh", json!({ "interval": "2s" }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .secret(kv_key("db", "app/db", "password"))
        .write(work, "config.yaml");
    (Running::sidecar(work, &cfg), health)
}

#[test]
fn an_outage_keeps_the_files_until_the_first_success_catches_up() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, health) = approle_sidecar(&bao, work.path(), out.path());
    // The server hangs (SIGSTOP) right after a change: polls fail, the file stays.
    bao.kv2_put("app/db", json!({ "password": "after" }));
    rustix::process::kill_process(bao.pid(), Signal::STOP).unwrap();
    let errors = || {
        http_get(&format!("http://127.0.0.1:{health}/metrics"))
            .and_then(|(_, m)| metric(&m, "ramsecrets_secret_fetch_errors_total{secret=\"db\"}"))
            .unwrap_or(0.0)
    };
    wait_until(LIMIT, "failed polls", || errors() >= 2.0);
    run.wait_log("refresh failed; files left as they are", LIMIT);
    assert_eq!(out.read("db"), "before");
    rustix::process::kill_process(bao.pid(), Signal::CONT).unwrap();
    wait_until(LIMIT, "the file to catch up", || out.read("db") == "after");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_revoked_approle_token_logs_in_again() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, _) = approle_sidecar(&bao, work.path(), out.path());
    // Every token AppRole issued is revoked: the next read is denied, and the sidecar logs in again.
    bao.api(
        "PUT",
        "sys/leases/revoke-prefix/auth/approle/login",
        json!({}),
    );
    bao.kv2_put("app/db", json!({ "password": "relogged" }));
    wait_until(LIMIT, "the value read after logging in again", || {
        out.read("db") == "relogged"
    });
    assert!(run.logs().contains("logging in again"), "{}", run.logs());
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

/// A child for `exec` that logs to `events` its start (with the value of
/// `db` in `out`), each HUP and USR1, and TERM, on which it exits 3.
fn recording_child(out: &Path, events: &Path) -> String {
    format!(
        "trap 'echo hup >> {ev}' HUP; trap 'echo usr1 >> {ev}' USR1; trap 'echo term >> {ev}; exit 3' TERM; echo start:$(cat {}/db) >> {ev}; while :; do sleep 0.1; done",
        out.display(),
        ev = events.display()
    )
}

/// `exec` of [`recording_child`] on `app/db` from OpenBao, `on_change` as given.
fn exec_on_change(on_change: &str) {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let token = file(work.path(), "token", &bao.token);
    let events = work.path().join("events");
    let cfg = db_config(&bao, &token, out.path())
        .set("exec", json!({ "on_change": on_change, "grace": "5s" }))
        .write(work.path(), "config.yaml");
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let mut run = Running::exec(work.path(), &cfg, &recording_child(out.path(), &events));
    wait_until(LIMIT, "the child", || read() == "start:one\n");
    bao.kv2_put("app/db", json!({ "password": "two" }));
    let (what, after) = match on_change {
        // TERM, then a new child that sees the new value.
        "restart" => ("the restart", "start:one\nterm\nstart:two\n"),
        _ => ("the signal", "start:one\nhup\n"),
    };
    wait_until(LIMIT, what, || read() == after);
    assert_eq!(run.stop(Signal::TERM), Some(3));
}

#[test]
fn exec_restarts_the_child_on_a_change() {
    exec_on_change("restart");
}

#[test]
fn exec_signals_the_child_on_a_change_when_told_to() {
    exec_on_change("HUP");
}

/// A config of one secret from a `file` source, in `work`, written to `out`.
fn file_config(work: &Path, out: &Path) -> std::path::PathBuf {
    file(work, "dev.yaml", "secret/app/db:\n  password: one\n");
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .secret(kv_key("db", "app/db", "password"))
        .write(work, "config.yaml")
}

#[test]
fn exec_forwards_signals_to_the_child_and_exits_with_its_code() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = file_config(work.path(), out.path());
    let events = work.path().join("events");
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let mut run = Running::exec(work.path(), &cfg, &recording_child(out.path(), &events));
    wait_until(LIMIT, "the child", || read() == "start:one\n");
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::USR1).unwrap();
    wait_until(LIMIT, "the forwarded USR1", || read().ends_with("usr1\n"));
    // SIGTERM ends the child, and ramsecrets exits with its code.
    assert_eq!(run.stop(Signal::TERM), Some(3));
    assert!(read().ends_with("term\n"));
}

#[test]
fn a_child_that_exits_by_itself_ends_exec_with_its_code() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = file_config(work.path(), out.path());
    let o = ramsecrets(&[
        "exec",
        "--config",
        cfg.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_exit(&o, 7);
}

/// A sidecar that logs in to `bao` with the token in `token`, polling
/// `app/a` every second; returns it and its config's path.
fn reloadable(bao: &Bao, work: &Path, out: &Path) -> (Running, Config, std::path::PathBuf) {
    bao.kv2_put("app/a", json!({ "v": "a1" }));
    let token = file(work, "token", &bao.token);
    let config = Config::new()
        .source(token_source(bao, &token))
        .output(out)
        .set("refresh", json!({ "interval": "1s" }))
        .secret(kv_key("a", "app/a", "v"));
    let cfg = config.write(work, "config.yaml");
    (Running::sidecar(work, &cfg), config, cfg)
}

#[test]
fn a_valid_config_change_is_reloaded() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    bao.kv2_put("app/b", json!({ "v": "b1" }));
    let (mut run, config, cfg) = reloadable(&bao, work.path(), out.path());
    assert_eq!(out.names(), ["a"]);
    // A new secret appears; the old one is rendered anew.
    let more = config.secret(
        json!({ "name": "b", "kv": { "mount": "secret", "path": "app/b" }, "format": "json" }),
    );
    std::fs::write(&cfg, more.yaml()).unwrap();
    wait_until(LIMIT, "the new secret's file", || {
        out.path().join("b").exists()
    });
    assert_eq!(out.read("b"), r#"{"v":"b1"}"#);
    assert_eq!(out.read("a"), "a1");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn an_invalid_config_change_is_refused_and_the_running_config_stays() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, _, cfg) = reloadable(&bao, work.path(), out.path());
    std::fs::write(&cfg, "secrets: [\n").unwrap();
    run.wait_log("config change refused", LIMIT);
    bao.kv2_put("app/a", json!({ "v": "a2" }));
    wait_until(LIMIT, "refreshes to go on", || out.read("a") == "a2");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_deleted_file_is_written_back() {
    let bao = Bao::start();
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, _, _) = reloadable(&bao, work.path(), out.path());
    std::fs::remove_file(out.path().join("a")).unwrap();
    wait_until(LIMIT, "the deleted file to return", || {
        out.path().join("a").exists() && out.read("a") == "a1"
    });
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_rotated_jwt_is_used_at_the_next_login() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/a", json!({ "v": "a1" }));
    bao.app_policy();
    // JWT auth with a key pair made here; tokens live 1 minute at most.
    let signer = JwtSigner::new(work.path());
    bao.api("POST", "sys/auth/jwt", json!({ "type": "jwt" }));
    bao.api(
        "POST",
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [signer.public_pem] }),
    );
    let role = |subject: &str| {
        bao.api("POST", "auth/jwt/role/ci", json!({ "role_type": "jwt", "user_claim": "sub", "bound_subject": subject, "bound_audiences": ["ramsecrets"], "token_policies": ["app"], "token_ttl": "1m" }));
    };
    role("first");
    let sign = |sub: &str, exp_in: u64| {
        let now = now_unix();
        signer.sign(json!({ "sub": sub, "aud": "ramsecrets", "iat": now, "exp": now + exp_in }))
    };
    let jwt = file(work.path(), "jwt", &sign("first", 600));
    let cfg = Config::new()
        .source(json!({ "vault": {
            "address": bao.addr,
            "request_timeout": "1s",
            "auth": { "jwt": { "role": "ci", "token_file": jwt } },
        } }))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .secret(kv_key("a", "app/a", "v"))
        .write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.read("a"), "a1");
    // The JWT rotates, the role now takes only the new one, and the token is
    // revoked: the next login must read the new JWT.
    std::fs::write(&jwt, sign("second", 600)).unwrap();
    role("second");
    bao.api("PUT", "sys/leases/revoke-prefix/auth/jwt/login", json!({}));
    bao.kv2_put("app/a", json!({ "v": "a3" }));
    wait_until(LIMIT, "a read after logging in with the new JWT", || {
        out.read("a") == "a3"
    });
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn as_pid_1_exec_mode_reaps_orphans() {
    assert!(
        is_root(),
        "this test makes a PID namespace with unshare: run the tests as root (CI does)"
    );
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = file_config(work.path(), out.path());
    let result = work.path().join("zombies");
    // The child orphans short-lived processes, which become PID 1's to reap; it
    // waits until they are gone (reaped, not zombies) for a minute at most.
    let script = format!(
        "(sleep 0.1 & echo $! > {d}/o1); (sleep 0.1 & echo $! > {d}/o2); for i in $(seq 600); do [ -e /proc/$(cat {d}/o1) ] || [ -e /proc/$(cat {d}/o2) ] || break; sleep 0.1; done; grep -s '^State:.*Z' /proc/[0-9]*/status | wc -l > {}",
        result.display(),
        d = work.path().display()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--fork", "--pid", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_ramsecrets"))
        .args([
            "exec",
            "--config",
            cfg.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ]);
    let mut run = Running::spawn(work.path(), cmd);
    // A PID 1 that does not reap would never see its child exit: give up then.
    let mut code = None;
    wait_until(
        Duration::from_secs(120),
        "ramsecrets to exit with its child",
        || {
            code = run.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        },
    );
    assert_eq!(code, Some(Some(0)), "{}", run.logs());
    assert_eq!(
        std::fs::read_to_string(&result).unwrap().trim(),
        "0",
        "zombies were left"
    );
}

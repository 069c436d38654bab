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
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

fn token_source(bao: &Bao, token: &Path) -> String {
    format!(
        "sources:\n  - name: vault\n    vault:\n      address: {}\n      request_timeout: 1s\n      auth: {{ token_file: {} }}\n",
        bao.addr,
        token.display()
    )
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
    let config = format!(
        "{}output: {{ dir: {} }}\nrefresh: {{ interval: 1s }}\nhealth: {{ listen: 127.0.0.1:{health} }}\nsecrets:
  - name: db
    kv: {{ mount: secret, path: app/db }}
    key: password
    on_change:
      - signal: {{ pid_file: {}, signal: HUP }}
      - exec: [\"/bin/sh\", \"-c\", \"echo ran >> {}\"]
      - http: {{ url: \"http://127.0.0.1:{http_port}/-/reload\" }}
  - name: other
    kv: {{ mount: secret, path: app/other }}
    key: v
",
        token_source(&bao, &token),
        out.path().display(),
        pid_file.display(),
        exec_log.display()
    );
    let cfg = file(work.path(), "config.yaml", &config);
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
    let config = format!(
        "{}      revoke_on_exit: true\noutput: {{ dir: {}, state_dir: {}, wipe_on_exit: true }}\nrefresh: {{ renew_at: 0.5 }}\nhealth: {{ listen: 127.0.0.1:{health} }}\nsecrets:\n  - name: db\n    read: database/creds/app\n    format: json\n",
        token_source(&bao, &token),
        out.path().display(),
        state.path().join("state").display()
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let creds = || -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&out.read("db")).unwrap();
        (
            v["username"].as_str().unwrap().into(),
            v["password"].as_str().unwrap().into(),
        )
    };
    let leases = || bao.leases("database/creds/app");
    assert_exit(&init(work.path(), &config, &[]), 0);
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
    let config = format!(
        "{}output: {{ dir: {} }}\nrefresh: {{ renew_at: 0.5 }}\nsecrets:\n  - name: tls\n    pki: {{ mount: pki, role: web, common_name: app.svc, ttl: 4s }}\n",
        token_source(&bao, &token),
        out.path().display()
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let mut run = Running::sidecar(work.path(), &cfg);
    let first = out.read("tls.crt");
    wait_until(LIMIT, "a new certificate", || out.read("tls.crt") != first);
    assert_ne!(out.read("tls.key"), "");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn an_outage_keeps_files_and_the_first_success_catches_up_and_a_revoked_token_logs_in_again() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "password": "before" }));
    bao.app_policy();
    let (rid, sid) = bao.approle(work.path());
    let health = free_port();
    let config = format!(
        "sources:\n  - vault:\n      address: {}\n      request_timeout: 1s\n      auth:\n        approle: {{ role_id_file: {}, secret_id_file: {} }}\noutput: {{ dir: {} }}\nrefresh: {{ interval: 2s }}\nhealth: {{ listen: 127.0.0.1:{health} }}\nsecrets:\n  - name: db\n    kv: {{ mount: secret, path: app/db }}\n    key: password\n",
        bao.addr,
        rid.display(),
        sid.display(),
        out.path().display()
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let mut run = Running::sidecar(work.path(), &cfg);
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

#[test]
fn exec_mode_restarts_or_signals_the_child_forwards_signals_and_returns_its_code() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let token = file(work.path(), "token", &bao.token);
    let events = work.path().join("events");
    let script = format!(
        "echo start:$(cat {}/db) >> {ev}; trap 'echo hup >> {ev}' HUP; trap 'echo usr1 >> {ev}' USR1; trap 'echo term >> {ev}; exit 3' TERM; while :; do sleep 0.1; done",
        out.path().display(),
        ev = events.display()
    );
    let config = |on_change: &str| {
        format!(
            "{}output: {{ dir: {} }}\nrefresh: {{ interval: 1s }}\nexec: {{ on_change: {on_change}, grace: 5s }}\nsecrets:\n  - name: db\n    kv: {{ mount: secret, path: app/db }}\n    key: password\n",
            token_source(&bao, &token),
            out.path().display()
        )
    };
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let exec = |cfg: &std::path::Path| Running::exec(work.path(), cfg, &script);
    // restart: TERM, then a new child that sees the new value.
    let cfg = file(work.path(), "restart.yaml", &config("restart"));
    let mut run = exec(&cfg);
    wait_until(LIMIT, "the child", || read() == "start:one\n");
    bao.kv2_put("app/db", json!({ "password": "two" }));
    wait_until(LIMIT, "the restart", || {
        read() == "start:one\nterm\nstart:two\n"
    });
    // Signals are forwarded; SIGTERM ends the child and ramsecrets exits with its code.
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::USR1).unwrap();
    wait_until(LIMIT, "the forwarded USR1", || read().ends_with("usr1\n"));
    assert_eq!(run.stop(Signal::TERM), Some(3));
    // A signal instead of a restart.
    std::fs::remove_file(&events).unwrap();
    let cfg = file(work.path(), "hup.yaml", &config("HUP"));
    let mut run = exec(&cfg);
    wait_until(LIMIT, "the child", || read() == "start:two\n");
    bao.kv2_put("app/db", json!({ "password": "three" }));
    wait_until(LIMIT, "the HUP", || read() == "start:two\nhup\n");
    assert_eq!(run.stop(Signal::TERM), Some(3));
    // A child that exits by itself ends ramsecrets with its code.
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

#[test]
fn config_reloads_deleted_files_return_and_a_rotated_jwt_is_used() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/a", json!({ "v": "a1" }));
    bao.kv2_put("app/b", json!({ "v": "b1" }));
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
    let config = |extra: &str| {
        format!(
            "sources:\n  - vault:\n      address: {}\n      request_timeout: 1s\n      auth:\n        jwt: {{ role: ci, token_file: {} }}\noutput: {{ dir: {} }}\nrefresh: {{ interval: 1s }}\nsecrets:\n  - name: a\n    kv: {{ mount: secret, path: app/a }}\n    key: v\n{extra}",
            bao.addr,
            jwt.display(),
            out.path().display()
        )
    };
    let cfg = file(work.path(), "config.yaml", &config(""));
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.names(), ["a"]);
    // A valid change is reloaded: a new secret appears, the old one is rendered anew.
    std::fs::write(
        &cfg,
        config("  - name: b\n    kv: { mount: secret, path: app/b }\n    format: json\n"),
    )
    .unwrap();
    wait_until(LIMIT, "the new secret's file", || {
        out.path().join("b").exists()
    });
    assert_eq!(out.read("b"), r#"{"v":"b1"}"#);
    // An invalid change is refused and the running config stays.
    std::fs::write(&cfg, "secrets: [\n").unwrap();
    run.wait_log("config change refused", LIMIT);
    bao.kv2_put("app/a", json!({ "v": "a2" }));
    wait_until(LIMIT, "refreshes to go on", || out.read("a") == "a2");
    // A deleted or altered file is written back.
    std::fs::remove_file(out.path().join("a")).unwrap();
    wait_until(LIMIT, "the deleted file to return", || {
        out.path().join("a").exists() && out.read("a") == "a2"
    });
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
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: x\n");
    let cfg = file(
        work.path(),
        "config.yaml",
        &format!(
            "sources:\n  - file: {{ path: dev.yaml }}\noutput: {{ dir: {} }}\nsecrets:\n  - name: db\n    kv: {{ mount: secret, path: app/db }}\n    key: password\n",
            out.path().display()
        ),
    );
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

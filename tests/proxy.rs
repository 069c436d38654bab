//! The local credential proxy, read by clients nobody here wrote: Python's
//! `hvac` (the Vault SDK) and plain HTTP as in the AWS agent's docs (Python
//! `requests`), backed by real OpenBao and by the `file` source; and each
//! hardening rule.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs a Python snippet with the test bed's interpreter; returns stdout.
fn python(code: &str) -> String {
    let py = repo().join(".venv/bin/python");
    assert!(py.exists(), "run `bash scripts/testbed` first");
    let o = Command::new(py).arg("-c").arg(code).output().unwrap();
    assert!(
        o.status.success(),
        "python failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn hvac_read(port: u16, token: &str, mount: &str, path: &str) -> String {
    python(&format!(
        "import hvac, json\nc = hvac.Client(url='http://127.0.0.1:{port}', token='{token}')\nr = c.secrets.kv.v2.read_secret_version(path='{path}', mount_point='{mount}', raise_on_deleted_version=True)\nprint(json.dumps(r['data']['data'], sort_keys=True))"
    ))
}

fn aws_get(port: u16, token: &str, id: &str, extra: &str) -> String {
    python(&format!(
        "import requests\nr = requests.get('http://127.0.0.1:{port}/secretsmanager/get?secretId={id}{extra}', headers={{'X-Aws-Parameters-Secrets-Token': '{token}'}}, timeout=30)\nr.raise_for_status()\nprint(r.json()['SecretString'])"
    ))
}

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

/// Starts `ramsecrets proxy`; returns it and the token it created.
fn start(work: &Path, config: &str) -> (Running, String) {
    let cfg = file(work, "config.yaml", config);
    let mut run = Running::start(work, &["proxy", "--config", cfg.to_str().unwrap()]);
    run.wait_log("proxy listening", LIMIT);
    let token = std::fs::read_to_string(work.join("proxy-token")).unwrap();
    (run, token)
}

#[test]
fn vault_sdk_and_aws_agent_clients_read_through_the_proxy_backed_by_openbao() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "username": "app", "password": "one" }));
    let token = file(work.path(), "token", &bao.token);
    let (port, health) = (free_port(), free_port());
    let config = Config::new()
        .source(vault(&bao.addr, json!({ "token_file": token })))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .set("health", json!({ "listen": format!("127.0.0.1:{health}") }))
        .set("proxy", proxy_section(port))
        .secret(json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db" }, "format": "json" }));
    let (mut run, ptoken) = start(work.path(), &config.yaml());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(work.path().join("proxy-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o440);
    assert_eq!(ptoken.len(), 64);
    assert_eq!(
        hvac_read(port, &ptoken, "secret", "app/db"),
        r#"{"password": "one", "username": "app"}"#
    );
    assert_eq!(
        aws_get(port, &ptoken, "db", ""),
        r#"{"password":"one","username":"app"}"#
    );
    // A rotation shows after the next refresh…
    bao.kv2_put("app/db", json!({ "username": "app", "password": "two" }));
    wait_until(LIMIT, "the proxy to serve the new value", || {
        hvac_read(port, &ptoken, "secret", "app/db").contains("two")
    });
    // …and at once with refreshNow=true.
    bao.kv2_put("app/db", json!({ "username": "app", "password": "three" }));
    assert_eq!(
        aws_get(port, &ptoken, "db", "&refreshNow=true"),
        r#"{"password":"three","username":"app"}"#
    );
    // Concurrent refreshNow requests share one fetch. (At most one a second:
    // the last one is let age first.)
    let refreshes = || {
        http_get(&format!("http://127.0.0.1:{health}/metrics"))
            .and_then(|(_, m)| metric(&m, "ramsecrets_proxy_refreshes_total{result=\"ok\"}"))
            .unwrap_or(0.0)
    };
    std::thread::sleep(Duration::from_millis(1100));
    let before = refreshes();
    // OpenBao is stopped until all eight requests are sent: the first one's
    // fetch is still waiting on it when the others come in.
    rustix::process::kill_process(bao.pid(), Signal::STOP).unwrap();
    let request = format!(
        "GET /secretsmanager/get?secretId=db&refreshNow=true HTTP/1.1\r\nHost: x\r\nX-Aws-Parameters-Secrets-Token: {ptoken}\r\nConnection: close\r\n\r\n"
    );
    let (sent_tx, sent) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (request, sent_tx) = (request.clone(), sent_tx.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(LIMIT)).unwrap();
                s.write_all(request.as_bytes()).unwrap();
                sent_tx.send(()).unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            })
        })
        .collect();
    for _ in 0..8 {
        sent.recv_timeout(LIMIT).unwrap();
    }
    rustix::process::kill_process(bao.pid(), Signal::CONT).unwrap();
    for t in threads {
        let answer = t.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(
        refreshes() - before,
        1.0,
        "8 concurrent refreshNow requests made more than one fetch"
    );
    assert!(!run.logs().contains("three"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

/// `proxy: { listen: 127.0.0.1:<port>, token_file: proxy-token }`.
fn proxy_section(port: u16) -> serde_json::Value {
    json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "proxy-token" })
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
    let (run, token) = start(work, &config.yaml());
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
    let (mut run, token) = start(work.path(), &config.yaml());
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

/// `ramsecrets <args>` under strace, which records every call that can
/// create, change or remove a file; HOME is `home`.
fn traced(work: &Path, home: &Path, args: &[&str]) -> (Running, std::path::PathBuf) {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is missing: run `bash scripts/testbed` (the README's test command does)"
    );
    let trace = work.join(format!("strace-{:x}.txt", rand_u64()));
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=open,openat,openat2,creat,mkdir,mkdirat,mknod,mknodat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,rmdir,truncate,chmod,fchmodat,chown,lchown,fchownat",
            env!("CARGO_BIN_EXE_ramsecrets"),
        ])
        .args(args)
        .current_dir(work)
        .env("HOME", home)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN");
    (Running::spawn(work, cmd), trace)
}

/// Stops the ramsecrets that strace runs with SIGTERM; returns its exit code.
fn stop_traced(run: &mut Running) -> Option<i32> {
    let strace = run.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
    let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), Signal::TERM)
        .unwrap();
    let until = std::time::Instant::now() + LIMIT;
    loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(std::time::Instant::now() < until, "ramsecrets did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The paths that the traced process created, opened for writing, renamed,
/// linked, removed or changed the mode or owner of (successful calls only).
fn written(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut paths = Vec::new();
    for line in text.lines() {
        let Some((call, rest)) = line
            .split_once(' ')
            .map(|(_, l)| l.trim_start())
            .and_then(|l| l.split_once('('))
        else {
            continue;
        };
        if rest.contains(") = -1") || !rest.contains(") = ") {
            continue;
        }
        let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|f| rest.contains(f));
        if call.starts_with("open") && !writes {
            continue;
        }
        if let Some(path) = rest.split('"').nth(1) {
            paths.push(format!("{call} {path}"));
        }
    }
    paths
}

/// `ramsecrets proxy --config cfg` under strace with HOME `home`, once it is
/// ready and has announced, once, the env an app needs (without the token);
/// returns it, its trace and the token in `token_file`.
fn proxy_traced(
    work: &Path,
    home: &Path,
    cfg: &str,
    port: u16,
    token_file: &Path,
) -> (Running, std::path::PathBuf, String) {
    let (mut run, trace) = traced(work, home, &["proxy", "--config", cfg]);
    run.wait_log("ready; keeping secrets fresh", LIMIT);
    let token = std::fs::read_to_string(token_file).unwrap();
    let logs = run.logs();
    let line = format!("export VAULT_ADDR='http://127.0.0.1:{port}'");
    assert_eq!(logs.matches(&line).count(), 1, "{logs}");
    assert!(logs.contains("export VAULT_TOKEN=\"$(cat '"), "{logs}");
    assert!(
        !logs.contains(token.trim()),
        "the token was printed:\n{logs}"
    );
    (run, trace, token)
}

/// Stops a traced proxy and checks that the one file it made is its token.
fn stop_having_written_only(mut run: Running, trace: &Path, token_file: &Path) {
    assert_eq!(stop_traced(&mut run), Some(0));
    assert_eq!(
        written(trace),
        [format!("openat {}", token_file.display())],
        "{}",
        run.logs()
    );
}

#[test]
fn the_quick_start_proxy_only_config_writes_no_file_and_its_printed_env_works() {
    // examples/dev-proxy.yaml as the README runs it, on a free port.
    let work = scratch();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let examples = repo().join("examples");
    std::fs::copy(
        examples.join("dev-secrets.yaml"),
        work.path().join("dev-secrets.yaml"),
    )
    .unwrap();
    let port = free_port();
    let example = std::fs::read_to_string(examples.join("dev-proxy.yaml")).unwrap();
    assert!(!example.contains("\noutput:"), "{example}");
    let cfg = file(
        work.path(),
        "dev-proxy.yaml",
        &example.replace("127.0.0.1:2773", &format!("127.0.0.1:{port}")),
    );
    let cfg = cfg.to_str().unwrap();
    // `check` says where each secret goes.
    let o = ramsecrets(&["check", "--config", cfg]);
    assert_exit(&o, 0);
    assert!(text(&o).contains("output: none"), "{}", text(&o));
    assert!(
        text(&o).contains("db: kv secret/app/db from dev -> the proxy only, in memory"),
        "{}",
        text(&o)
    );
    // `init` has nothing to write to.
    let o = ramsecrets(&["init", "--config", cfg]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("no `output:` section"), "{}", text(&o));

    let token_file = home.join(".ramsecrets-proxy-token");
    let (run, trace, token) = proxy_traced(work.path(), &home, cfg, port, &token_file);
    assert_eq!(
        hvac_read(port, &token, "secret", "app/db"),
        r#"{"password": "dev-only-password", "username": "app"}"#
    );
    // What --print-env prints, evaluated by sh, is all an app needs: hvac
    // with no arguments (VAULT_ADDR, VAULT_TOKEN) and curl with AWS_TOKEN.
    let py = repo().join(".venv/bin/python");
    let script = format!(
        "set -e\neval \"$('{bin}' proxy --config '{cfg}' --print-env)\"\n'{py}' -c \"import hvac; print(hvac.Client().secrets.kv.v2.read_secret_version(path='app/db', mount_point='secret', raise_on_deleted_version=True)['data']['data']['password'])\"\ncurl -sf -H \"X-Aws-Parameters-Secrets-Token: $AWS_TOKEN\" \"$VAULT_ADDR/secretsmanager/get?secretId=prod/api\"\n",
        bin = env!("CARGO_BIN_EXE_ramsecrets"),
        py = py.display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("HOME", &home)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    let (password, aws) = out.split_once('\n').unwrap();
    assert_eq!(password, "dev-only-password");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(aws).unwrap()["SecretString"],
        "dev-api-token"
    );
    assert!(!text(&o).contains(token.trim()), "{}", text(&o));
    stop_having_written_only(run, &trace, &token_file);
}

#[test]
fn the_developers_vault_token_in_home_is_read_again_after_it_expires() {
    let bao = Bao::start();
    bao.app_policy();
    bao.kv2_put("app/db", json!({ "password": "one" }));
    let work = scratch();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let create = |ttl: &str| {
        bao.api(
            "POST",
            "auth/token/create",
            json!({ "policies": ["app"], "ttl": ttl, "renewable": false }),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // As `bao login` leaves it.
    let vault_token = home.join(".vault-token");
    let first = create("1h");
    std::fs::write(&vault_token, &first).unwrap();
    let port = free_port();
    let cfg = Config::new()
        .source(vault(&bao.addr, json!({ "token_file": "~/.vault-token" })))
        .set("refresh", json!({ "interval": "1s" }))
        .set(
            "proxy",
            json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "~/proxy-token" }),
        )
        .secret(
            json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db", "kv_version": 2 } }),
        )
        .write(work.path(), "config.yaml");
    let token_file = home.join("proxy-token");
    let cfg = cfg.to_str().unwrap();
    let (mut run, trace, token) = proxy_traced(work.path(), &home, cfg, port, &token_file);
    assert_eq!(
        hvac_read(port, &token, "secret", "app/db"),
        r#"{"password": "one"}"#
    );
    assert_eq!(aws_get(port, &token, "db", ""), r#"{"password":"one"}"#);
    // The login runs out: the file now holds a token that expires in a
    // second, and the one in use is revoked, so the next login reads it.
    std::fs::write(&vault_token, create("1s")).unwrap();
    bao.api("POST", "auth/token/revoke", json!({ "token": first }));
    let get = || {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/v1/secret/data/app/db"))
            .header("X-Vault-Token", token.trim())
            .timeout(LIMIT)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let mut answer = (0, String::new());
    wait_until(LIMIT * 2, "the proxy to answer 503", || {
        answer = get();
        answer.0 == 503
    });
    // In Vault's error shape, which the SDKs show.
    let body: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    let said = body["errors"][0].as_str().unwrap_or_default();
    assert!(said.contains("log in again"), "{body}");
    assert!(said.contains(&vault_token.display().to_string()), "{body}");
    assert!(run.child.try_wait().unwrap().is_none(), "the proxy stopped");
    // A new login: the next request reads the file again, no restart. (At
    // most one backend read a second per secret: let the last one age.)
    bao.kv2_put("app/db", json!({ "password": "two" }));
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&vault_token, create("1h")).unwrap();
    assert_eq!(
        hvac_read(port, &token, "secret", "app/db"),
        r#"{"password": "two"}"#
    );
    assert!(!run.logs().contains(&first), "a Vault token was logged");
    stop_having_written_only(run, &trace, &token_file);
}

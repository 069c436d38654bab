//! The local credential proxy, read by clients nobody here wrote: Python's
//! `hvac` (the Vault SDK) and plain HTTP as in the AWS agent's docs (Python
//! `requests`), backed by real OpenBao and moto, with the backends' own
//! ARN and creation times; `refreshNow`; the quick start and a developer's
//! `~/.vault-token`. The `file` source and the hardening rules are in
//! proxy_file_source.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::clients::{aws_get, bao_cli, hvac_read, proxy_section, python, start_proxy};
use common::moto::{AwsEnv, Moto};
use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// OpenBao holding `app/db` and a sidecar with a proxy over it (polling
/// every second, with metrics).
struct BaoProxy {
    bao: Bao,
    work: tempfile::TempDir,
    _out: Tmpfs,
    port: u16,
    health: u16,
    token: String,
    run: Running,
}

impl BaoProxy {
    fn start() -> BaoProxy {
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
        let (run, token) = start_proxy(work.path(), &config.yaml());
        BaoProxy {
            bao,
            work,
            _out: out,
            port,
            health,
            token,
            run,
        }
    }
}

#[test]
fn vault_sdk_and_aws_agent_clients_read_through_the_proxy_backed_by_openbao() {
    let mut p = BaoProxy::start();
    let (port, ptoken) = (p.port, p.token.clone());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.work.path().join("proxy-token"))
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
    // A rotation shows after the next refresh.
    p.bao
        .kv2_put("app/db", json!({ "username": "app", "password": "two" }));
    wait_until(LIMIT, "the proxy to serve the new value", || {
        hvac_read(port, &ptoken, "secret", "app/db").contains("two")
    });
    assert_eq!(p.run.stop(Signal::TERM), Some(0));
}

#[test]
fn the_vault_cli_and_hvac_read_through_the_proxy_as_from_vault() {
    let mut p = BaoProxy::start();
    let (port, token) = (p.port, p.token.trim().to_owned());
    // `bao kv get` asks the mount lookup first, both ways of naming the mount.
    for args in [
        ["kv", "get", "-mount=secret", "-field=password", "app/db"],
        ["kv", "get", "-field=password", "secret/app/db", ""],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let o = bao_cli(port, &token, &args);
        assert_exit(&o, 0);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "one", "{}", text(&o));
    }
    let o = bao_cli(
        port,
        &token,
        &["kv", "get", "-format=json", "secret/app/db"],
    );
    assert_exit(&o, 0);
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(read["data"]["data"]["username"], "app");
    // Outside the configured mounts the CLI hears the proxy's own 404.
    let o = bao_cli(port, &token, &["kv", "get", "-mount=other", "app/db"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    // hvac's first questions: is the token good, is the server up.
    let asked = python(&format!(
        "import hvac\nc = hvac.Client(url='http://127.0.0.1:{port}', token='{token}')\nh = c.sys.read_health_status(method='GET')\nprint(c.is_authenticated(), h['initialized'], h['sealed'])\nprint(hvac.Client(url='http://127.0.0.1:{port}', token='wrong').is_authenticated())"
    ));
    assert_eq!(asked, "True True False\nFalse");
    assert_eq!(p.run.stop(Signal::TERM), Some(0));
}

#[test]
fn the_proxy_passes_on_the_backends_own_arn_and_creation_times() {
    // KV v2: `created_time` as OpenBao made it, read with the real CLI.
    let mut p = BaoProxy::start();
    let o = bao_cli(
        p.port,
        &p.token,
        &["kv", "get", "-format=json", "secret/app/db"],
    );
    assert_exit(&o, 0);
    let through: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let direct = p
        .bao
        .api("GET", "secret/data/app/db", serde_json::Value::Null);
    let when = |v: &serde_json::Value| {
        humantime::parse_rfc3339_weak(v["data"]["metadata"]["created_time"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(when(&through), when(&direct), "{through:#}\n{direct:#}");
    assert_eq!(p.run.stop(Signal::TERM), Some(0));

    // AWS Secrets Manager: the ARN and CreatedDate moto gave the version.
    let moto = Moto::start();
    moto.create("app/api", r#"{"key":"aws-value"}"#);
    let work = scratch();
    let port = free_port();
    let config = Config::new()
        .source(json!({ "aws_secrets_manager": { "endpoint": moto.url } }))
        .set("proxy", proxy_section(port))
        .secret(json!({ "name": "api", "secret_id": "app/api" }))
        .write(work.path(), "config.yaml");
    let env = AwsEnv::keys();
    let mut run = Running::spawn(
        work.path(),
        env.command(&["proxy", "--config", config.to_str().unwrap()]),
    );
    run.wait_log("proxy listening", LIMIT);
    let token = std::fs::read_to_string(work.path().join("proxy-token")).unwrap();
    let answer = python(&format!(
        "import requests\nr = requests.get('http://127.0.0.1:{port}/secretsmanager/get?secretId=app/api', headers={{'X-Aws-Parameters-Secrets-Token': '{token}'}}, timeout=30)\nr.raise_for_status()\nj = r.json()\nprint(j['ARN'])\nprint(j['CreatedDate'])"
    ));
    let (arn, created) = answer.split_once('\n').unwrap();
    let direct = moto.sm("GetSecretValue", json!({ "SecretId": "app/api" }));
    assert_eq!(arn, direct["ARN"].as_str().unwrap());
    let made = direct["CreatedDate"].as_f64().unwrap();
    let created: f64 = created.parse().unwrap();
    // Only float rounding between the two: the SDK parses the epoch seconds.
    assert!((created - made).abs() < 1e-3, "{created} != {made}");
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn refresh_now_serves_a_new_value_at_once() {
    let mut p = BaoProxy::start();
    p.bao
        .kv2_put("app/db", json!({ "username": "app", "password": "three" }));
    assert_eq!(
        aws_get(p.port, &p.token, "db", "&refreshNow=true"),
        r#"{"password":"three","username":"app"}"#
    );
    assert!(!p.run.logs().contains("three"));
    assert_eq!(p.run.stop(Signal::TERM), Some(0));
}

#[test]
fn concurrent_refresh_now_requests_share_one_fetch() {
    let mut p = BaoProxy::start();
    let port = p.port;
    let refreshes = || {
        http_get(&format!("http://127.0.0.1:{}/metrics", p.health))
            .and_then(|(_, m)| metric(&m, "ramsecrets_proxy_refreshes_total{result=\"ok\"}"))
            .unwrap_or(0.0)
    };
    let before = refreshes();
    // OpenBao is stopped until all eight requests are sent: the first one's
    // fetch is still waiting on it when the others come in.
    rustix::process::kill_process(p.bao.pid(), Signal::STOP).unwrap();
    let request = format!(
        "GET /secretsmanager/get?secretId=db&refreshNow=true HTTP/1.1\r\nHost: x\r\nX-Aws-Parameters-Secrets-Token: {}\r\nConnection: close\r\n\r\n",
        p.token
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
    rustix::process::kill_process(p.bao.pid(), Signal::CONT).unwrap();
    for t in threads {
        let answer = t.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(
        refreshes() - before,
        1.0,
        "8 concurrent refreshNow requests made more than one fetch"
    );
    assert_eq!(p.run.stop(Signal::TERM), Some(0));
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

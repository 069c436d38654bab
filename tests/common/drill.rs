//! The drill's command line and the sidecar it drills: a sidecar config with
//! a 2 s refresh interval and metrics, a fake metrics page, `ramsecrets
//! drill … --json` and its report, and the check that no value reached the
//! drill's output.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use super::{file, text, Bao, Config, Running, Tmpfs};

/// The Vault source logging in with `bao`'s root token.
pub fn token_source(bao: &Bao, work: &Path) -> Value {
    let token = file(work, "token", &bao.token);
    json!({ "name": "vault", "vault": { "address": bao.addr, "auth": { "token_file": token } } })
}

/// `ramsecrets drill --config CFG --secret NAME --json EXTRA…`
pub fn drill_cmd(cfg: &Path, secret: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ramsecrets"));
    cmd.args([
        "drill",
        "--config",
        cfg.to_str().unwrap(),
        "--secret",
        secret,
        "--json",
    ])
    .args(extra)
    .env_remove("VAULT_ADDR")
    .env_remove("VAULT_TOKEN")
    .stdin(Stdio::null());
    cmd
}

/// Runs a drill; returns its output and its JSON report.
pub fn drill(mut cmd: Command) -> (Output, Value) {
    let o = cmd.output().unwrap();
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}", text(&o)));
    (o, report)
}

/// Asserts that none of `values` shows in the drill's output.
pub fn assert_no_secret(o: &Output, values: &[&str]) {
    let all = text(o);
    for v in values {
        assert!(
            !all.contains(v),
            "the drill's output shows a secret value:\n{all}"
        );
    }
}

/// The config of a sidecar with a 2 s refresh interval, metrics, and `secrets`.
pub fn sidecar_config(source: Value, out: &Tmpfs, health: u16, secrets: &[Value]) -> Config {
    secrets.iter().fold(
        Config::new()
            .source(source)
            .output(out.path())
            .set("refresh", json!({ "interval": "2s" }))
            .set("health", json!({ "listen": format!("127.0.0.1:{health}") })),
        |config, secret| config.secret(secret.clone()),
    )
}

/// Writes the config of a sidecar reading `bao` and starts it, ready.
pub fn vault_sidecar(
    bao: &Bao,
    work: &Path,
    out: &Tmpfs,
    health: u16,
    secrets: &[Value],
) -> (PathBuf, Running) {
    let cfg =
        sidecar_config(token_source(bao, work), out, health, secrets).write(work, "config.yaml");
    let run = Running::sidecar(work, &cfg);
    (cfg, run)
}

/// A loopback server answering every request with `body` as its metrics
/// page (a sidecar's, or a forged one); returns its `/metrics` URL.
pub fn fake_metrics(body: &str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    let body = body.to_owned();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

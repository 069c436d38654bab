//! The proxy's clients nobody here wrote: Python's `hvac` (the Vault SDK)
//! and plain HTTP as in the AWS agent's docs (Python `requests`), with the
//! test bed's interpreter; and starting `ramsecrets proxy` for them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{file, repo, Running};

/// Runs a Python snippet with the test bed's interpreter; returns stdout.
pub fn python(code: &str) -> String {
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

/// The `bao` CLI (as `vault` is used) with `VAULT_ADDR` on the proxy on
/// `port` and `VAULT_TOKEN` the proxy token; HOME is an empty directory, so
/// no token helper or `~/.vault-token` gets in the way. Returns its output.
pub fn bao_cli(port: u16, token: &str, args: &[&str]) -> std::process::Output {
    let home = super::scratch();
    Command::new(repo().join(".venv/bin/bao"))
        .args(args)
        .env("HOME", home.path())
        .env("VAULT_ADDR", format!("http://127.0.0.1:{port}"))
        .env("VAULT_TOKEN", token.trim())
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .output()
        .unwrap()
}

/// Reads `mount`/`path` through the proxy on `port` with hvac; returns its data as JSON.
pub fn hvac_read(port: u16, token: &str, mount: &str, path: &str) -> String {
    python(&format!(
        "import hvac, json\nc = hvac.Client(url='http://127.0.0.1:{port}', token='{token}')\nr = c.secrets.kv.v2.read_secret_version(path='{path}', mount_point='{mount}', raise_on_deleted_version=True)\nprint(json.dumps(r['data']['data'], sort_keys=True))"
    ))
}

/// GETs secret `id` (and the query `extra`) as the AWS agent's docs do; returns its SecretString.
pub fn aws_get(port: u16, token: &str, id: &str, extra: &str) -> String {
    python(&format!(
        "import requests\nr = requests.get('http://127.0.0.1:{port}/secretsmanager/get?secretId={id}{extra}', headers={{'X-Aws-Parameters-Secrets-Token': '{token}'}}, timeout=30)\nr.raise_for_status()\nprint(r.json()['SecretString'])"
    ))
}

/// Starts `ramsecrets proxy`; returns it and the token it created.
pub fn start_proxy(work: &Path, config: &str) -> (Running, String) {
    let cfg = file(work, "config.yaml", config);
    let mut run = Running::start(work, &["proxy", "--config", cfg.to_str().unwrap()]);
    run.wait_log("proxy listening", Duration::from_secs(60));
    let token = std::fs::read_to_string(work.join("proxy-token")).unwrap();
    (run, token)
}

/// `proxy: { listen: 127.0.0.1:<port>, token_file: proxy-token }`.
pub fn proxy_section(port: u16) -> serde_json::Value {
    json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "proxy-token" })
}

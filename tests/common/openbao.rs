//! A real OpenBao dev server (`bao server -dev`) on a free loopback port,
//! optionally with TLS, and the engines, policies and logins tests set up on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{file, free_port, rand_u64, repo, scratch, Postgres};

/// The `bao` binary of the test bed (`RAMSECRETS_BAO` overrides it).
pub fn bao_bin() -> PathBuf {
    let path = std::env::var_os("RAMSECRETS_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/bao"));
    assert!(
        path.exists(),
        "OpenBao is not installed at {}: run `bash scripts/testbed` (the README's test command does)",
        path.display()
    );
    path
}

/// A running `bao server -dev`, stopped on drop.
pub struct Bao {
    child: Child,
    pub addr: String,
    pub token: String,
    /// With TLS (`start_tls`): the CA that signed the server's certificate.
    pub ca: Option<PathBuf>,
    _log: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Bao {
    /// Starts a dev server and waits until it is unsealed and answering.
    /// The dev server also binds the port after its own (cluster traffic),
    /// which another test may have taken: a server that exits at start is
    /// tried again on other ports.
    pub fn start() -> Bao {
        Bao::start_with("127.0.0.1", false)
    }

    /// A dev server on https:// (`-dev-tls`), its CA in [`Bao::ca`].
    pub fn start_tls() -> Bao {
        Bao::start_with("127.0.0.1", true)
    }

    /// A dev server on `ip` (e.g. the address pods of the local node reach).
    pub fn start_on(ip: &str) -> Bao {
        Bao::start_with(ip, false)
    }

    fn start_with(ip: &str, tls: bool) -> Bao {
        for _ in 0..5 {
            if let Some(bao) = Bao::try_start(ip, tls) {
                return bao;
            }
        }
        panic!("bao server exited at start five times: see the logs above");
    }

    fn try_start(ip: &str, tls: bool) -> Option<Bao> {
        let port = free_port();
        let token = format!("root-{:x}", rand_u64());
        let log = scratch();
        let out = std::fs::File::create(log.path().join("bao.log")).unwrap();
        let mut cmd = Command::new(bao_bin());
        cmd.args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={token}"),
            &format!("-dev-listen-address={ip}:{port}"),
        ]);
        if tls {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", log.path().display()));
        }
        let child = cmd
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start bao server");
        let scheme = if tls { "https" } else { "http" };
        let ca = tls.then(|| log.path().join("vault-ca.pem"));
        let mut bao = Bao {
            child,
            addr: format!("{scheme}://{ip}:{port}"),
            token,
            ca,
            _log: log,
            http: reqwest::blocking::Client::new(),
        };
        let started = Instant::now();
        let log = || std::fs::read_to_string(bao._log.path().join("bao.log")).unwrap_or_default();
        loop {
            // The CA is written once the server has made it.
            let mut http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
            if let Some(pem) = bao.ca.as_ref().and_then(|p| std::fs::read(p).ok()) {
                http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
            }
            bao.http = http.build().unwrap();
            if let Ok(r) = bao.http.get(format!("{}/v1/sys/health", bao.addr)).send() {
                if r.status().is_success() {
                    return Some(bao);
                }
            }
            if let Ok(Some(status)) = bao.child.try_wait() {
                eprintln!(
                    "bao server on {} exited ({status}) at start; log:\n{}",
                    bao.addr,
                    log()
                );
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "bao server did not answer on {} within 60s; log:\n{}",
                bao.addr,
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Calls the API as root; panics on a non-2xx answer.
    pub fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.api_as(&self.token, method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Calls the API with `token`; returns status and body.
    pub fn api_as(&self, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.addr);
        let req = self
            .http
            .request(method.parse().unwrap(), url)
            .header("X-Vault-Token", token);
        let req = if body.is_null() { req } else { req.json(&body) };
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The server's process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_raw(self.child.id() as i32).unwrap()
    }

    /// Writes a KV v2 secret at `secret/<path>`; returns its new version.
    pub fn kv2_put(&self, path: &str, data: Value) -> u64 {
        let v = self.api(
            "POST",
            &format!("secret/data/{path}"),
            json!({ "data": data }),
        );
        v["data"]["version"].as_u64().unwrap()
    }

    /// A `pki` mount with a root CA and a role `role` that issues any name for up to `max_ttl`.
    pub fn pki_role(&self, role: &str, max_ttl: &str) {
        self.api("POST", "sys/mounts/pki", json!({ "type": "pki" }));
        self.api(
            "POST",
            "pki/root/generate/internal",
            json!({ "common_name": "ca", "ttl": "24h" }),
        );
        self.api(
            "POST",
            &format!("pki/roles/{role}"),
            json!({ "allow_any_name": true, "max_ttl": max_ttl }),
        );
    }

    /// A `database` mount with connection `pg` to `postgres` (as its
    /// superuser), allowed to serve `roles`.
    pub fn database_engine(&self, postgres: &Postgres, roles: &[&str]) {
        self.api("POST", "sys/mounts/database", json!({ "type": "database" }));
        self.api(
            "POST",
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", postgres.port),
                "username": "postgres",
                "password": "pgroot",
                "allowed_roles": roles,
            }),
        );
    }

    /// Creates a token with `policy` (HCL) attached.
    pub fn token_with_policy(&self, name: &str, policy: &str) -> String {
        self.api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": policy }),
        );
        let v = self.api(
            "POST",
            "auth/token/create",
            json!({ "policies": [name], "ttl": "1h" }),
        );
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    /// Policy `app`: read `secret/data/app/*`.
    pub fn app_policy(&self) {
        self.api(
            "PUT",
            "sys/policies/acl/app",
            json!({ "policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }" }),
        );
    }

    /// AppRole auth with role `app` (policy `app`); its role id and secret id
    /// written to files in `dir`, returned as (role_id_file, secret_id_file).
    pub fn approle(&self, dir: &Path) -> (PathBuf, PathBuf) {
        self.api("POST", "sys/auth/approle", json!({ "type": "approle" }));
        self.api(
            "POST",
            "auth/approle/role/app",
            json!({ "token_policies": ["app"] }),
        );
        let role_id = self.api("GET", "auth/approle/role/app/role-id", Value::Null)["data"]
            ["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = self.api("POST", "auth/approle/role/app/secret-id", json!({}))["data"]
            ["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (
            file(dir, "role_id", &role_id),
            file(dir, "secret_id", &secret_id),
        )
    }
}

impl Bao {
    /// The database engine on `pg`, with role `app` (credentials that last
    /// `default_ttl`, at most `max_ttl`).
    pub fn database(&self, pg: &Postgres, default_ttl: &str, max_ttl: &str) {
        self.database_engine(pg, &["app"]);
        self.database_role("app", default_ttl, max_ttl);
    }

    /// Role `name` of the database engine (allowed by [`Bao::database_engine`]): a login
    /// role that lasts `default_ttl`, at most `max_ttl`.
    pub fn database_role(&self, name: &str, default_ttl: &str, max_ttl: &str) {
        self.api(
            "POST",
            &format!("database/roles/{name}"),
            json!({
                "db_name": "pg",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl
            }),
        );
    }

    /// Kubernetes auth against the API server at `host` (CA `ca_pem`), TokenReviews made with
    /// `reviewer`'s token, and role `app` for ServiceAccount `ns/app` and audience `vault`
    /// (policy `app`), whose tokens live `ttl`.
    pub fn kubernetes_auth(&self, host: &str, ca_pem: &str, reviewer: &str, ns: &str, ttl: &str) {
        self.api(
            "POST",
            "sys/auth/kubernetes",
            json!({ "type": "kubernetes" }),
        );
        self.api(
            "POST",
            "auth/kubernetes/config",
            json!({
                "kubernetes_host": host,
                "kubernetes_ca_cert": ca_pem,
                "token_reviewer_jwt": reviewer,
                "disable_local_ca_jwt": true
            }),
        );
        self.api(
            "POST",
            "auth/kubernetes/role/app",
            json!({
                "bound_service_account_names": ["app"],
                "bound_service_account_namespaces": [ns],
                "audience": "vault",
                "token_policies": ["app"],
                "token_ttl": ttl,
                "token_max_ttl": ttl
            }),
        );
    }

    /// How many leases are live under `prefix` (e.g. `database/creds/app`).
    pub fn leases(&self, prefix: &str) -> usize {
        let (status, v) = self.api_as(
            &self.token,
            "LIST",
            &format!("sys/leases/lookup/{prefix}"),
            Value::Null,
        );
        if status == 404 {
            0
        } else {
            v["data"]["keys"].as_array().map_or(0, Vec::len)
        }
    }
}

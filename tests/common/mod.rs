//! Test bed for integration tests: a real OpenBao dev server on a free
//! loopback port (and a real moto server, in [`moto`]), real tmpfs output
//! directories (mounted when root), and the real `ramsecrets` binary. A server
//! that cannot start fails the test.

#![allow(dead_code)]

pub mod apply;
pub mod auth;
pub mod helm;
pub mod kube;
pub mod moto;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory under target/, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    let base = repo().join("target/test-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn bao_bin() -> PathBuf {
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
        Bao::start_with(false)
    }

    /// A dev server on https:// (`-dev-tls`), its CA in [`Bao::ca`].
    pub fn start_tls() -> Bao {
        Bao::start_with(true)
    }

    fn start_with(tls: bool) -> Bao {
        for _ in 0..5 {
            if let Some(bao) = Bao::try_start(tls) {
                return bao;
            }
        }
        panic!("bao server exited at start five times: see the logs above");
    }

    fn try_start(tls: bool) -> Option<Bao> {
        let port = free_port();
        let token = format!("root-{:x}", rand_u64());
        let log = scratch();
        let out = std::fs::File::create(log.path().join("bao.log")).unwrap();
        let mut cmd = Command::new(bao_bin());
        cmd.args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={token}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
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
            addr: format!("{scheme}://127.0.0.1:{port}"),
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

/// A random number for unique names.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per instance.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// True when the tests run as root (and can mount tmpfs).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An in-memory output directory: a real tmpfs mount of `size` when root,
/// else a fresh directory under /dev/shm (also tmpfs).
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// A tmpfs of `size` (as `mount -o size=` takes it, e.g. `16m`).
    pub fn new(size: &str) -> Tmpfs {
        if is_root() {
            let dir = scratch();
            let ok = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir.path())
                .status()
                .expect("cannot run mount");
            assert!(ok.success(), "mount -t tmpfs failed");
            Tmpfs { dir, mounted: true }
        } else {
            Tmpfs {
                dir: tempfile::tempdir_in("/dev/shm").expect("no /dev/shm"),
                mounted: false,
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Reads a file in it.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// `$var` after a POSIX shell sources `file` (an `env`-format file).
    pub fn source_var(&self, file: &str, var: &str) -> String {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                ". {}/{file} && printf %s \"${var}\"",
                self.path().display()
            ))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sourcing {file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Names of the entries in it, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

/// Runs the ramsecrets binary with `args`.
pub fn ramsecrets(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramsecrets"))
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Writes `config` to a file in `dir` and runs `ramsecrets init` on it.
pub fn init(dir: &Path, config: &str, extra: &[&str]) -> Output {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["init", "--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    ramsecrets(&args)
}

/// stdout and stderr together, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "output:\n{}", text(o));
}

/// A file holding `content`, mode 0600, in `dir`.
pub fn file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// A loopback server that accepts connections and never answers (a hung backend).
pub fn hanging_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && held.len() < 64 {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

/// Polls `check` every 100 ms until it holds or `limit` passes; panics with `what`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `ramsecrets run` or `exec` in the background, its logs in a file; killed on drop.
pub struct Running {
    pub child: Child,
    log: PathBuf,
}

impl Running {
    /// Starts `ramsecrets <args>` with its stderr captured.
    pub fn start(dir: &Path, args: &[&str]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ramsecrets"));
        cmd.args(args)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        Running::spawn(dir, cmd)
    }

    /// `ramsecrets run --config <cfg>`, once it has written every file and is ready.
    pub fn sidecar(dir: &Path, cfg: &Path) -> Running {
        let mut run = Running::start(dir, &["run", "--config", cfg.to_str().unwrap()]);
        run.wait_log("ready; keeping secrets fresh", Duration::from_secs(60));
        run
    }

    /// `ramsecrets exec --config <cfg> -- sh -c <script>`.
    pub fn exec(dir: &Path, cfg: &Path, script: &str) -> Running {
        let args = [
            "exec",
            "--config",
            cfg.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ];
        Running::start(dir, &args)
    }

    /// Starts `cmd` (a ramsecrets command line) with its output captured in `dir`.
    pub fn spawn(dir: &Path, mut cmd: Command) -> Running {
        let log = dir.join(format!("ramsecrets-{:x}.log", rand_u64()));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Running { child, log }
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the logs contain `text`.
    pub fn wait_log(&mut self, text: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.logs().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ramsecrets exited ({status}) before logging `{text}`:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < until,
                "`{text}` not logged within {limit:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` and waits for the exit code.
    pub fn stop(&mut self, sig: rustix::process::Signal) -> Option<i32> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "ramsecrets did not stop:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` and returns the body (for /metrics), or None when it does not answer.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    Some((r.status().as_u16(), r.text().unwrap_or_default()))
}

/// The value of a metric line starting with `prefix` (name and labels).
pub fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A PostgreSQL server from Debian's packages on a free loopback port, with
/// superuser `postgres` / password `pgroot` over TCP; stopped on drop.
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Postgres {
    fn as_owner(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// initdb + pg_ctl start.
    pub fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: run `bash scripts/testbed`")
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("no initdb under /usr/lib/postgresql: run `bash scripts/testbed`");
        let dir = scratch();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
        let pg = Postgres {
            port: free_port(),
            dir,
            bin,
        };
        let data = pg.dir.path().join("data");
        let pw = file(pg.dir.path(), "pw", "pgroot");
        std::fs::set_permissions(&pw, PermissionsExt::from_mode(0o644)).unwrap();
        let o = pg
            .as_owner("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = pg
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(pg.dir.path().join("pg.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                pg.port,
                pg.dir.path().display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(pg.dir.path().join("pg.log")).unwrap_or_default()
        );
        pg
    }

    /// Runs `sql` as the superuser over TCP; panics when it fails.
    pub fn sql(&self, sql: &str) {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", "pgroot")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Whether `user`/`password` can log in over TCP.
    pub fn can_login(&self, user: &str, password: &str) -> bool {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-w",
                "-tAc",
                "select 1",
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// An RSA key pair made with openssl, to sign JWTs for OpenBao's jwt auth.
pub struct JwtSigner {
    key: PathBuf,
    /// The public key, PEM, for `auth/jwt/config`'s `jwt_validation_pubkeys`.
    pub public_pem: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

impl JwtSigner {
    /// A new key pair in `dir`.
    pub fn new(dir: &Path) -> JwtSigner {
        let key = dir.join(format!("jwt-{:x}.key", rand_u64()));
        openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
        let public_pem =
            String::from_utf8(openssl(&["rsa", "-in", key.to_str().unwrap(), "-pubout"])).unwrap();
        JwtSigner { key, public_pem }
    }

    /// The private key file, PEM.
    pub fn key_file(&self) -> &Path {
        &self.key
    }

    /// An RS256 JWT of `claims`.
    pub fn sign(&self, claims: Value) -> String {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64(claims.to_string().as_bytes())
        );
        let path = self.key.with_extension("input");
        std::fs::write(&path, &input).unwrap();
        let sig = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            self.key.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        format!("{input}.{}", b64(&sig))
    }
}

/// Seconds since the Unix epoch, for JWT claims.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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
        self.api(
            "POST",
            "database/roles/app",
            json!({
                "db_name": "pg",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl
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

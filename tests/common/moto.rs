//! AWS test bed: a real `moto_server` (PyPI `moto[server]`, installed by
//! scripts/testbed) on a free loopback port, seeded over its HTTP API
//! (Secrets Manager, Parameter Store); the
//! recording proxy of [`super::recorder`] in front of it, which counts the
//! calls on the wire and can inject faults; and `ramsecrets` run with an
//! environment that only ever points at them. A server that cannot start
//! fails the test.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::{free_port, repo, scratch};

/// What every request is signed as: moto checks no signature, but routes
/// requests by the service named in the credential scope.
fn fake_auth(service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0")
}

/// `moto_server`, through tests/common/moto_server.py (which fixes what it
/// serves after UpdateSecretVersionStage) when it runs from the test bed's venv.
fn moto_command() -> Command {
    if let Some(path) = std::env::var_os("RAMSECRETS_MOTO") {
        return Command::new(path);
    }
    let python = repo().join(".venv/bin/python");
    assert!(
        repo().join(".venv/bin/moto_server").exists(),
        "moto_server is not installed in {}: run `bash scripts/testbed` (the README's test command does)",
        repo().join(".venv").display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/common/moto_server.py"));
    cmd
}

/// A running `moto_server`, stopped on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its port.
    pub port: u16,
    log: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let log = scratch();
        let out = std::fs::File::create(log.path().join("moto.log")).unwrap();
        let mut cmd = moto_command();
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("cannot start moto_server");
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        loop {
            if moto.try_call("ListSecrets", json!({})).is_ok() {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited with {status} before answering on {}; log:\n{}",
                    moto.url,
                    moto.log_text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on {} within 60s; log:\n{}",
                moto.url,
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path().join("moto.log")).unwrap_or_default()
    }

    fn try_call(&self, op: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
        self.try_service("secretsmanager", &format!("secretsmanager.{op}"), body)
    }

    /// One JSON 1.1 call of `target` to `service`.
    fn try_service(
        &self,
        service: &str,
        target: &str,
        body: Value,
    ) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .http
            .post(&self.url)
            .header("X-Amz-Target", target)
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("Authorization", fake_auth(service))
            .body(body.to_string())
            .send()?;
        let status = resp.status().as_u16();
        let text = resp.text()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Calls a Secrets Manager operation; panics on a non-2xx answer.
    pub fn sm(&self, op: &str, body: Value) -> Value {
        let (status, v) = self
            .try_call(op, body)
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!((200..300).contains(&status), "{op}: {status} {v}");
        v
    }

    /// Calls a Parameter Store operation; panics on a non-2xx answer.
    pub fn ssm(&self, op: &str, body: Value) -> Value {
        let (status, v) = self
            .try_service("ssm", &format!("AmazonSSM.{op}"), body)
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!((200..300).contains(&status), "{op}: {status} {v}");
        v
    }

    /// Puts a parameter of `kind` (`String`, `SecureString`), a new version
    /// when it exists; returns its version.
    pub fn put_parameter(&self, name: &str, value: &str, kind: &str) -> u64 {
        let body = json!({ "Name": name, "Value": value, "Type": kind, "Overwrite": true });
        self.ssm("PutParameter", body)["Version"].as_u64().unwrap()
    }

    /// Creates a secret with a string value; returns its VersionId.
    pub fn create(&self, name: &str, value: &str) -> String {
        let v = self.sm(
            "CreateSecret",
            json!({ "Name": name, "SecretString": value }),
        );
        v["VersionId"].as_str().unwrap().to_owned()
    }

    /// Creates a secret with a binary value; returns its VersionId.
    pub fn create_binary(&self, name: &str, bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let v = self.sm("CreateSecret", json!({ "Name": name, "SecretBinary": b64 }));
        v["VersionId"].as_str().unwrap().to_owned()
    }

    /// Writes a new version; `stages` empty means AWSCURRENT (the old one
    /// becomes AWSPREVIOUS). Returns its VersionId.
    pub fn put(&self, name: &str, value: &str, stages: &[&str]) -> String {
        let mut body = json!({ "SecretId": name, "SecretString": value });
        if !stages.is_empty() {
            body["VersionStages"] = json!(stages);
        }
        let v = self.sm("PutSecretValue", body);
        v["VersionId"].as_str().unwrap().to_owned()
    }

    /// The ARN of a secret.
    pub fn arn(&self, name: &str) -> String {
        self.sm("DescribeSecret", json!({ "SecretId": name }))["ARN"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An environment that only points at the test bed: static test keys,
/// us-east-1, empty config files, no IMDS, nothing of the host's AWS_*.
pub struct AwsEnv {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl AwsEnv {
    /// Static keys `testing`/`testing` in us-east-1.
    pub fn keys() -> AwsEnv {
        let mut env = AwsEnv::bare();
        env.set("AWS_ACCESS_KEY_ID", "testing");
        env.set("AWS_SECRET_ACCESS_KEY", "testing");
        env
    }

    /// No credentials at all (a test adds what it needs), us-east-1.
    pub fn bare() -> AwsEnv {
        let dir = scratch();
        let config = dir.path().join("config");
        let credentials = dir.path().join("credentials");
        std::fs::write(&config, "").unwrap();
        std::fs::write(&credentials, "").unwrap();
        let mut env = AwsEnv {
            dir,
            vars: Vec::new(),
        };
        env.set("AWS_REGION", "us-east-1");
        env.set("AWS_CONFIG_FILE", config.to_str().unwrap());
        env.set("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap());
        env.set("AWS_EC2_METADATA_DISABLED", "true");
        env
    }

    /// Sets (or replaces) one variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }

    /// A scratch directory that lives as long as this environment.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ramsecrets init` on `config` (written to `work`) with this environment.
    pub fn init(&self, work: &Path, config: &str, extra: &[&str]) -> Output {
        let path = work.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let mut args = vec!["init", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.command(&args).stdin(Stdio::null()).output().unwrap()
    }

    /// `ramsecrets ARGS` with this environment and nothing else of AWS from the host's.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ramsecrets"));
        cmd.args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            let proxy = k.to_ascii_lowercase().ends_with("_proxy");
            if k.starts_with("AWS_")
                || k.starts_with("VAULT_")
                || k == "LOG_SENSITIVE_BODIES"
                || proxy
            {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

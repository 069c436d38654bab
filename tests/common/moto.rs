//! AWS test bed: a real `moto_server` (PyPI `moto[server]`, installed by
//! scripts/testbed) on a free loopback port, seeded over its HTTP API; a
//! recording proxy in front of it that counts the calls on the wire and can
//! inject faults; and `ramsecrets` run with an environment that only ever
//! points at them. A server that cannot start fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::{free_port, repo, scratch};

/// What every request is signed as: moto checks no signature, but routes
/// requests by the service named in the credential scope.
const FAKE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0";

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
        let resp = self
            .http
            .post(&self.url)
            .header("X-Amz-Target", format!("secretsmanager.{op}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("Authorization", FAKE_AUTH)
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

/// A fault the recording proxy answers with instead of forwarding.
struct Fault {
    op: String,
    status: u16,
    code: String,
    left: usize,
}

/// A recording HTTP proxy in front of moto: records the operation of every
/// request (the `X-Amz-Target` suffix, or the `Action` of a query request
/// such as STS) and forwards it, unless a fault is set for that operation.
pub struct Recorder {
    /// Its port.
    pub port: u16,
    calls: Arc<Mutex<Vec<String>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl Recorder {
    /// Starts the proxy in front of `upstream` (a loopback port).
    pub fn start(upstream: u16) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let (c, f) = (calls.clone(), faults.clone());
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(stream) = stream else { continue };
                let (c, f) = (c.clone(), f.clone());
                std::thread::spawn(move || {
                    let _ = forward(stream, upstream, &c, &f);
                });
            }
        });
        Recorder {
            port,
            calls,
            faults,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every operation seen, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many calls of `op` were seen.
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| *c == op).count()
    }

    /// Forgets the calls seen so far.
    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Answers the next `times` calls of `op` with `status` and error `code`.
    pub fn fail(&self, op: &str, status: u16, code: &str, times: usize) {
        self.faults.lock().unwrap().push(Fault {
            op: op.to_owned(),
            status,
            code: code.to_owned(),
            left: times,
        });
    }
}

/// Serves one request of one connection (answers close the connection).
fn forward(
    client: TcpStream,
    upstream: u16,
    calls: &Mutex<Vec<String>>,
    faults: &Mutex<Vec<Fault>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut len = 0usize;
    let mut target = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("x-amz-target:") {
            target = line.split_once(':').map(|(_, v)| v.trim().to_owned());
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let op = match target {
        Some(t) => t.rsplit('.').next().unwrap_or_default().to_owned(),
        None => String::from_utf8_lossy(&body)
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("?")
            .to_owned(),
    };
    calls.lock().unwrap().push(op.clone());
    let mut client = client;
    let fault = {
        let mut faults = faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|f| f.op == op && f.left > 0)
            .map(|f| {
                f.left -= 1;
                (f.status, f.code.clone())
            })
    };
    if let Some((status, code)) = fault {
        let answer =
            json!({ "__type": code, "message": format!("{code} injected by the test proxy") })
                .to_string();
        return write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(head.as_bytes())?;
    up.write_all(b"Connection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    client.write_all(&answer)
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

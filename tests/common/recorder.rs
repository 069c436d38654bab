//! A recording HTTP proxy for a server on loopback (moto, OpenBao): it
//! records every request that crosses it (operation, path, client token,
//! body, answer status, arrival time) and forwards it, unless a fault is set for
//! that operation. Each answer closes its connection, so clients reconnect
//! for every request; nothing is pipelined.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// The `X-Amz-Target` suffix, the `Action` of a query request (STS), or else the path.
    pub op: String,
    /// The request path, e.g. `/v1/secret/data/app`.
    pub path: String,
    /// The `X-Vault-Token` it carried (empty without one): tells sidecars apart.
    pub client: String,
    /// The request body (test data only: no secret goes through a test proxy
    /// that matters).
    pub body: Vec<u8>,
    /// The answer's status (0 when none came back).
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// A fault the recording proxy answers with instead of forwarding.
struct Fault {
    op: String,
    /// Only for requests whose body holds this.
    body: Option<String>,
    status: u16,
    code: String,
    left: usize,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    faults: Mutex<Vec<Fault>>,
}

/// The recording proxy (see the module docs).
pub struct Recorder {
    /// Its port.
    pub port: u16,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts the proxy in front of `upstream` (a loopback port).
    pub fn start(upstream: u16) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = forward(stream, upstream, &s);
                });
            }
        });
        Recorder { port, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request seen, in order of arrival.
    pub fn records(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Every operation seen, in order.
    pub fn calls(&self) -> Vec<String> {
        self.records().into_iter().map(|c| c.op).collect()
    }

    /// How many calls of `op` were seen.
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| *c == op).count()
    }

    /// Forgets the calls seen so far.
    pub fn reset(&self) {
        self.shared.calls.lock().unwrap().clear();
    }

    /// Answers the next `times` calls of `op` with `status` and error `code`.
    pub fn fail(&self, op: &str, status: u16, code: &str, times: usize) {
        self.push(op, None, status, code, times);
    }

    /// As [`Recorder::fail`], for calls of `op` whose body holds `body`
    /// (e.g. the UpdateSecretVersionStage that moves AWSCURRENT).
    pub fn fail_when(&self, op: &str, body: &str, status: u16, code: &str, times: usize) {
        self.push(op, Some(body), status, code, times);
    }

    fn push(&self, op: &str, body: Option<&str>, status: u16, code: &str, times: usize) {
        self.shared.faults.lock().unwrap().push(Fault {
            op: op.to_owned(),
            body: body.map(str::to_owned),
            status,
            code: code.to_owned(),
            left: times,
        });
    }
}

/// Serves one request of one connection (answers close the connection).
fn forward(client: TcpStream, upstream: u16, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut len = 0usize;
    let mut target = None;
    let mut token = String::new();
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        if request_line.is_empty() {
            request_line = line.clone();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("x-amz-target:") {
            target = line.split_once(':').map(|(_, v)| v.trim().to_owned());
        }
        if lower.starts_with("x-vault-token:") {
            token = line
                .split_once(':')
                .map_or("", |(_, v)| v.trim())
                .to_owned();
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    let at = Instant::now();
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let action = String::from_utf8_lossy(&body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_owned);
    let op = match (target, action) {
        (Some(t), _) => t.rsplit('.').next().unwrap_or_default().to_owned(),
        (None, Some(a)) => a,
        (None, None) => path.clone(),
    };
    let index = {
        let mut calls = shared.calls.lock().unwrap();
        calls.push(Call {
            op: op.clone(),
            path,
            client: token,
            body: body.clone(),
            status: 0,
            at,
        });
        calls.len() - 1
    };
    let record = |status: u16| {
        if let Some(c) = shared.calls.lock().unwrap().get_mut(index) {
            c.status = status;
        }
    };
    let mut client = client;
    let fault = {
        let mut faults = shared.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|f| {
                f.op == op
                    && f.left > 0
                    && f.body
                        .as_ref()
                        .is_none_or(|b| String::from_utf8_lossy(&body).contains(b.as_str()))
            })
            .map(|f| {
                f.left -= 1;
                (f.status, f.code.clone())
            })
    };
    if let Some((status, code)) = fault {
        record(status);
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
    let status = std::str::from_utf8(&answer[..answer.len().min(32)])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    record(status);
    client.write_all(&answer)
}

//! Test bed for the Vault logins `cert` and `aws`: a certificate authority
//! made with openssl, an IAM user in moto (with signatures checked), and a
//! stand-in for Vault's `aws` auth method.
//!
//! OpenBao 2.7 ships no `aws` auth method (its catalog has no `aws` plugin,
//! and the external openbao-plugins module is not served by the registries
//! this test bed installs from), so [`AwsAuth`] does the server's half of the
//! IAM login the way the plugin's `path_login.go` does: it checks the login
//! body, sends the signed sts:GetCallerIdentity to its STS endpoint (moto,
//! which verifies the SigV4 signature once [`iam_user`] turned its checks
//! on) with the Host the client signed, and compares the caller's ARN with
//! the role's bound principal. A login that passes gets a real OpenBao token;
//! every other request is passed to OpenBao unchanged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Value};

use super::{openssl, rand_u64, Bao};

/// A certificate authority made with openssl in a directory.
pub struct Ca {
    dir: PathBuf,
    key: PathBuf,
    /// The CA certificate, PEM.
    pub cert: PathBuf,
}

impl Ca {
    /// A new self-signed CA named `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = dir.join(format!("{name}-ca.key"));
        let cert = dir.join(format!("{name}-ca.pem"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        Ca {
            dir: dir.to_owned(),
            key,
            cert,
        }
    }

    /// A client certificate for `cn` signed by this CA: (certificate, key) files.
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.join(format!("{cn}-{:x}", rand_u64()));
        let (key, csr, cert, ext) = (
            base.with_extension("key"),
            base.with_extension("csr"),
            base.with_extension("pem"),
            base.with_extension("ext"),
        );
        std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    }
}

/// What moto's IAM calls are signed as before its checks are on.
const FAKE_IAM_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";

/// The text of the first `<tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// Creates IAM user `name` with an access key in moto at `url`, then turns on
/// moto's request signature checks; returns (ARN, access key id, secret key).
pub fn iam_user(url: &str, name: &str) -> (String, String, String) {
    let http = reqwest::blocking::Client::new();
    let iam = |body: String| {
        let r = http
            .post(url)
            .header("Authorization", FAKE_IAM_AUTH)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        let text = r.text().unwrap();
        assert!(status.is_success(), "IAM: {status} {text}");
        text
    };
    let user = iam(format!(
        "Action=CreateUser&UserName={name}&Version=2010-05-08"
    ));
    let key = iam(format!(
        "Action=CreateAccessKey&UserName={name}&Version=2010-05-08"
    ));
    let r = http
        .post(format!("{url}/moto-api/reset-auth"))
        .body("0")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "reset-auth: {}", r.status());
    (
        xml_text(&user, "Arn").unwrap().to_owned(),
        xml_text(&key, "AccessKeyId").unwrap().to_owned(),
        xml_text(&key, "SecretAccessKey").unwrap().to_owned(),
    )
}

/// The stand-in for Vault's `aws` auth method at `auth/aws`, in front of an OpenBao.
pub struct AwsAuth {
    /// `http://127.0.0.1:PORT`: the address ramsecrets is given.
    pub addr: String,
}

#[derive(Clone)]
struct Upstreams {
    bao: String,
    root: String,
    sts: String,
    /// Role name → bound IAM principal ARN.
    roles: HashMap<String, String>,
    policy: String,
    /// The `X-Vault-AWS-IAM-Server-ID` a login must have signed, when set.
    server_id: Option<String>,
}

impl AwsAuth {
    /// Serves logins for `roles` (name, bound ARN) against the STS endpoint
    /// `sts`, minting tokens with `policy` in `bao`; with `server_id`, a login
    /// must carry that signed `X-Vault-AWS-IAM-Server-ID`.
    pub fn start(
        bao: &Bao,
        sts: &str,
        roles: &[(&str, &str)],
        policy: &str,
        server_id: Option<&str>,
    ) -> AwsAuth {
        let up = Upstreams {
            bao: bao.addr.clone(),
            root: bao.token.clone(),
            sts: sts.trim_end_matches('/').to_owned(),
            roles: roles
                .iter()
                .map(|(r, a)| (r.to_string(), a.to_string()))
                .collect(),
            policy: policy.to_owned(),
            server_id: server_id.map(str::to_owned),
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(s) = stream else { continue };
                let up = up.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, &up);
                });
            }
        });
        AwsAuth { addr }
    }
}

/// Answers one request (the connection is closed after it).
fn serve(mut s: TcpStream, up: &Upstreams) -> std::io::Result<()> {
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let (status, answer) = if method == "POST" && path == "/v1/auth/aws/login" {
        match login(&body, up) {
            Ok(auth) => (200, auth.to_string()),
            Err(e) => (400, json!({ "errors": [e] }).to_string()),
        }
    } else {
        forward(&method, &path, &headers, body, up)
    };
    write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )
}

/// Passes a request to OpenBao.
fn forward(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    up: &Upstreams,
) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", up.bao))
        .body(body);
    for (k, v) in headers {
        if k.starts_with("x-vault-") || k == "content-type" {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    match req.send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (502, json!({ "errors": [e.to_string()] }).to_string()),
    }
}

/// The checks of the aws plugin's IAM login; a token on success.
fn login(body: &[u8], up: &Upstreams) -> Result<Value, String> {
    let b64 = |v: &Value, key: &str| -> Result<String, String> {
        let text = v[key].as_str().ok_or(format!("missing {key}"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("failed to base64 decode {key}"))?;
        String::from_utf8(bytes).map_err(|_| format!("{key} is not text"))
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if v["iam_http_request_method"] != "POST" {
        return Err("invalid iam_http_request_method; currently only 'POST' is supported".into());
    }
    let url = reqwest::Url::parse(&b64(&v, "iam_request_url")?).map_err(|e| e.to_string())?;
    if url.query().is_some() {
        return Err("invalid request".into());
    }
    let request_body = b64(&v, "iam_request_body")?;
    let mut form: Vec<(String, String)> = form_urlencoded::parse(request_body.as_bytes())
        .into_owned()
        .collect();
    form.sort();
    let expected = [
        ("Action".to_owned(), "GetCallerIdentity".to_owned()),
        ("Version".to_owned(), "2011-06-15".to_owned()),
    ];
    if form != expected {
        return Err("iam request body is invalid".into());
    }
    let headers: HashMap<String, Vec<String>> =
        serde_json::from_str(&b64(&v, "iam_request_headers")?).map_err(|e| e.to_string())?;
    if let Some(id) = &up.server_id {
        let first = |name: &str| headers.get(name).and_then(|v| v.first()).cloned();
        let signed = first("Authorization")
            .is_some_and(|a| a.to_ascii_lowercase().contains("x-vault-aws-iam-server-id"));
        if first("X-Vault-Aws-Iam-Server-Id").as_ref() != Some(id) || !signed {
            return Err("error validating X-Vault-AWS-IAM-Server-ID header".into());
        }
    }
    // The request as the client signed it, sent to the configured endpoint.
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{}{}", up.sts, url.path()))
        .header("Host", url.host_str().unwrap_or_default())
        .body(request_body);
    for (k, values) in &headers {
        for value in values {
            req = req.header(k.as_str(), value.as_str());
        }
    }
    let r = req.send().map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    if status != 200 {
        return Err(format!(
            "error making upstream request: received error code {status} from STS: {text}"
        ));
    }
    let arn = xml_text(&text, "Arn").ok_or("body of GetCallerIdentity is invalid")?;
    let role = v["role"].as_str().unwrap_or_default();
    let bound = up
        .roles
        .get(role)
        .ok_or(format!("entry for role {role:?} not found"))?;
    if arn != bound {
        return Err(format!(
            "IAM Principal {arn:?} does not belong to the role {role:?}"
        ));
    }
    let created: Value = reqwest::blocking::Client::new()
        .post(format!("{}/v1/auth/token/create", up.bao))
        .header("X-Vault-Token", &up.root)
        .json(&json!({ "policies": [up.policy], "ttl": "1h" }))
        .send()
        .and_then(|r| r.json())
        .map_err(|e| e.to_string())?;
    Ok(json!({ "auth": created["auth"] }))
}

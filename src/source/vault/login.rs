//! Logging in: the dispatch over every auth method (token file, AppRole,
//! Kubernetes, JWT, `aws` and `cert`, each a raw post whose answer is capped
//! at `max_answer_bytes` like every other), and the credential files they read.
//!
//! Two logins are more than a role and a file. `aws` (IAM)
//! signs an sts:GetCallerIdentity request with the AWS SDK's default
//! credential chain (aws-sigv4, as the SDK itself signs) and hands Vault the
//! signed request, which Vault sends to STS to learn who is calling: the way
//! EKS workloads (IRSA, Pod Identity) and instances log in. `cert` presents a
//! TLS client certificate, read from its files at each login.
//!
//! The AWS credentials stay in the SDK's types and the signed headers (with a
//! session token) in the login body, neither zeroized; the client key goes
//! from a zeroizing buffer into rustls, which keeps its own copy for the life
//! of the one login client.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;

use super::client::http_client;
use super::token::{ttl, Grant};
use super::VaultSource;
use super::{Auth, AwsLogin, CertLogin};
use crate::secret::SecretBytes;
use crate::source::{Cause, Error, Kind, Result};

/// The one request Vault accepts: GetCallerIdentity, form-encoded.
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The header that binds a signed request to one Vault server.
const SERVER_ID: &str = "X-Vault-AWS-IAM-Server-ID";

/// The credential chain of an `aws` login, built at the first login; the
/// SDK refreshes what it caches (web identity, container, IMDS credentials).
pub(super) type AwsCredentials = tokio::sync::OnceCell<SharedCredentialsProvider>;

impl VaultSource {
    /// Logs in with the configured method (a token file is looked up).
    pub(super) async fn login(&self) -> Result<Grant> {
        match &self.auth {
            Auth::TokenFile(path) => {
                let token = read_credential(path, "token_file")
                    .map_err(|e| Error::config(format!("{e}: {}", self.relogin())))?;
                self.lookup_once(&token).await.map_err(|e| match e {
                    Error::Denied { .. } => Error::denied(format!(
                        "the token in {} was refused ({}): {}",
                        path.display(),
                        e.detail(),
                        self.relogin()
                    )),
                    other => other,
                })
            }
            Auth::AppRole {
                mount,
                role_id_file,
                secret_id_file,
            } => {
                let role_id = read_credential(role_id_file, "role_id_file")?;
                let secret_id = read_credential(secret_id_file, "secret_id_file")?;
                let body = body(&[("role_id", &role_id), ("secret_id", &secret_id)]);
                self.login_raw("approle", &self.http, mount, body).await
            }
            Auth::Kubernetes(l) => {
                let jwt = read_credential(&l.token_file, "token_file")?;
                let role = SecretBytes::copy_from(&l.role);
                let body = body(&[("role", &role), ("jwt", &jwt)]);
                self.login_raw("kubernetes", &self.http, &l.mount, body)
                    .await
            }
            Auth::Aws(l) => {
                let body = aws_body(&self.name, l, &self.aws_credentials).await?;
                let body = SecretBytes::new(body.to_string().into_bytes());
                self.login_raw("aws", &self.http, &l.mount, body).await
            }
            Auth::Cert(l) => {
                let identity = cert_identity(l)?;
                let client = http_client(&self.name, &self.settings, Some(identity))?;
                let body = serde_json::json!({ "name": l.name });
                let body = SecretBytes::new(body.to_string().into_bytes());
                self.login_raw("cert", &client, &l.mount, body).await
            }
            Auth::Jwt(l) => {
                let jwt = read_credential(&l.token_file, "token_file")?;
                let role = SecretBytes::copy_from(&l.role);
                let body = body(&[("role", &role), ("jwt", &jwt)]);
                self.login_raw("jwt", &self.http, &l.mount, body).await
            }
        }
    }

    /// POSTs a login to `auth/{mount}/login` on `http` (no token); a
    /// rejected login is denied.
    async fn login_raw(
        &self,
        method: &str,
        http: &reqwest::Client,
        mount: &str,
        body: SecretBytes,
    ) -> Result<Grant> {
        let what = format!("{method} login");
        let path = format!("auth/{mount}/login");
        let none = SecretBytes::default();
        let answer = self
            .call_on(
                http,
                &none,
                reqwest::Method::POST,
                &path,
                Some(&body),
                &what,
            )
            .await
            .map_err(rejected)?;
        let auth = answer
            .get("auth")
            .filter(|a| !a.is_null())
            .ok_or_else(|| Error::data(format!("{what}: the answer has no `auth`")))?;
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::data(format!("{what}: the answer has no token")))?;
        let lease = auth["lease_duration"].as_u64().unwrap_or(0);
        tracing::info!(source = %self.name, method, policies = ?auth["policies"], ttl = lease, "logged in");
        Ok(Grant {
            token: SecretBytes::copy_from(token),
            ttl: ttl(lease),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        })
    }
}

/// A login's JSON body of text fields, built in a zeroizing buffer.
fn body(fields: &[(&str, &SecretBytes)]) -> SecretBytes {
    let map: BTreeMap<&str, &str> = fields
        .iter()
        .map(|(k, v)| (*k, v.expose_str().unwrap_or_default()))
        .collect();
    let mut out = SecretBytes::default();
    // Writing strings into memory does not fail.
    let _ = serde_json::to_writer(&mut out, &map);
    out
}

/// A login's error: a rejected login is a 400 in Vault (bad role, bad secret
/// id, bad JWT, bad signature, bad certificate), so bad data is denied.
fn rejected(e: Error) -> Error {
    match e.kind() {
        Kind::Data => e.into_kind(Kind::Denied),
        _ => e,
    }
}

/// Reads a credential file (token, role id, JWT): trimmed, non-empty, and
/// printable ASCII, since it goes into an HTTP header or a JSON body.
fn read_credential(path: &Path, key: &str) -> Result<SecretBytes> {
    let raw = std::fs::read(path)
        .map(SecretBytes::new)
        .map_err(|e| Error::config(format!("{key} {}", path.display())).because(e))?;
    let text = raw.expose_str().unwrap_or("\u{0}").trim();
    if text.is_empty() {
        return Err(Error::config(format!("{key} {} is empty", path.display())));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::config(format!(
            "{key} {} holds characters that cannot be a credential",
            path.display()
        )));
    }
    Ok(SecretBytes::copy_from(text))
}

/// The body of an `aws` login: a freshly signed GetCallerIdentity.
async fn aws_body(
    source: &str,
    login: &AwsLogin,
    chain: &AwsCredentials,
) -> Result<serde_json::Value> {
    let what = format!("source {source}: aws login");
    let provider = chain
        .get_or_try_init(|| async {
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(crate::tls::aws_http_client())
                .region(Region::new(login.region.clone()))
                .load()
                .await
                .credentials_provider()
                .ok_or_else(|| Error::config(format!("{what}: no AWS credential chain")))
        })
        .await?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| crate::source::aws::credentials(&e, &what).because(Cause::call(e)))?;
    let url = login.sts_url();
    let host = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let mut unsigned = vec![("Content-Type", CONTENT_TYPE)];
    if let Some(v) = &login.header_value {
        unsigned.push((SERVER_ID, v.as_str()));
    }
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&login.region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::config(format!("{what}: cannot sign")).because(Cause::call(e)))?
        .into();
    let signed_headers = unsigned.iter().copied().chain([("Host", host.as_str())]);
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        signed_headers,
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .and_then(|r| sign(r, &params))
    .map_err(|e| Error::config(format!("{what}: cannot sign")).because(Cause::call(e)))?;
    let (instructions, _) = request.into_parts();
    // As Go's http.Header, which Vault decodes: canonical names, lists of values.
    let mut headers: BTreeMap<String, Vec<String>> = unsigned
        .iter()
        .map(|(k, v)| (canonical(k), vec![(*v).to_owned()]))
        .collect();
    for (k, v) in instructions.headers() {
        headers.entry(canonical(k)).or_default().push(v.to_owned());
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let headers = serde_json::to_vec(&headers)
        .map_err(|_| Error::config(format!("{what}: cannot encode headers")))?;
    Ok(serde_json::json!({
        "role": login.role,
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url.as_bytes()),
        "iam_request_body": b64(BODY.as_bytes()),
        "iam_request_headers": b64(&headers),
    }))
}

/// `x-amz-date` → `X-Amz-Date`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The client certificate and key of a `cert` login, read now.
fn cert_identity(login: &CertLogin) -> Result<reqwest::Identity> {
    let read = |path: &Path, key: &str| {
        std::fs::read(path)
            .map(SecretBytes::new)
            .map_err(|e| Error::config(format!("{key} {}", path.display())).because(e))
    };
    let mut pem = read(&login.client_key, "client_key")?;
    pem.extend_from_slice(b"\n");
    pem.extend_from_slice(read(&login.client_cert, "client_cert")?.expose());
    reqwest::Identity::from_pem(pem.expose()).map_err(|_| {
        Error::config(format!(
            "client_cert {} and client_key {}: not a PEM certificate and its private key",
            login.client_cert.display(),
            login.client_key.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_ttl_near_u64_max_is_ten_years_not_an_abort() {
        let span = ttl(u64::MAX).unwrap();
        assert_eq!(span, crate::clock::MAX_SPAN);
        assert!(std::time::Instant::now().checked_add(span).is_some());
        assert_eq!(ttl(0), None);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("x-amz-date"), "X-Amz-Date");
        assert_eq!(canonical("authorization"), "Authorization");
        assert_eq!(
            canonical("X-Vault-AWS-IAM-Server-ID"),
            "X-Vault-Aws-Iam-Server-Id"
        );
    }

    #[test]
    fn a_bad_key_file_is_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "hunter2").unwrap();
        let login = CertLogin {
            mount: "cert".into(),
            name: None,
            client_cert: cert,
            client_key: key.clone(),
        };
        let e = cert_identity(&login).unwrap_err().to_string();
        assert!(e.contains("k.pem") && !e.contains("hunter2"), "{e}");
        std::fs::remove_file(&key).unwrap();
        let e = cert_identity(&login).unwrap_err().to_string();
        assert!(e.starts_with("client_key "), "{e}");
    }

    #[test]
    fn credentials_are_checked_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "  s.abc123\n").unwrap();
        assert_eq!(
            read_credential(&p, "token_file").unwrap().expose(),
            b"s.abc123"
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(read_credential(&p, "token_file")
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        std::fs::write(&p, "abc\ndef").unwrap();
        let e = read_credential(&p, "token_file").unwrap_err().to_string();
        assert!(!e.contains("abc"), "{e}");
        let e = read_credential(&dir.path().join("nope"), "token_file").unwrap_err();
        assert!(e.to_string().contains("token_file"), "{e}");
    }
}

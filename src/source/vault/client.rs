//! Talking to the server: the HTTP client (timeouts, CA bundle, client
//! certificate), the raw `/v1/…` call that keeps the status and
//! `Retry-After` of a refusal, every answer capped at the source's
//! `max_answer_bytes` (logins included), and the vaultrs client that holds a
//! session's token.

use std::path::Path;
use std::sync::Arc;

use tokio::time::Instant;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use super::VaultSource;
use crate::backoff;
use crate::config::Vault;
use crate::secret::SecretBytes;
use crate::source::{paced, Cause, Error, Result};

impl VaultSource {
    /// A vaultrs client over our HTTP client, with `token` (may be empty to log in).
    pub(super) fn vaultrs(&self, token: &str) -> Result<VaultClient> {
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(self.address.as_str())
            .token(token)
            .ca_certs(Vec::new())
            .identity(None)
            .verify(true)
            .namespace(self.namespace.clone());
        let settings = settings
            .build()
            .map_err(|e| Error::config(format!("source {}", self.name)).because(Cause::call(e)))?;
        Ok(VaultClient {
            middle: EndpointMiddleware {
                token: token.to_owned(),
                version: "v1".into(),
                wrap: None,
                namespace: self.namespace.clone(),
            },
            http: rustify::clients::reqwest::Client::new(
                self.address.as_str().trim_end_matches('/'),
                self.http.clone(),
            ),
            settings,
        })
    }

    /// GET `/v1/{path}` through the gate, retrying until `deadline`.
    pub(super) async fn read(
        &self,
        c: &VaultClient,
        path: &str,
        what: &str,
        deadline: Instant,
    ) -> Result<serde_json::Value> {
        paced(&self.gate, deadline, what, || self.get(c, path, what)).await
    }

    /// GET `/v1/{path}` with the client's token.
    pub(super) async fn get(
        &self,
        c: &VaultClient,
        path: &str,
        what: &str,
    ) -> Result<serde_json::Value> {
        let token = SecretBytes::copy_from(&c.middle.token);
        self.call(&token, reqwest::Method::GET, path, None, what)
            .await
    }

    /// Calls `/v1/{path}` with `token` and the namespace; the answer as JSON.
    pub(super) async fn call(
        &self,
        token: &SecretBytes,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<serde_json::Value> {
        let body = body.map(|b| SecretBytes::new(b.to_string().into_bytes()));
        self.call_on(&self.http, token, method, path, body.as_ref(), what)
            .await
    }

    /// [`Self::call`] without a body, with the answer also as its bytes.
    pub(super) async fn call_raw(
        &self,
        token: &SecretBytes,
        method: reqwest::Method,
        path: &str,
        what: &str,
    ) -> Result<(serde_json::Value, SecretBytes)> {
        self.call_with(&self.http, token, method, path, None, what)
            .await
    }

    /// [`Self::call`] on the client `http`, with a JSON body already
    /// serialized (it may hold secrets); an empty `token` is not sent.
    pub(super) async fn call_on(
        &self,
        http: &reqwest::Client,
        token: &SecretBytes,
        method: reqwest::Method,
        path: &str,
        body: Option<&SecretBytes>,
        what: &str,
    ) -> Result<serde_json::Value> {
        let (json, _) = self
            .call_with(http, token, method, path, body, what)
            .await?;
        Ok(json)
    }

    /// [`Self::call_on`], with the answer also as its bytes.
    async fn call_with(
        &self,
        http: &reqwest::Client,
        token: &SecretBytes,
        method: reqwest::Method,
        path: &str,
        body: Option<&SecretBytes>,
        what: &str,
    ) -> Result<(serde_json::Value, SecretBytes)> {
        let url = format!("{}/v1/{path}", self.address.as_str().trim_end_matches('/'));
        let mut req = http.request(method, url).header("X-Vault-Request", "true");
        if !token.is_empty() {
            req = req.header(
                "X-Vault-Token",
                reqwest::header::HeaderValue::from_bytes(token.expose())
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| Error::data(format!("{what}: token is not a header value")))?,
            );
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.expose().to_vec());
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns.as_str());
        }
        let unreachable = |e| Error::unavailable(what).because(Cause::call(e));
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| backoff::parse_retry_after(v, std::time::SystemTime::now()));
        let mut body = body_within(resp, what, self.settings.max_answer_bytes).await?;
        let json = answer(status, &body, what, retry_after)?;
        Ok((json, SecretBytes::new(std::mem::take(&mut *body))))
    }

    /// An authenticated API call outside the secret reads (the rotation
    /// drill's writes): logs in when needed, retries what is retryable until
    /// `deadline`, and logs in again once when denied. `body` is JSON.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&SecretBytes>,
        deadline: Instant,
    ) -> Result<serde_json::Value> {
        let what = format!("{method} {path}");
        let attempt = |c: Arc<VaultClient>| {
            let (what, method) = (&what, &method);
            async move {
                let token = SecretBytes::copy_from(&c.middle.token);
                paced(&self.gate, deadline, what, || {
                    self.call_on(&self.http, &token, method.clone(), path, body, what)
                })
                .await
            }
        };
        let c = self.client(deadline).await?;
        match attempt(c.clone()).await {
            Err(Error::Denied { .. }) => {
                self.denied(&c).await;
                attempt(self.client(deadline).await?).await
            }
            other => other,
        }
    }
}

/// An answer of `status` with `body` as JSON, or the error it says: a refusal
/// keeps Vault's `errors` and `retry_after`; a success that is not JSON is
/// refused without the parser's message, which may quote the answer.
pub(crate) fn answer(
    status: u16,
    body: &[u8],
    what: &str,
    retry_after: Option<std::time::Duration>,
) -> Result<serde_json::Value> {
    if (200..300).contains(&status) && body.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|_| Error::data(format!("{what}: answer is not JSON")));
    }
    let errors = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default();
    Err(Error::from_status(status, errors, what, retry_after))
}

/// The HTTP client of a Vault source (timeouts, CA bundle, or no
/// verification at all with `tls_skip_verify`), with a client certificate
/// for a `cert` login.
pub(super) fn http_client(
    name: &str,
    cfg: &Vault,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        .tls_backend_rustls();
    if cfg.address.scheme() == "http" {
        // As vaultrs does: without this, reqwest's platform verifier fails to build.
        builder = builder.tls_certs_only(Vec::new());
    } else if cfg.tls_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(ca) = &cfg.ca_cert {
        builder = builder.tls_certs_merge(load_ca(name, ca)?);
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| {
        Error::config(format!("source {name}: cannot build HTTP client")).because(Cause::call(e))
    })
}

fn load_ca(name: &str, path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let bad = |cause: Cause| {
        Error::config(format!("source {name}: ca_cert {}", path.display())).because(cause)
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.into()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(Cause::call(e)))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "source {name}: ca_cert {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The body of `resp`, refused once it is over `max` bytes (the source's
/// `max_answer_bytes`: by its `Content-Length`, or counted as it streams in),
/// before it fills the memory of a sidecar (64 MiB injected).
async fn body_within(
    mut resp: reqwest::Response,
    what: &str,
    max: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let too_big = || crate::source::too_big(what, max);
    let length = resp.content_length().unwrap_or(0);
    if length > max as u64 {
        return Err(too_big());
    }
    // Sized once up front, so growing leaves no unzeroed copies behind in the usual case.
    let mut body = zeroize::Zeroizing::new(Vec::with_capacity(length as usize));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::unavailable(what).because(Cause::call(e)))?
    {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::big_answer;

    #[tokio::test]
    async fn answers_over_four_mebibytes_are_refused_naming_the_secret() {
        let size = 6 << 20;
        let sized = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
        // No length: the cap is counted as the answer streams in.
        let streamed = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned();
        for head in [sized, streamed] {
            let port = big_answer(&head, size);
            let resp = reqwest::get(format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap();
            let e = body_within(resp, "secret `db`", 4 << 20).await.unwrap_err();
            assert!(
                e.to_string().contains(
                    "secret `db`: the answer is larger than max_answer_bytes (4194304 bytes)"
                ),
                "{e}"
            );
        }
        let port = big_answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 5);
        let resp = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap();
        assert_eq!(
            body_within(resp, "x", 5).await.unwrap().as_slice(),
            b"xxxxx"
        );
    }

    #[tokio::test]
    async fn a_login_answer_over_max_answer_bytes_is_refused_naming_the_login() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("role"), "r").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        // A Content-Length over the cap, and no length at all.
        let heads = [
            "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        ];
        for head in heads {
            let port = big_answer(head, 64 << 10);
            let yaml = format!(
                "sources:\n  - vault:\n      address: http://127.0.0.1:{port}\n      max_answer_bytes: 1024\n      auth: {{ approle: {{ role_id_file: role, secret_id_file: secret }} }}\noutput: {{ dir: /x }}\nsecrets:\n  - name: a\n    kv: {{ mount: secret, path: a }}\n"
            );
            let config = crate::config::Config::parse(&yaml, dir.path()).unwrap();
            let crate::config::SourceKind::Vault(v) = &config.sources[0].kind else {
                panic!("a vault source")
            };
            assert_eq!(v.max_answer_bytes, 1024);
            let Err(e) = VaultSource::new("vault", v).unwrap().login().await else {
                panic!("the login's answer was taken")
            };
            assert!(
                e.to_string().contains(
                    "approle login: the answer is larger than max_answer_bytes (1024 bytes)"
                ),
                "{e}"
            );
        }
    }
}

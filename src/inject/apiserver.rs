//! The two calls the injector makes to the Kubernetes API server: `/version`
//! (native sidecars need 1.29) and, with `tls.auto`, a JSON patch of its own
//! MutatingWebhookConfiguration's `caBundle`. In a pod it finds the server as
//! every client does (`KUBERNETES_SERVICE_HOST`, the service account's CA and
//! token); `inject.kubernetes` overrides each. The token is read afresh for
//! each call (projected tokens rotate) and never logged.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::config::inject::{parse_version, Kubernetes};
use crate::config::SERVICE_ACCOUNT_TOKEN;
use crate::exit::{Exit, ExitCode};
use crate::secret::SecretBytes;

const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// What went wrong with the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Where the server is, or how to trust it, is not known.
    #[error("kubernetes API: {0}")]
    Config(String),
    /// It did not answer.
    #[error("kubernetes API {url}: {source}")]
    Unavailable {
        /// The request URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// It refused.
    #[error("kubernetes API {url}: {status}: {message}")]
    Refused {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Config,
            Error::Unavailable { .. } => Exit::Unavailable,
            Error::Refused {
                status: 401 | 403, ..
            } => Exit::NoPerm,
            Error::Refused { .. } => Exit::Unavailable,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client of the API server.
#[derive(Debug, Clone)]
pub struct ApiServer {
    base: String,
    token_file: PathBuf,
    http: reqwest::Client,
}

impl ApiServer {
    /// From `inject.kubernetes`, with in-cluster defaults.
    pub fn new(k: &Kubernetes) -> Result<ApiServer> {
        let base = match &k.host {
            Some(h) => h.trim_end_matches('/').to_owned(),
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    Error::Config(
                        "not in a pod (no KUBERNETES_SERVICE_HOST): set inject.kubernetes.host"
                            .into(),
                    )
                })?;
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                match host.contains(':') {
                    true => format!("https://[{host}]:{port}"),
                    false => format!("https://{host}:{port}"),
                }
            }
        };
        let ca_file = k
            .ca_file
            .clone()
            .unwrap_or_else(|| SERVICE_ACCOUNT_CA.into());
        let pem = std::fs::read(&ca_file)
            .map_err(|e| Error::Config(format!("ca_file {}: {e}", ca_file.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Config(format!("ca_file {}: {e}", ca_file.display())))?;
        let http = reqwest::Client::builder()
            .tls_certs_only(certs)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::Config(format!("cannot make an HTTPS client: {e}")))?;
        Ok(ApiServer {
            base,
            token_file: k
                .token_file
                .clone()
                .unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.into()),
            http,
        })
    }

    fn token(&self) -> Result<SecretBytes> {
        let raw = std::fs::read(&self.token_file)
            .map(SecretBytes::new)
            .map_err(|e| Error::Config(format!("token_file {}: {e}", self.token_file.display())))?;
        let text = raw.expose_str().map(str::trim).unwrap_or_default();
        match text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            true => Err(Error::Config(format!(
                "token_file {} does not hold a token",
                self.token_file.display()
            ))),
            false => Ok(SecretBytes::copy_from(text)),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        patch: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let token = self.token()?;
        let mut bearer = SecretBytes::copy_from("Bearer ");
        bearer.extend_from_slice(token.expose());
        let mut auth = reqwest::header::HeaderValue::from_bytes(bearer.expose())
            .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, &url)
            .header(reqwest::header::AUTHORIZATION, auth);
        if let Some(body) = patch {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json-patch+json")
                .body(body.to_string());
        }
        let unavailable = |source| Error::Unavailable {
            url: url.clone(),
            source,
        };
        let r = req.send().await.map_err(unavailable)?;
        let status = r.status();
        let body: Value = r.json().await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(Error::Refused {
                url,
                status: status.as_u16(),
                message: body["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(body)
    }

    /// `(major, minor)` from `/version`.
    pub async fn version(&self) -> Result<(u32, u32)> {
        let v = self.send(reqwest::Method::GET, "/version", None).await?;
        let git = v["gitVersion"].as_str().unwrap_or_default();
        parse_version(git).ok_or_else(|| Error::Refused {
            url: format!("{}/version", self.base),
            status: 200,
            message: format!("gitVersion `{git}` is not a version"),
        })
    }

    /// Adds `ca_pem` to the `caBundle` of every webhook of
    /// MutatingWebhookConfiguration `name`, keeping the [`KEPT_CAS`] newest
    /// CAs there, so that replicas that each made their own CA are all
    /// trusted; returns how many webhooks it has. A concurrent change (another
    /// replica's) is detected by the resourceVersion and retried.
    pub async fn patch_ca_bundle(&self, name: &str, ca_pem: &str) -> Result<usize> {
        let path =
            format!("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}");
        let mut attempt = 0;
        loop {
            let current = self.send(reqwest::Method::GET, &path, None).await?;
            let webhooks = current["webhooks"].as_array().cloned().unwrap_or_default();
            let mut ops = vec![json!({
                "op": "test", "path": "/metadata/resourceVersion",
                "value": current["metadata"]["resourceVersion"],
            })];
            for (i, w) in webhooks.iter().enumerate() {
                let old = w["clientConfig"]["caBundle"].as_str().unwrap_or_default();
                let bundle = B64.encode(merged_bundle(
                    ca_pem,
                    &String::from_utf8_lossy(&B64.decode(old).unwrap_or_default()),
                ));
                ops.push(json!({ "op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle }));
            }
            match self
                .send(reqwest::Method::PATCH, &path, Some(Value::Array(ops)))
                .await
            {
                Ok(_) => return Ok(webhooks.len()),
                Err(Error::Refused {
                    status: 409 | 422 | 500,
                    ..
                }) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How many CA certificates a webhook's bundle keeps (one per injector replica).
pub const KEPT_CAS: usize = 8;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `ours` first, then the certificates already in `old` (without `ours`), at
/// most [`KEPT_CAS`] in all.
pub fn merged_bundle(ours: &str, old: &str) -> String {
    let ours = ours.trim();
    let mut certs = vec![ours.to_owned()];
    let mut rest = old;
    while let Some(begin) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[begin..].find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = begin + len + "-----END CERTIFICATE-----".len();
        let cert = rest[begin..end].trim();
        if cert != ours && certs.len() < KEPT_CAS {
            certs.push(cert.to_owned());
        }
        rest = &rest[end..];
    }
    certs.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(n: usize) -> String {
        format!("-----BEGIN CERTIFICATE-----\nMII{n}\n-----END CERTIFICATE-----")
    }

    #[test]
    fn the_bundle_keeps_the_newest_cas_once_each() {
        assert_eq!(merged_bundle(&cert(1), ""), format!("{}\n", cert(1)));
        let old = format!("{}\n{}\n", cert(2), cert(1));
        assert_eq!(
            merged_bundle(&cert(1), &old),
            format!("{}\n{}\n", cert(1), cert(2))
        );
        let many: String = (2..20).map(|n| cert(n) + "\n").collect();
        let merged = merged_bundle(&cert(1), &many);
        assert_eq!(merged.matches("BEGIN CERTIFICATE").count(), KEPT_CAS);
        assert!(
            merged.starts_with(&cert(1)) && merged.contains(&cert(8)) && !merged.contains(&cert(9))
        );
    }
}

//! The two calls the injector makes to the Kubernetes API server, through the
//! `kube` client: `/version` (native sidecars need 1.29) and, with
//! `tls.auto`, a JSON patch of its own MutatingWebhookConfiguration's
//! `caBundle`. In a pod it finds the server as every client does
//! (`KUBERNETES_SERVICE_HOST`, the service account's CA and token);
//! `inject.kubernetes` overrides each. `kube` re-reads the token file and the
//! CA file about once a minute (both rotate) and never logs the token.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use rustls::pki_types::pem::{PemObject, SectionKind};

use crate::config::inject::{parse_version, Kubernetes};
use crate::config::SERVICE_ACCOUNT_TOKEN;
use crate::exit::{Exit, ExitCode};

const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// What went wrong with the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Where the server is, or how to trust it, is not known.
    #[error("kubernetes API: {0}")]
    Config(String),
    /// It did not answer, or not in a form `kube` reads.
    #[error("kubernetes API {server}: {what}: {source}")]
    Unavailable {
        /// The server's URL.
        server: String,
        /// The call.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// It refused.
    #[error("kubernetes API {server}: {what}: {status}: {message}")]
    Refused {
        /// The server's URL.
        server: String,
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A webhook's `caBundle` holds something that is not PEM certificates;
    /// it is not replaced, since it may be another replica's CA.
    #[error("MutatingWebhookConfiguration {configuration}: webhook {webhook}: clientConfig.caBundle {why}; fix or empty it, it is not overwritten")]
    CaBundle {
        /// The configuration.
        configuration: String,
        /// The webhook's name.
        webhook: String,
        /// What is wrong with it.
        why: String,
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
            Error::CaBundle { .. } => Exit::Data,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client of the API server.
#[derive(Clone)]
pub struct ApiServer {
    server: String,
    client: kube::Client,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// From `inject.kubernetes`, with in-cluster defaults. Needs a Tokio
    /// runtime (the client spawns its connection pool).
    pub fn new(k: &Kubernetes) -> Result<ApiServer> {
        let server = match &k.host {
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
        let url = server
            .parse()
            .map_err(|e| Error::Config(format!("host `{server}` is not a URL: {e}")))?;
        let ca_file = k
            .ca_file
            .clone()
            .unwrap_or_else(|| SERVICE_ACCOUNT_CA.into());
        let token_file = k
            .token_file
            .clone()
            .unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.into());
        // kube reads the token file itself; an unreadable one is named here.
        std::fs::metadata(&token_file)
            .map_err(|e| Error::Config(format!("token_file {}: {e}", token_file.display())))?;
        let mut config = kube::Config::new(url);
        config.root_cert = Some(ca_certificates(&ca_file)?);
        config.root_cert_file = Some(ca_file.clone());
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        config.reset_reader_on_write = true;
        config.auth_info.token_file = Some(token_file.display().to_string());
        let client = kube::Client::try_from(config).map_err(|e| {
            Error::Config(format!(
                "cannot make a client (ca_file {}, token_file {}): {e}",
                ca_file.display(),
                token_file.display()
            ))
        })?;
        Ok(ApiServer { server, client })
    }

    fn failed(&self, what: &str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(status) => Error::Refused {
                server: self.server.clone(),
                what: what.to_owned(),
                status: status.code,
                message: status.message,
            },
            source => Error::Unavailable {
                server: self.server.clone(),
                what: what.to_owned(),
                source,
            },
        }
    }

    /// `(major, minor)` from `/version`.
    pub async fn version(&self) -> Result<(u32, u32)> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.failed("GET /version", e))?;
        parse_version(&info.git_version).ok_or_else(|| Error::Refused {
            server: self.server.clone(),
            what: "GET /version".into(),
            status: 200,
            message: format!("gitVersion `{}` is not a version", info.git_version),
        })
    }

    /// Adds `ca_pem` to the `caBundle` of every webhook of
    /// MutatingWebhookConfiguration `name`, keeping the [`KEPT_CAS`] newest
    /// CAs there, so that replicas that each made their own CA are all
    /// trusted; returns how many webhooks it has. A bundle that is not PEM
    /// certificates is an error ([`Error::CaBundle`]), never dropped. A
    /// concurrent change (another replica's) is detected by the
    /// resourceVersion and retried.
    pub async fn patch_ca_bundle(&self, name: &str, ca_pem: &str) -> Result<usize> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let what = format!("MutatingWebhookConfiguration {name}");
        let mut attempt = 0;
        loop {
            let current = api.get(name).await.map_err(|e| self.failed(&what, e))?;
            let webhooks = current.webhooks.unwrap_or_default();
            let mut ops = vec![PatchOperation::Test(TestOperation {
                path: PointerBuf::from_tokens(["metadata", "resourceVersion"]),
                value: current.metadata.resource_version.into(),
            })];
            for (i, w) in webhooks.iter().enumerate() {
                let old = w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice());
                let bundle = merged_bundle(ca_pem, old.unwrap_or_default()).map_err(|why| {
                    Error::CaBundle {
                        configuration: name.to_owned(),
                        webhook: w.name.clone(),
                        why,
                    }
                })?;
                let index = i.to_string();
                ops.push(PatchOperation::Add(AddOperation {
                    path: PointerBuf::from_tokens(["webhooks", &index, "clientConfig", "caBundle"]),
                    value: B64.encode(bundle).into(),
                }));
            }
            let patch = Patch::Json::<()>(json_patch::Patch(ops));
            match api
                .patch(name, &PatchParams::default(), &patch)
                .await
                .map_err(|e| self.failed(&what, e))
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

/// The certificates of `ca_file`, DER.
fn ca_certificates(ca_file: &Path) -> Result<Vec<Vec<u8>>> {
    let named = |why: String| Error::Config(format!("ca_file {}: {why}", ca_file.display()));
    let pem = std::fs::read(ca_file).map_err(|e| named(e.to_string()))?;
    let certs = certificates(&pem).map_err(named)?;
    match certs.is_empty() {
        true => Err(named("holds no certificate".into())),
        false => Ok(certs),
    }
}

/// How many CA certificates a webhook's bundle keeps (one per injector replica).
pub const KEPT_CAS: usize = 8;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The DER certificates of a PEM bundle; `Err` says why it is not one: a
/// section that is not a certificate or does not decode, or text without any.
fn certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let begins = pem.windows(11).filter(|w| w == b"-----BEGIN ").count();
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match section.map_err(|e| format!("does not decode as PEM: {e}"))? {
            (SectionKind::Certificate, der) => certs.push(der),
            (kind, _) => return Err(format!("holds a {kind:?} section, not a certificate")),
        }
    }
    if certs.len() != begins {
        return Err("holds a PEM section that is not a certificate".into());
    }
    if certs.is_empty() && !pem.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "holds {} bytes that are not a PEM certificate",
            pem.len()
        ));
    }
    Ok(certs)
}

/// `ours` first, then the certificates already in `old` (without `ours`), at
/// most [`KEPT_CAS`] in all, as PEM; `Err` says why `old` is not a bundle.
pub fn merged_bundle(ours: &str, old: &[u8]) -> Result<String, String> {
    let ours = certificates(ours.as_bytes()).map_err(|why| format!("(ours) {why}"))?;
    let old = certificates(old)?;
    let mut kept: Vec<&Vec<u8>> = ours.iter().collect();
    for cert in &old {
        if !kept.contains(&cert) && kept.len() < KEPT_CAS {
            kept.push(cert);
        }
    }
    Ok(kept.into_iter().map(|der| pem(der)).collect())
}

/// One certificate as PEM, 64 characters a line.
fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(n: u8) -> String {
        pem(&[0x30, 0x03, 0x02, 0x01, n])
    }

    #[test]
    fn the_bundle_keeps_the_newest_cas_once_each() {
        assert_eq!(merged_bundle(&cert(1), b"").unwrap(), cert(1));
        assert_eq!(merged_bundle(&cert(1), b" \n").unwrap(), cert(1));
        let old = format!("{}\n{}", cert(2), cert(1));
        assert_eq!(
            merged_bundle(&cert(1), old.as_bytes()).unwrap(),
            format!("{}{}", cert(1), cert(2))
        );
        let many: String = (2..20).map(cert).collect();
        let merged = merged_bundle(&cert(1), many.as_bytes()).unwrap();
        assert_eq!(merged.matches("BEGIN CERTIFICATE").count(), KEPT_CAS);
        assert!(
            merged.starts_with(&cert(1)) && merged.contains(&cert(8)) && !merged.contains(&cert(9))
        );
    }

    #[test]
    fn a_bundle_that_is_not_pem_certificates_is_refused_not_dropped() {
        let key = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        let unknown =
            "-----BEGIN TRUSTED CERTIFICATE-----\nMAA=\n-----END TRUSTED CERTIFICATE-----\n";
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        for (old, why) in [
            (key, "holds a PrivateKey section, not a certificate"),
            (unknown, "holds a PEM section that is not a certificate"),
            (broken, "does not decode as PEM"),
        ] {
            let bundle = format!("{}{old}", cert(2));
            let err = merged_bundle(&cert(1), bundle.as_bytes()).unwrap_err();
            assert!(err.starts_with(why), "{err}");
        }
        let err = merged_bundle(&cert(1), b"\xff\xfenot pem").unwrap_err();
        assert_eq!(err, "holds 9 bytes that are not a PEM certificate");
    }
}

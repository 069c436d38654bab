//! HashiCorp Vault and OpenBao: its config (the `vault:` source and the `kv`,
//! `read` and `pki` keys in [`config`], the `auth:` login methods in [`auth`],
//! its forms of address in [`address`]); token, AppRole, Kubernetes and JWT
//! login, and AWS IAM and TLS certificate login (in [`login`]), the token's upkeep (in
//! [`token`]); KV v1/v2 with the engine version detected from the mount as the
//! `vault kv` CLI does (in [`kv`]); PKI issue (in [`pki`]); and any logical
//! read with its lease, renewed, checked and revoked (in [`lease`]); Vault's
//! read API as the local proxy serves it (in [`proxy`]).
//!
//! Every call, logins included, goes straight to the HTTP client (see
//! [`client`]) rather than through vaultrs, because vaultrs drops what the
//! sidecar needs from the answer: the lease id, duration and renewability of
//! a logical read, and the status and `Retry-After` of a refusal (a rate-limit
//! quota's 429), which the source's [`Gate`] honours; and it reads an answer
//! of any size, where ours refuses one over `max_answer_bytes`. The mount
//! lookup the CLI does (`sys/internal/ui/mounts/…`) has no vaultrs call at
//! all; a vaultrs client only holds a session's token.
//!
//! A login's answer is parsed as JSON, whose strings are not zeroized; the
//! token moves into [`SecretBytes`] at once.

mod access;
mod address;
mod auth;
mod client;
mod config;
mod drill;
mod kv;
mod lease;
mod login;
mod pki;
mod pod;
mod proxy;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::time::Instant;
use vaultrs::client::VaultClient;

use super::{Error, Result, Source};
use crate::backoff::{Backoff, Gate, Pace};
use crate::config::{Address, Format, Secret};
use crate::secret::{Fetched, Lease, SecretBytes};
use crate::source::rotator::Rotator;
pub use address::VaultAddress;
pub use auth::{Auth, AwsLogin, CertLogin};
pub(crate) use config::BACKEND;
pub use config::{KvVersion, Vault};
pub use pod::{logical_read, VaultOverrides};
pub use token::user_logins;
use token::{LoginState, Session};

// For the fuzz targets (`src/fuzzing.rs`).
#[cfg(feature = "fuzzing")]
pub(crate) use {
    client::answer,
    kv::{kv1_fetched, kv2_fetched},
    lease::read_fetched,
    pki::pki_fetched,
};

/// A Vault or OpenBao server, logged in lazily on first use.
pub struct VaultSource {
    name: String,
    address: reqwest::Url,
    namespace: Option<String>,
    auth: Auth,
    /// The source's settings, for the client a certificate login builds.
    settings: Vault,
    /// The AWS credential chain of an `aws` login, built at the first login.
    aws_credentials: login::AwsCredentials,
    http: reqwest::Client,
    gate: Gate,
    session: Mutex<Option<Session>>,
    /// A token handed over by `init`, tried before logging in, with the ids
    /// of the leases it took.
    adopted: std::sync::Mutex<Option<(SecretBytes, Vec<String>)>>,
    kv_versions: Mutex<HashMap<String, KvVersion>>,
    /// What the proxy asks before serving: whether the login works.
    login: std::sync::Mutex<LoginState>,
    /// Logins refused and tokens denied so far ([`Source::login_epoch`]).
    login_epoch: std::sync::atomic::AtomicU64,
}

impl VaultSource {
    /// Builds the HTTP client (timeouts, CA bundle); no request is made yet.
    pub fn new(name: &str, cfg: &Vault) -> Result<Self> {
        if cfg.address.scheme() == "http" && cfg.ca_cert.is_some() {
            tracing::warn!(
                source = name,
                "ca_cert is ignored: the address is plain http://"
            );
        }
        if cfg.tls_skip_verify && cfg.address.scheme() == "https" {
            tracing::warn!(
                source = name,
                address = %cfg.address,
                "tls_skip_verify: THE SERVER'S CERTIFICATE IS NOT VERIFIED; whoever is on the path to it can read the secrets and the token: give the source a ca_cert instead"
            );
        }
        let http = client::http_client(name, cfg, None)?;
        Ok(Self {
            name: name.to_owned(),
            address: cfg.address.clone(),
            namespace: cfg.namespace.clone(),
            auth: cfg.auth.clone(),
            settings: cfg.clone(),
            aws_credentials: tokio::sync::OnceCell::new(),
            http,
            gate: Gate::new(Backoff::default()),
            session: Mutex::new(None),
            adopted: std::sync::Mutex::new(None),
            kv_versions: Mutex::new(HashMap::new()),
            login: std::sync::Mutex::new(LoginState::default()),
            login_epoch: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Reads `secret` with the logged-in client `c`.
    async fn fetch_one(
        &self,
        c: &Arc<VaultClient>,
        secret: &Secret,
        deadline: Instant,
    ) -> Result<Fetched> {
        let what = secret.address.describe();
        let Address::Vault(address) = &secret.address else {
            return Err(Error::config(format!(
                "source {}: Vault has no `{}` secrets",
                self.name,
                secret.address.kind()
            )));
        };
        match address {
            VaultAddress::Kv {
                mount,
                path,
                kv_version,
                version,
            } => {
                let at = kv::KvPath {
                    mount,
                    path,
                    kv_version: *kv_version,
                    version: *version,
                };
                self.fetch_kv(c, at, &what, deadline).await
            }
            VaultAddress::Read(path) if secret.format == Format::AgentTemplate => {
                let path = self.agent_path(c, path, &what, deadline).await?;
                let f = self.fetch_read(c, &path, true, &what, deadline).await?;
                match f.fields.get("data").map(SecretBytes::expose) {
                    // A deleted KV v2 version, as Vault Agent says it.
                    Some(b"") if f.fields.contains_key("metadata") => Err(Error::not_found(
                        format!("{what}: no secret exists at {path}"),
                    )),
                    _ => Ok(f),
                }
            }
            VaultAddress::Read(path) => self.fetch_read(c, path, false, &what, deadline).await,
            VaultAddress::Pki {
                mount,
                role,
                common_name,
                ttl,
                alt_names,
                ip_sans,
            } => {
                let at = pki::Issue {
                    mount,
                    role,
                    common_name,
                    ttl: *ttl,
                    alt_names,
                    ip_sans,
                };
                self.issue(c, at, &what, deadline).await
            }
        }
    }
}

impl Source for VaultSource {
    fn rotator(&self, secret: &Secret) -> std::result::Result<Box<dyn Rotator + '_>, String> {
        drill::rotator(self, secret)
    }

    fn fetch<'a>(
        &'a self,
        secret: &'a Secret,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let mut c = self.client(deadline).await?;
            let mut epoch = self.login_epoch();
            let mut fetched = match self.fetch_one(&c, secret, deadline).await {
                // The token may have been revoked or have expired: log in again, once.
                Err(e @ Error::Denied { .. }) => {
                    tracing::info!(source = %self.name, secret = %secret.name, error = %e.detail(), "permission denied; logging in again and retrying once");
                    self.denied(&c).await;
                    c = self.client(deadline).await?;
                    epoch = self.login_epoch();
                    self.fetch_one(&c, secret, deadline).await
                }
                other => other,
            }?;
            fetched.login_epoch = epoch;
            if let Some(lease) = &fetched.lease {
                self.took(&c, &lease.id).await;
            }
            Ok(fetched)
        })
    }

    fn may_read<'a>(&'a self, secret: &'a Secret, deadline: Instant) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.may_read_one(secret, deadline))
    }

    fn renew<'a>(&'a self, lease: &'a Lease, deadline: Instant) -> BoxFuture<'a, Result<Lease>> {
        Box::pin(self.renew_lease(lease, deadline))
    }

    fn still_valid<'a>(
        &'a self,
        secret: &'a Secret,
        fetched: &'a Fetched,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.still_good(secret, fetched, deadline))
    }

    fn revoke<'a>(&'a self, leases: &'a [&'a Lease]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(self.revoke_at_exit(leases))
    }

    fn maintain(&self, renew_at: f64, deadline: Instant) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(self.keep_token(renew_at, deadline))
    }

    fn session(&self) -> BoxFuture<'_, Option<SecretBytes>> {
        Box::pin(async { self.session.lock().await.as_ref().map(|s| s.token.clone()) })
    }

    fn pace(&self) -> Pace {
        self.gate.pace()
    }

    fn adopt(&self, token: SecretBytes, leases: Vec<String>) {
        *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = Some((token, leases));
    }

    fn login_problem(&self) -> Option<String> {
        self.login_problem_now()
    }

    fn login_epoch(&self) -> u64 {
        self.login_epoch.load(std::sync::atomic::Ordering::Acquire)
    }
}

//! HashiCorp Vault and OpenBao: token, AppRole, Kubernetes and JWT login, and
//! AWS IAM and TLS certificate login (in [`login`]); KV v1/v2
//! with the engine version detected from the mount as the `vault kv` CLI
//! does; PKI issue; and any logical read with its lease.
//!
//! Logins go through vaultrs. Every read goes straight to the HTTP client
//! vaultrs itself uses, because vaultrs drops what the sidecar needs from the
//! answer: the lease id, duration and renewability of a logical read, and the
//! status and `Retry-After` of a refusal (a rate-limit quota's 429), which the
//! source's [`Gate`] honours. The mount lookup the CLI does
//! (`sys/internal/ui/mounts/…`) has no vaultrs call at all.
//!
//! vaultrs' logins deserialize the token into a plain `String`; we move it
//! into [`SecretBytes`] at once, but that transient copy is not zeroized.

mod access;
mod login;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::time::Instant;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{fields_from_json, paced, Error, Result, Source};
use crate::backoff::{self, Backoff, Gate, Pace};
use crate::config::{Address, Auth, KvVersion, Secret, Vault};
use crate::secret::{Fetched, Fields, Lease, SecretBytes};

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
    /// A token handed over by `init`, tried before logging in.
    adopted: std::sync::Mutex<Option<SecretBytes>>,
    kv_versions: Mutex<HashMap<String, KvVersion>>,
    /// What the proxy asks before serving: whether the login works.
    login: std::sync::Mutex<LoginState>,
}

/// Whether the source can log in, readable without waiting for a login in progress.
#[derive(Default)]
struct LoginState {
    /// Why the last login was refused; cleared by the next good one.
    refused: Option<String>,
    /// When the token in use runs out, if it does.
    ends: Option<Instant>,
}

/// A token in use and what Vault said about it.
struct Session {
    client: Arc<VaultClient>,
    token: SecretBytes,
    /// Time to live as of `since`; `None` when the token does not expire.
    ttl: Option<Duration>,
    renewable: bool,
    since: Instant,
}

impl Session {
    /// Whether its lifetime, as Vault last told it, is over.
    fn expired(&self) -> bool {
        self.ttl.is_some_and(|t| self.since.elapsed() >= t)
    }
}

/// What a login or a token lookup tells.
struct Grant {
    token: SecretBytes,
    ttl: Option<Duration>,
    renewable: bool,
}

fn ttl(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
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
        let http = http_client(name, cfg, None)?;
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
        })
    }

    /// A vaultrs client over our HTTP client, with `token` (may be empty to log in).
    fn vaultrs(&self, token: &str) -> Result<VaultClient> {
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
            .map_err(|e| Error::Config(format!("source {}: {e}", self.name)))?;
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

    /// The logged-in client, logging in first if there is no token or it has
    /// run out (a token file is then read again: the user may have logged in).
    async fn client(&self, deadline: Instant) -> Result<Arc<VaultClient>> {
        let mut slot = self.session.lock().await;
        match slot.as_ref() {
            Some(s) if !s.expired() => return Ok(s.client.clone()),
            Some(_) => {
                tracing::info!(source = %self.name, "the token has expired; logging in again");
                *slot = None;
            }
            None => {}
        }
        Ok(self.establish(&mut slot, deadline).await?.client.clone())
    }

    /// How the user gets a working login again, after a message that named
    /// the credential file.
    fn relogin(&self) -> &'static str {
        match &self.auth {
            Auth::TokenFile(path) if path.file_name() == Some(".vault-token".as_ref()) => {
                "log in again with `bao login` or `vault login`, which write a new one there"
            }
            Auth::TokenFile(_) => "put a valid token there",
            _ => "check the login's role and credential files",
        }
    }

    fn login_state(&self) -> std::sync::MutexGuard<'_, LoginState> {
        self.login.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills `slot` with the adopted token if it still works, else with a new login.
    async fn establish<'s>(
        &self,
        slot: &'s mut Option<Session>,
        deadline: Instant,
    ) -> Result<&'s Session> {
        let adopted = self
            .adopted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let grant = match adopted {
            Some(token) => match self.lookup(token, deadline).await {
                Ok(g) => {
                    tracing::info!(source = %self.name, "using the token handed over by init");
                    g
                }
                Err(e) => {
                    tracing::info!(source = %self.name, error = %e, "the handed-over token does not work; logging in");
                    self.login_retrying(deadline).await?
                }
            },
            None => self.login_retrying(deadline).await?,
        };
        *self.login_state() = LoginState {
            refused: None,
            ends: grant.ttl.map(|t| Instant::now() + t),
        };
        let client =
            Arc::new(self.vaultrs(grant.token.expose_str().ok_or_else(|| {
                Error::Data(format!("source {}: token is not text", self.name))
            })?)?);
        Ok(slot.insert(Session {
            client,
            token: grant.token,
            ttl: grant.ttl,
            renewable: grant.renewable,
            since: Instant::now(),
        }))
    }

    async fn login_retrying(&self, deadline: Instant) -> Result<Grant> {
        let r = paced(&self.gate, deadline, "login", || self.login()).await;
        // Refused, or the credential file is missing or empty: the user must act.
        if let Err(e @ (Error::Denied(_) | Error::Config(_))) = &r {
            self.login_state().refused = Some(e.to_string());
        }
        r
    }

    /// Asks Vault about `token` (`auth/token/lookup-self`), through the gate.
    async fn lookup(&self, token: SecretBytes, deadline: Instant) -> Result<Grant> {
        paced(&self.gate, deadline, "token lookup", || {
            self.lookup_once(&token)
        })
        .await
    }

    /// One `auth/token/lookup-self` of `token`.
    async fn lookup_once(&self, token: &SecretBytes) -> Result<Grant> {
        let what = "token lookup";
        let body = self
            .call(
                token,
                reqwest::Method::GET,
                "auth/token/lookup-self",
                None,
                what,
            )
            .await?;
        Ok(Grant {
            token: token.clone(),
            ttl: ttl(body
                .pointer("/data/ttl")
                .and_then(|v| v.as_u64())
                .unwrap_or(0)),
            renewable: body
                .pointer("/data/renewable")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }

    /// Drops the token `used` (unless another call already replaced it) so
    /// the next call logs in again.
    async fn forget_session(&self, used: &Arc<VaultClient>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(&s.client, used)) {
            *slot = None;
        }
    }

    /// Renews the token at `renew_at` of its lifetime, or logs in again when it
    /// cannot be renewed; returns how long until this should run again.
    async fn keep_token(&self, renew_at: f64, deadline: Instant) -> Result<Duration> {
        const IDLE: Duration = Duration::from_secs(300);
        let mut slot = self.session.lock().await;
        let s = match slot.as_ref() {
            Some(s) => s,
            None => self.establish(&mut slot, deadline).await?,
        };
        let Some(ttl) = s.ttl else { return Ok(IDLE) };
        let due = s.since + ttl.mul_f64(renew_at);
        let now = Instant::now();
        if now < due {
            return Ok(due - now);
        }
        if s.renewable {
            let body = self
                .call(
                    &s.token,
                    reqwest::Method::POST,
                    "auth/token/renew-self",
                    Some(serde_json::json!({ "increment": ttl.as_secs() })),
                    "token renewal",
                )
                .await;
            match body {
                Ok(b) => {
                    let granted = b
                        .pointer("/auth/lease_duration")
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0);
                    // A token near its max TTL gets less than asked: log in again before it ends.
                    if granted * 2 >= ttl.as_secs() {
                        let session = slot
                            .as_mut()
                            .ok_or_else(|| Error::Data("no session".into()))?;
                        session.ttl = self::ttl(granted);
                        session.since = Instant::now();
                        self.login_state().ends = session.ttl.map(|t| session.since + t);
                        tracing::debug!(source = %self.name, ttl_s = granted, "token renewed");
                        return Ok(Duration::from_secs(granted).mul_f64(renew_at));
                    }
                }
                Err(e) if e.retryable() => return Err(e),
                Err(e) => tracing::info!(source = %self.name, error = %e, "token renewal refused"),
            }
        }
        tracing::info!(source = %self.name, "token cannot be extended; logging in again");
        *slot = None;
        let s = self.establish(&mut slot, deadline).await?;
        Ok(s.ttl.map_or(IDLE, |t| t.mul_f64(renew_at)))
    }

    async fn login(&self) -> Result<Grant> {
        let (method, info) = match &self.auth {
            Auth::TokenFile(path) => {
                let token = read_credential(path, "token_file")
                    .map_err(|e| Error::Config(format!("{e}: {}", self.relogin())))?;
                return self.lookup_once(&token).await.map_err(|e| match e {
                    Error::Denied(why) => Error::Denied(format!(
                        "the token in {} was refused ({why}): {}",
                        path.display(),
                        self.relogin()
                    )),
                    other => other,
                });
            }
            Auth::AppRole {
                mount,
                role_id_file,
                secret_id_file,
            } => {
                let role_id = read_credential(role_id_file, "role_id_file")?;
                let secret_id = read_credential(secret_id_file, "secret_id_file")?;
                let c = self.vaultrs("")?;
                let r = vaultrs::auth::approle::login(
                    &c,
                    mount,
                    role_id.expose_str().unwrap_or_default(),
                    secret_id.expose_str().unwrap_or_default(),
                )
                .await;
                ("approle", r)
            }
            Auth::Kubernetes(l) => {
                let jwt = read_credential(&l.token_file, "token_file")?;
                let c = self.vaultrs("")?;
                let r = vaultrs::auth::kubernetes::login(
                    &c,
                    &l.mount,
                    &l.role,
                    jwt.expose_str().unwrap_or_default(),
                )
                .await;
                ("kubernetes", r)
            }
            Auth::Aws(l) => {
                let body = login::aws_body(&self.name, l, &self.aws_credentials).await?;
                return self.login_raw("aws", &self.http, &l.mount, body).await;
            }
            Auth::Cert(l) => {
                let identity = login::cert_identity(l)?;
                let client = http_client(&self.name, &self.settings, Some(identity))?;
                let body = serde_json::json!({ "name": l.name });
                return self.login_raw("cert", &client, &l.mount, body).await;
            }
            Auth::Jwt(l) => {
                let jwt = read_credential(&l.token_file, "token_file")?;
                let c = self.vaultrs("")?;
                let r = vaultrs::auth::oidc::login(
                    &c,
                    &l.mount,
                    jwt.expose_str().unwrap_or_default(),
                    Some(l.role.clone()),
                )
                .await;
                ("jwt", r)
            }
        };
        let info = info.map_err(|e| match classify(e, &format!("{method} login")) {
            // A rejected login is a 400 in Vault: bad role, bad secret id, bad JWT.
            Error::Data(m) => Error::Denied(m),
            other => other,
        })?;
        tracing::info!(source = %self.name, method, policies = %info.policies.join(","), ttl = info.lease_duration, "logged in");
        Ok(Grant {
            ttl: ttl(info.lease_duration),
            renewable: info.renewable,
            token: SecretBytes::from_string(info.client_token),
        })
    }

    /// KV engine version of `mount`: asked once per mount, as `vault kv` does.
    async fn kv_version(
        &self,
        c: &VaultClient,
        mount: &str,
        deadline: Instant,
    ) -> Result<KvVersion> {
        let mut known = self.kv_versions.lock().await;
        if let Some(v) = known.get(mount) {
            return Ok(*v);
        }
        let what = format!("mount lookup of `{mount}`");
        let path = format!("sys/internal/ui/mounts/{mount}");
        let body = paced(&self.gate, deadline, &what, || self.get(c, &path, &what)).await;
        let version = match body {
            // Servers older than the lookup: the CLI assumes v1.
            Err(Error::NotFound(_)) => KvVersion::V1,
            Err(e) => return Err(e),
            Ok(body) => match body
                .pointer("/data/options/version")
                .and_then(|v| v.as_str())
            {
                Some("2") => KvVersion::V2,
                _ => KvVersion::V1,
            },
        };
        tracing::debug!(source = %self.name, mount, ?version, "kv engine version");
        known.insert(mount.to_owned(), version);
        Ok(version)
    }

    /// KV engine version of `mount` (the rotation drill's writes differ by it).
    pub async fn kv_engine(&self, mount: &str, deadline: Instant) -> Result<KvVersion> {
        let c = self.client(deadline).await?;
        self.kv_version(&c, mount, deadline).await
    }

    /// GET `/v1/{path}` with the client's token.
    async fn get(&self, c: &VaultClient, path: &str, what: &str) -> Result<serde_json::Value> {
        let token = SecretBytes::copy_from(&c.middle.token);
        self.call(&token, reqwest::Method::GET, path, None, what)
            .await
    }

    /// POSTs a login to `auth/{mount}/login` on `http` (no token); a
    /// rejected login is denied.
    async fn login_raw(
        &self,
        method: &str,
        http: &reqwest::Client,
        mount: &str,
        body: serde_json::Value,
    ) -> Result<Grant> {
        let what = format!("{method} login");
        let path = format!("auth/{mount}/login");
        let none = SecretBytes::default();
        let body = SecretBytes::new(body.to_string().into_bytes());
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
            .map_err(|e| match e {
                // A rejected login is a 400 in Vault: bad role, bad signature, bad certificate.
                Error::Data(m) => Error::Denied(m),
                other => other,
            })?;
        let auth = answer
            .get("auth")
            .filter(|a| !a.is_null())
            .ok_or_else(|| Error::Data(format!("{what}: the answer has no `auth`")))?;
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Data(format!("{what}: the answer has no token")))?;
        let lease = auth["lease_duration"].as_u64().unwrap_or(0);
        tracing::info!(source = %self.name, method, policies = ?auth["policies"], ttl = lease, "logged in");
        Ok(Grant {
            token: SecretBytes::copy_from(token),
            ttl: ttl(lease),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        })
    }

    /// Calls `/v1/{path}` with `token` and the namespace; the answer as JSON.
    async fn call(
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

    /// [`Self::call`] on the client `http`, with a JSON body already
    /// serialized (it may hold secrets); an empty `token` is not sent.
    async fn call_on(
        &self,
        http: &reqwest::Client,
        token: &SecretBytes,
        method: reqwest::Method,
        path: &str,
        body: Option<&SecretBytes>,
        what: &str,
    ) -> Result<serde_json::Value> {
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
                    .map_err(|_| Error::Data(format!("{what}: token is not a header value")))?,
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
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("{what}: {}", transport(&e))))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| backoff::parse_retry_after(v, std::time::SystemTime::now()));
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("{what}: {}", transport(&e))))?;
        let body = zeroize::Zeroizing::new(body.to_vec());
        if (200..300).contains(&status) && body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|_| Error::Data(format!("{what}: answer is not JSON")));
        }
        let errors = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default();
        Err(status_error(status, &errors, what, retry_after))
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
            Err(Error::Denied(_)) => {
                self.forget_session(&c).await;
                attempt(self.client(deadline).await?).await
            }
            other => other,
        }
    }

    async fn fetch_one(
        &self,
        c: &Arc<VaultClient>,
        secret: &Secret,
        deadline: Instant,
    ) -> Result<Fetched> {
        let what = secret.address.describe();
        let get = |path: String| {
            let what = &what;
            async move { paced(&self.gate, deadline, what, || self.get(c, &path, what)).await }
        };
        match &secret.address {
            Address::Kv {
                mount,
                path,
                kv_version,
                version,
            } => {
                let v = match kv_version {
                    Some(v) => *v,
                    None => self.kv_version(c, mount, deadline).await?,
                };
                if v == KvVersion::V1 && version.is_some() {
                    return Err(Error::Data(format!(
                        "{what}: `version` pins a KV v2 version, but mount `{mount}` is KV v1"
                    )));
                }
                if v == KvVersion::V1 {
                    let body = get(format!("{mount}/{path}")).await?;
                    return Ok(Fetched::fields(fields_from_json(
                        body.get("data").cloned().unwrap_or_default(),
                        &what,
                    )?));
                }
                let pinned = version.map(|n| format!("?version={n}")).unwrap_or_default();
                let mut body = get(format!("{mount}/data/{path}{pinned}")).await?;
                let data = body.pointer_mut("/data/data").map(serde_json::Value::take);
                let number = body
                    .pointer("/data/metadata/version")
                    .and_then(serde_json::Value::as_u64);
                match data {
                    None | Some(serde_json::Value::Null) => Err(Error::NotFound(format!(
                        "{what}: version {} is deleted",
                        number.map_or_else(|| "?".to_owned(), |n| n.to_string())
                    ))),
                    Some(data) => {
                        let mut f = Fetched::fields(fields_from_json(data, &what)?);
                        f.version = number.map(|n| n.to_string());
                        Ok(f)
                    }
                }
            }
            Address::Read(path) => {
                let body = get(path.clone()).await?;
                let lease_id = body["lease_id"].as_str().unwrap_or_default().to_owned();
                let lease = (!lease_id.is_empty()).then(|| Lease {
                    id: lease_id,
                    duration: Duration::from_secs(body["lease_duration"].as_u64().unwrap_or(0)),
                    renewable: body["renewable"].as_bool().unwrap_or(false),
                });
                let mut data = match body {
                    serde_json::Value::Object(mut m) => m.remove("data").unwrap_or_default(),
                    _ => serde_json::Value::Null,
                };
                if data.is_null() {
                    return Err(Error::NotFound(format!("{what}: no data at this path")));
                }
                let rotates = static_rotation(&mut data);
                let mut f = Fetched::fields(fields_from_json(data, &what)?);
                f.lease = lease;
                f.rotates = rotates;
                Ok(f)
            }
            Address::Pki {
                mount,
                role,
                common_name,
                ttl,
                alt_names,
                ip_sans,
            } => {
                let mut request = serde_json::json!({ "common_name": common_name });
                if let Some(t) = ttl {
                    request["ttl"] = format!("{}s", t.as_secs()).into();
                }
                if !alt_names.is_empty() {
                    request["alt_names"] = alt_names.join(",").into();
                }
                if !ip_sans.is_empty() {
                    request["ip_sans"] = ip_sans.join(",").into();
                }
                let token = SecretBytes::copy_from(&c.middle.token);
                let path = format!("{mount}/issue/{role}");
                let body = paced(&self.gate, deadline, &what, || {
                    self.call(
                        &token,
                        reqwest::Method::POST,
                        &path,
                        Some(request.clone()),
                        &what,
                    )
                })
                .await?;
                pki_fetched(body, &what)
            }
            Address::SecretId { .. } => Err(Error::Config(format!(
                "source {}: Vault has no `secret_id` secrets",
                self.name
            ))),
        }
    }
}

/// The certificate, key and chain a PKI `issue` answered, in fields.
fn pki_fetched(mut body: serde_json::Value, what: &str) -> Result<Fetched> {
    let data = body
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str);
    let (Some(certificate), Some(private_key), Some(serial)) = (
        text("certificate"),
        text("private_key"),
        text("serial_number"),
    ) else {
        return Err(Error::Data(format!(
            "{what}: the answer lacks certificate, private_key or serial_number"
        )));
    };
    let issuing_ca = text("issuing_ca").unwrap_or_default();
    let chain: Vec<&str> = data
        .get("ca_chain")
        .and_then(serde_json::Value::as_array)
        .map(|c| c.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let chain = if chain.is_empty() {
        issuing_ca.to_owned()
    } else {
        chain.join("\n")
    };
    let mut fields = Fields::new();
    fields.insert("certificate".into(), SecretBytes::copy_from(certificate));
    fields.insert("private_key".into(), SecretBytes::copy_from(private_key));
    fields.insert("ca_chain".into(), SecretBytes::from_string(chain));
    fields.insert("issuing_ca".into(), SecretBytes::copy_from(issuing_ca));
    fields.insert("serial_number".into(), SecretBytes::copy_from(serial));
    let mut f = Fetched::fields(fields);
    f.version = Some(serial.to_owned());
    f.expires = data
        .get("expiration")
        .and_then(serde_json::Value::as_u64)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    Ok(f)
}

impl Source for VaultSource {
    fn fetch<'a>(
        &'a self,
        secret: &'a Secret,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let c = self.client(deadline).await?;
            match self.fetch_one(&c, secret, deadline).await {
                // The token may have been revoked or have expired: log in again, once.
                Err(Error::Denied(why)) => {
                    tracing::info!(source = %self.name, secret = %secret.name, error = %why, "permission denied; logging in again and retrying once");
                    self.forget_session(&c).await;
                    let c = self.client(deadline).await?;
                    self.fetch_one(&c, secret, deadline).await
                }
                other => other,
            }
        })
    }

    fn may_read<'a>(&'a self, secret: &'a Secret, deadline: Instant) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.may_read_one(secret, deadline))
    }

    fn renew<'a>(&'a self, lease: &'a Lease, deadline: Instant) -> BoxFuture<'a, Result<Lease>> {
        Box::pin(async move {
            let c = self.client(deadline).await?;
            let token = SecretBytes::copy_from(&c.middle.token);
            let what = format!("renewal of lease {}", lease.id);
            let body = paced(&self.gate, deadline, &what, || {
                self.call(
                    &token,
                    reqwest::Method::PUT,
                    "sys/leases/renew",
                    Some(serde_json::json!({ "lease_id": lease.id, "increment": lease.duration.as_secs() })),
                    &what,
                )
            })
            .await?;
            Ok(Lease {
                id: body["lease_id"].as_str().unwrap_or(&lease.id).to_owned(),
                duration: Duration::from_secs(body["lease_duration"].as_u64().unwrap_or(0)),
                renewable: body["renewable"].as_bool().unwrap_or(false),
            })
        })
    }

    fn check<'a>(
        &'a self,
        secret: &'a Secret,
        fetched: &'a Fetched,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (method, path, body, what) =
                match (&fetched.lease, &secret.address, &fetched.version) {
                    (Some(lease), _, _) => (
                        reqwest::Method::PUT,
                        "sys/leases/lookup".to_owned(),
                        Some(serde_json::json!({ "lease_id": lease.id })),
                        format!("lookup of lease {}", lease.id),
                    ),
                    (None, Address::Pki { mount, .. }, Some(serial)) => (
                        reqwest::Method::GET,
                        format!("{mount}/cert/{serial}"),
                        None,
                        format!("lookup of certificate {serial}"),
                    ),
                    _ => return Ok(true),
                };
            let c = self.client(deadline).await?;
            let token = SecretBytes::copy_from(&c.middle.token);
            let answer = paced(&self.gate, deadline, &what, || {
                self.call(&token, method.clone(), &path, body.clone(), &what)
            })
            .await;
            match answer {
                // A revoked certificate has a revocation time; a live one 0.
                Ok(b) => Ok(b
                    .pointer("/data/revocation_time")
                    .and_then(|v| v.as_i64())
                    .is_none_or(|t| t <= 0)),
                // Vault answers 400 "invalid lease" for a lease it no longer has.
                Err(Error::Data(_) | Error::NotFound(_)) => Ok(false),
                // A policy without `sys/leases/lookup`: nothing to tell.
                Err(Error::Denied(why)) => {
                    tracing::debug!(source = %self.name, secret = %secret.name, error = %why, "cannot check the lease; relying on renewal");
                    Ok(true)
                }
                Err(e) => Err(e),
            }
        })
    }

    fn revoke<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let c = self.client(Instant::now() + Duration::from_secs(5)).await?;
            let token = SecretBytes::copy_from(&c.middle.token);
            self.call(
                &token,
                reqwest::Method::PUT,
                "sys/leases/revoke",
                Some(serde_json::json!({ "lease_id": lease.id })),
                &format!("revocation of lease {}", lease.id),
            )
            .await
            .map(|_| ())
        })
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

    fn adopt(&self, token: SecretBytes) {
        *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }

    fn login_problem(&self) -> Option<String> {
        let state = self.login_state();
        if let Some(why) = &state.refused {
            return Some(why.clone());
        }
        let what = match &self.auth {
            Auth::TokenFile(path) => format!("the token from {}", path.display()),
            _ => "its token".into(),
        };
        state
            .ends
            .filter(|end| *end <= Instant::now())
            .map(|_| format!("{what} has expired: {}", self.relogin()))
    }
}

/// A database static role's credentials (`…/static-creds/NAME`) carry the
/// seconds until Vault rotates them (`ttl`, beside `last_vault_rotation`):
/// takes that count out of the fields, where it would change the rendered
/// file at every read, and returns when the rotation is due.
fn static_rotation(data: &mut serde_json::Value) -> Option<std::time::SystemTime> {
    let m = data.as_object_mut()?;
    if !m.contains_key("last_vault_rotation") {
        return None;
    }
    let ttl = m.remove("ttl")?.as_u64()?;
    Some(std::time::SystemTime::now() + Duration::from_secs(ttl))
}

/// Reads a credential file (token, role id, JWT): trimmed, non-empty, and
/// printable ASCII, since it goes into an HTTP header or a JSON body.
fn read_credential(path: &Path, key: &str) -> Result<SecretBytes> {
    let raw = std::fs::read(path)
        .map(SecretBytes::new)
        .map_err(|e| Error::Config(format!("{key} {}: {e}", path.display())))?;
    let text = raw.expose_str().unwrap_or("\u{0}").trim();
    if text.is_empty() {
        return Err(Error::Config(format!("{key} {} is empty", path.display())));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "{key} {} holds characters that cannot be a credential",
            path.display()
        )));
    }
    Ok(SecretBytes::copy_from(text))
}

/// The HTTP client of a Vault source (timeouts, CA bundle), with a client
/// certificate for a `cert` login.
fn http_client(
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
    } else if let Some(ca) = &cfg.ca_cert {
        builder = builder.tls_certs_merge(load_ca(name, ca)?);
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("source {name}: cannot build HTTP client: {e}")))
}

fn load_ca(name: &str, path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let bad =
        |why: String| Error::Config(format!("source {name}: ca_cert {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Error text of a transport failure, with its causes (reqwest's top line is vague).
fn transport(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

/// Maps an HTTP error status; a 429, or a 503 with `Retry-After`, asks to slow down.
fn status_error(
    status: u16,
    errors: &[String],
    what: &str,
    retry_after: Option<Duration>,
) -> Error {
    let detail = if errors.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status}: {}", errors.join("; "))
    };
    match status {
        401 | 403 => Error::Denied(detail),
        404 => Error::NotFound(detail),
        429 => Error::Throttled {
            detail,
            retry_after,
        },
        503 if retry_after.is_some() => Error::Throttled {
            detail,
            retry_after,
        },
        500..=599 => Error::Unavailable(detail),
        _ => Error::Data(detail),
    }
}

/// Maps a vaultrs error: HTTP statuses by code, anything else on the way is a transport failure.
fn classify(e: ClientError, what: &str) -> Error {
    match e {
        ClientError::APIError { code, errors } => status_error(code, &errors, what, None),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => status_error(code, &[], what, None),
        // Only transport failures carry their cause chain: a parse error's
        // cause may quote the answer, which holds secrets.
        ClientError::RestClientError {
            source:
                source @ (rustify::errors::ClientError::RequestError { .. }
                | rustify::errors::ClientError::ResponseError { .. }),
        } => Error::Unavailable(format!("{what}: {}", transport(&source))),
        ClientError::RestClientError { source } => Error::Data(format!("{what}: {source}")),
        ClientError::ResponseDataEmptyError | ClientError::ResponseEmptyError => {
            Error::NotFound(format!("{what}: empty answer"))
        }
        other => Error::Data(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors() {
        use crate::backoff::Signal;
        let s = |status, ra| status_error(status, &[], "x", ra);
        assert!(matches!(s(403, None), Error::Denied(_)));
        assert!(matches!(s(404, None), Error::NotFound(_)));
        assert!(!s(400, None).retryable());
        assert_eq!(s(503, None).signal(), Signal::Failed);
        assert_eq!(
            s(500, Some(Duration::from_secs(2))).signal(),
            Signal::Failed
        );
        assert_eq!(s(429, None).signal(), Signal::PushedBack(None));
        let two = Some(Duration::from_secs(2));
        assert_eq!(s(429, two).signal(), Signal::PushedBack(two));
        assert_eq!(s(503, two).signal(), Signal::PushedBack(two));
        assert!(s(429, two).retryable());
        assert_eq!(s(404, None).signal(), Signal::Answered);
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

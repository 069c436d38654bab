//! The source's own token: the session in use, the login or the adopted
//! `init` token that fills it, the leases it took (which revoking it at
//! shutdown revokes), its renewal at `renew_at` of its lifetime, and what
//! the proxy may ask without waiting (is the login refused or over).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vaultrs::client::VaultClient;

use super::{Auth, VaultSource};
use crate::config::{Config, SourceKind};
use crate::secret::SecretBytes;
use crate::source::{paced, Error, Result};

/// Whether the source can log in, readable without waiting for a login in progress.
#[derive(Default)]
pub(super) struct LoginState {
    /// Why the last login was refused; cleared by the next good one.
    pub(super) refused: Option<String>,
    /// When the token in use runs out, if it does.
    pub(super) ends: Option<Instant>,
}

/// A token in use and what Vault said about it.
pub(super) struct Session {
    pub(super) client: Arc<VaultClient>,
    pub(super) token: SecretBytes,
    /// Time to live as of `since`; `None` when the token does not expire.
    pub(super) ttl: Option<Duration>,
    pub(super) renewable: bool,
    pub(super) since: Instant,
    /// The ids of the leases read with this token (or handed over with it
    /// by `init`): Vault revokes them with it.
    pub(super) leases: HashSet<String>,
}

impl Session {
    /// Whether its lifetime, as Vault last told it, is over.
    fn expired(&self) -> bool {
        self.ttl.is_some_and(|t| self.since.elapsed() >= t)
    }
}

/// What a login or a token lookup tells.
pub(super) struct Grant {
    pub(super) token: SecretBytes,
    pub(super) ttl: Option<Duration>,
    pub(super) renewable: bool,
}

/// The commands that log in at the Vault servers of `config`'s sources that
/// use the user's own token file, once each.
pub fn user_logins(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &config.sources {
        if let SourceKind::Vault(v) = &s.kind {
            let command = login_command(&v.address);
            if matches!(v.auth, Auth::TokenFile(_)) && !out.contains(&command) {
                out.push(command);
            }
        }
    }
    out
}

/// The shell command that logs in to the server at `address`, whatever the
/// shell's `VAULT_ADDR` says: `VAULT_ADDR=<address> bao login`.
pub fn login_command(address: &reqwest::Url) -> String {
    let addr = address.as_str().trim_end_matches('/');
    let plain = addr
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/[]@%".contains(c));
    if plain {
        format!("VAULT_ADDR={addr} bao login")
    } else {
        format!("VAULT_ADDR='{}' bao login", addr.replace('\'', r"'\''"))
    }
}

pub(super) fn ttl(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| crate::clock::secs(secs))
}

impl VaultSource {
    /// The logged-in client, logging in first if there is no token or it has
    /// run out (a token file is then read again: the user may have logged in).
    pub(super) async fn client(&self, deadline: Instant) -> Result<Arc<VaultClient>> {
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
    /// the credential file: `bao login` at this server itself, since the
    /// shell's `VAULT_ADDR` may point at the proxy, which only reads.
    pub(super) fn relogin(&self) -> String {
        match &self.auth {
            Auth::TokenFile(path) if path.file_name() == Some(".vault-token".as_ref()) => format!(
                "log in again with `{}` (or `vault login`), which writes a new one there",
                login_command(&self.address)
            ),
            Auth::TokenFile(_) => "put a valid token there".into(),
            _ => "check the login's role and credential files".into(),
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
        let (grant, leases) = match adopted {
            Some((token, leases)) => match self.lookup(token, deadline).await {
                Ok(g) => {
                    tracing::info!(source = %self.name, "using the token handed over by init");
                    (g, leases.into_iter().collect())
                }
                Err(e) => {
                    tracing::info!(source = %self.name, error = %e, "the handed-over token does not work; logging in");
                    (self.login_retrying(deadline).await?, HashSet::new())
                }
            },
            None => (self.login_retrying(deadline).await?, HashSet::new()),
        };
        *self.login_state() = LoginState {
            refused: None,
            ends: grant.ttl.map(|t| Instant::now() + t),
        };
        let client =
            Arc::new(self.vaultrs(grant.token.expose_str().ok_or_else(|| {
                Error::data(format!("source {}: token is not text", self.name))
            })?)?);
        Ok(slot.insert(Session {
            client,
            token: grant.token,
            ttl: grant.ttl,
            renewable: grant.renewable,
            since: Instant::now(),
            leases,
        }))
    }

    /// Notes that `lease` was read with the token of `c` (if it is still the
    /// session's).
    pub(super) async fn took(&self, c: &Arc<VaultClient>, lease: &str) {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_mut().filter(|s| Arc::ptr_eq(&s.client, c)) {
            s.leases.insert(lease.to_owned());
        }
    }

    /// The leases read with the token of `c`, if it is the session's.
    pub(super) async fn leases_of(&self, c: &Arc<VaultClient>) -> HashSet<String> {
        let slot = self.session.lock().await;
        match slot.as_ref().filter(|s| Arc::ptr_eq(&s.client, c)) {
            Some(s) => s.leases.clone(),
            None => HashSet::new(),
        }
    }

    async fn login_retrying(&self, deadline: Instant) -> Result<Grant> {
        let r = paced(&self.gate, deadline, "login", || self.login()).await;
        // Refused, or the credential file is missing or empty: the user must act.
        if let Err(e @ (Error::Denied { .. } | Error::Config { .. })) = &r {
            self.login_state().refused = Some(e.to_string());
            self.count_lost_login();
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
    pub(super) async fn lookup_once(&self, token: &SecretBytes) -> Result<Grant> {
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

    /// The token of `used` was denied (revoked, expired, or its policy
    /// changed): its session is dropped, and what was read before is read
    /// again before the proxy serves it
    /// ([`login_epoch`](crate::source::Source::login_epoch)).
    pub(super) async fn denied(&self, used: &Arc<VaultClient>) {
        self.count_lost_login();
        self.forget_session(used).await;
    }

    fn count_lost_login(&self) {
        self.login_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Drops the token `used` (unless another call already replaced it) so
    /// the next call logs in again.
    pub(super) async fn forget_session(&self, used: &Arc<VaultClient>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(&s.client, used)) {
            *slot = None;
        }
    }

    /// Renews the token at `renew_at` of its lifetime, or logs in again when it
    /// cannot be renewed; returns how long until this should run again.
    pub(super) async fn keep_token(&self, renew_at: f64, deadline: Instant) -> Result<Duration> {
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
                    if granted.saturating_mul(2) >= ttl.as_secs() {
                        let session = slot.as_mut().ok_or_else(|| Error::data("no session"))?;
                        session.ttl = self::ttl(granted);
                        session.since = Instant::now();
                        self.login_state().ends = session.ttl.map(|t| session.since + t);
                        tracing::debug!(source = %self.name, ttl_s = granted, "token renewed");
                        return Ok(crate::clock::secs(granted).mul_f64(renew_at));
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

    /// Why the source cannot read now because its login is refused or its
    /// token has run out (see [`crate::source::Source::login_problem`]).
    pub(super) fn login_problem_now(&self) -> Option<String> {
        let state = self.login_state();
        if let Some(why) = &state.refused {
            return Some(why.clone());
        }
        state.ends.filter(|end| *end <= Instant::now())?;
        let what = match &self.auth {
            Auth::TokenFile(path) => format!("the token from {}", path.display()),
            _ => "its token".into(),
        };
        Some(format!("{what} has expired: {}", self.relogin()))
    }
}

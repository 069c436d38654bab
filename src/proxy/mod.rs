//! The local credential proxy: a hyper server on loopback that answers the
//! AWS Secrets Manager Agent API and Vault's KV read API from the sidecar's
//! refreshed state, for configured secrets only, and the few calls Vault
//! clients make before a read (the KV mount lookup, `lookup-self`,
//! `sys/health`). Every request but `/ping` and `sys/health` carries the token from `proxy.token_file` (compared in constant time);
//! GET only; `X-Forwarded-For` refused; accepted sockets get IPv4 TTL 1 / IPv6
//! hop limit 1 so an answer cannot be routed off the host; connections are
//! capped, slow or huge headers cut off ([`crate::http`]), and `refreshNow`
//! fetches at most once a second per secret.

pub mod command;
pub mod env;
pub(crate) mod route;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::{Choice, ConstantTimeEq};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::rotation::{RefreshNow, Refreshed};
use crate::engine::snapshot::{Snapshot, Snapshots};
use crate::exit::{Exit, ExitCode};
use crate::http;
use crate::os::trust;
use crate::secret::SecretBytes;
use crate::source::proxy_api::{Api, Entry, Found, Refusal};
use crate::source::PROXY_APIS;
use crate::telemetry::metrics::Metrics;
use route::{Index, Route, Shape};

/// Time allowed for a request's `refreshNow` (the AWS agent's request timeout
/// is 61 s); everything else answers from memory without waiting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(61);
/// Time allowed for a client to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// At shutdown, time a request in flight (a `refreshNow`) gets to finish.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read or created.
    #[error("proxy.token_file {path}: {source}")]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An existing token file could have been planted by someone else.
    #[error("proxy.token_file {path} is not trusted: {reason}")]
    Untrusted {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        #[source]
        reason: trust::Refused,
    },
    /// The address could not be bound.
    #[error(transparent)]
    Listen(#[from] http::CannotListen),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Token { .. } => Exit::Config,
            Error::Untrusted { .. } => Exit::NoPerm,
            Error::Listen(e) => e.exit(),
        }
    }
}

/// The AWS agent's token header (`X-Aws-Parameters-Secrets-Token`), and
/// Vault's (`X-Vault-Token`): a request's token is in the first one sent.
/// Names made once, not parsed from text at each lookup.
static AWS_TOKEN: HeaderName = HeaderName::from_static("x-aws-parameters-secrets-token");
static VAULT_TOKEN: HeaderName = HeaderName::from_static("x-vault-token");
/// The header a relaying proxy adds: such requests are refused.
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Largest token file read.
const MAX_TOKEN: u64 = 4096;

/// Reads the token, or creates the file with 32 random bytes in hex, mode
/// 0440 (`O_EXCL|O_NOFOLLOW`), so that a container sharing the volume can
/// read it. An existing file is used only when [`crate::os::trust`] allows: a
/// regular file owned by ramsecrets' euid or root, not group/other writable.
pub fn load_token(path: &Path) -> Result<SecretBytes, Error> {
    let rules = trust::Rules {
        root_may_own: true,
        memory_only: false,
    };
    match trust::read(rustix::fs::CWD, path, rules, MAX_TOKEN) {
        Ok(token) => {
            let text = token.expose_str().unwrap_or_default().trim();
            if text.is_empty() {
                return Err(Error::Token {
                    path: path.to_owned(),
                    source: std::io::Error::other("the token file is empty"),
                });
            }
            Ok(SecretBytes::copy_from(text))
        }
        Err(e) if e.is_missing() => create_token(path).map_err(|source| Error::Token {
            path: path.to_owned(),
            source,
        }),
        Err(trust::Refused::Io(source)) => Err(Error::Token {
            path: path.to_owned(),
            source,
        }),
        Err(reason) => Err(Error::Untrusted {
            path: path.to_owned(),
            reason,
        }),
    }
}

fn create_token(path: &Path) -> std::io::Result<SecretBytes> {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let mut token = SecretBytes::default();
    for b in raw {
        let _ = write!(token, "{b:02x}");
    }
    zeroize::Zeroize::zeroize(&mut raw);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o440)
        .open(path)?;
    f.write_all(token.expose())?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o440))?;
    tracing::info!(path = %path.display(), "created the proxy token file");
    Ok(token)
}

/// What the proxy keeps for one config: where its secrets are asked for, and
/// the bodies rendered so far, by secret index (a vector, not hashed per
/// request), in each shape asked for, with the revision each was made from.
/// A new config starts afresh.
#[derive(Default)]
struct Served {
    config: Option<Arc<Config>>,
    index: Arc<Index>,
    made: Vec<Vec<(Shape, u64, Bytes)>>,
}

impl Served {
    fn of(&self, config: &Arc<Config>) -> bool {
        self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, config))
    }
}

/// Shared state of the proxy.
pub struct Proxy {
    /// What the sidecar's engine publishes: the running config, its sources
    /// and the latest values.
    snapshots: Snapshots,
    served: RwLock<Served>,
    metrics: Arc<Metrics>,
    token: SecretBytes,
    /// Last `refreshNow` per secret; the lock makes concurrent refreshes share one fetch.
    refreshes: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
    /// The engine, which does every fetch: the proxy never fetches on its own.
    engine: tokio::sync::mpsc::Sender<RefreshNow>,
}

/// Whether `given` is the token, in a time that depends on their lengths
/// only: eight bytes at a time, each word compared as `subtle` does (one
/// optimisation barrier a word, not one a byte).
fn same(given: &[u8], token: &[u8]) -> bool {
    if given.len() != token.len() {
        return false;
    }
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or_default());
    let (a, b) = (given.chunks_exact(8), token.chunks_exact(8));
    let tail = a.remainder().ct_eq(b.remainder());
    let words = a
        .zip(b)
        .fold(Choice::from(1), |eq, (x, y)| eq & word(x).ct_eq(&word(y)));
    bool::from(words & tail)
}

/// A zeroizing body buffer that `Bytes` can share without copying.
struct Body(SecretBytes);

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.0.expose()
    }
}

fn text(status: StatusCode, msg: &'static str) -> Response<Full<Bytes>> {
    http::answer(status, http::TEXT, msg)
}

/// A JSON answer.
fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    http::answer(status, http::JSON, body)
}

/// A refusal in the shape of `api`.
fn refuse(api: Api, refusal: Refusal) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, Bytes::from(refusal.body(api)))
}

impl Proxy {
    /// A proxy over the engine's `snapshots`, asking `engine` for `refreshNow`.
    pub fn new(
        snapshots: Snapshots,
        metrics: Arc<Metrics>,
        token: SecretBytes,
        engine: tokio::sync::mpsc::Sender<RefreshNow>,
    ) -> Self {
        Proxy {
            snapshots,
            served: RwLock::default(),
            metrics,
            token,
            refreshes: tokio::sync::Mutex::new(HashMap::new()),
            engine,
        }
    }

    /// The latest snapshot.
    fn latest(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.served.read().unwrap_or_else(|p| p.into_inner())
    }

    /// What is kept for `view`'s config, made afresh if it is new.
    fn served_mut(&self, view: &Snapshot) -> std::sync::RwLockWriteGuard<'_, Served> {
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        if !served.of(&view.config) {
            *served = Served {
                config: Some(view.config.clone()),
                index: Arc::new(Index::new(&view.config)),
                made: vec![Vec::new(); view.config.secrets.len()],
            };
        }
        served
    }

    /// The [`Index`] of `view`'s config, made once per config.
    fn index(&self, view: &Snapshot) -> Arc<Index> {
        let served = self.served();
        if served.of(&view.config) {
            return served.index.clone();
        }
        drop(served);
        self.served_mut(view).index.clone()
    }

    /// The body made for `key` of `view`'s config from `revision`, if any.
    fn cached(&self, view: &Snapshot, key: (usize, Shape), revision: u64) -> Option<Bytes> {
        let served = self.served();
        if !served.of(&view.config) {
            return None;
        }
        let (secret, shape) = key;
        served
            .made
            .get(secret)?
            .iter()
            .find(|(s, rev, _)| *s == shape && *rev == revision)
            .map(|(_, _, b)| b.clone())
    }

    /// Keeps `body`, made for `key` of `view`'s config from `revision`.
    fn keep(&self, view: &Snapshot, key: (usize, Shape), revision: u64, body: Bytes) {
        let (secret, shape) = key;
        let mut served = self.served_mut(view);
        let Some(made) = served.made.get_mut(secret) else {
            return;
        };
        match made.iter_mut().find(|(s, ..)| *s == shape) {
            Some(kept) => *kept = (shape, revision, body),
            None => made.push((shape, revision, body)),
        }
    }

    /// Whether `given`, the token header sent, is the proxy's token.
    fn authorized(
        &self,
        given: Option<&HeaderValue>,
        api: Api,
        config: &Config,
    ) -> Result<(), Refusal> {
        let given = given.ok_or_else(|| Refusal::no_token(api))?;
        if same(given.as_bytes(), self.token.expose()) {
            Ok(())
        } else {
            Err(Refusal::bad_token(&crate::source::user_logins(config)))
        }
    }

    /// The answer to `req`, whose body is never read.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let view = self.latest();
        let index = self.index(&view);
        let route = route::route(&index, req.uri().path(), req.uri().query());
        let aws_token = req.headers().get(&AWS_TOKEN);
        let api = route.api(aws_token.is_some());
        if !route.open() {
            if req.method() != Method::GET {
                return refuse(
                    api,
                    Refusal::method(&crate::source::user_logins(&view.config)),
                );
            }
            if req.headers().contains_key(&FORWARDED_FOR) {
                return refuse(api, Refusal::forwarded());
            }
            let given = aws_token.or_else(|| req.headers().get(&VAULT_TOKEN));
            if let Err(refusal) = self.authorized(given, api, &view.config) {
                return refuse(api, refusal);
            }
        }
        let (secret, shape, refresh) = match route {
            Route::Ping => return text(StatusCode::OK, "healthy"),
            Route::Found { api: at, found } => match found {
                Found::Secret {
                    secret,
                    form,
                    refresh,
                    pin,
                } => {
                    let form = match pin {
                        None => form,
                        Some(pin) => {
                            let s = &view.config.secrets[secret];
                            let held = || view.of(&view.config, secret);
                            match PROXY_APIS[usize::from(at)].pinned(s, &pin, &held) {
                                Ok(form) => form,
                                Err(refusal) => return refuse(api, refusal),
                            }
                        }
                    };
                    (secret, Shape { api: at, form }, refresh)
                }
                Found::Answer { body, .. } => return json(StatusCode::OK, Bytes::from(body)),
                Found::Refused(refusal) => return refuse(api, refusal()),
                Found::Missing(what) => return refuse(api, Refusal::not_found(api, &what)),
            },
            Route::NotFound { what } => return refuse(api, Refusal::not_found(api, &what)),
        };
        let key = (secret, shape);
        let secret = &view.config.secrets[secret];
        // A refused or expired login (the developer's own token, say): what the
        // proxy holds was read with a login that no longer holds, so try again
        // now (credential files are read afresh), and say so if it still fails.
        // A refresh that finds the login revoked (403) says so too: no value
        // read with it is served, for any secret of its source; once the
        // source has logged in again, a value read before the refusal (an
        // older login epoch) is read again before it is served.
        let source = &view.sources[secret.source];
        let held = view.of(&view.config, key.0);
        let outdated = |e: &Entry| e.fetched.login_epoch < source.login_epoch();
        let refreshed =
            refresh || source.login_problem().is_some() || held.as_deref().is_some_and(outdated);
        // Boxed: the rare wait for a fetch is not carried (and copied) in
        // every request's future.
        if refreshed
            && Box::pin(tokio::time::timeout(REQUEST_TIMEOUT, self.refresh(secret)))
                .await
                .is_err()
        {
            return refuse(api, Refusal::timeout(&secret.name));
        }
        if let Some(why) = source.login_problem() {
            let name = &view.config.sources[secret.source].name;
            return refuse(api, Refusal::login(name, &why));
        }
        // The value after any refresh, of the secret of this name.
        let entry = if refreshed {
            self.latest().of(&view.config, key.0)
        } else {
            held
        };
        let Some(entry) = entry else {
            return refuse(api, Refusal::not_fetched(&secret.name));
        };
        if outdated(&entry) {
            return refuse(api, Refusal::not_read_again(&secret.name));
        }
        let body = match self.cached(&view, key, entry.revision) {
            Some(b) => {
                self.metrics.proxy_cache_hit();
                b
            }
            None => match PROXY_APIS[usize::from(shape.api)].body(secret, &entry, shape.form) {
                Ok(b) => {
                    let b = Bytes::from_owner(Body(b));
                    self.keep(&view, key, entry.revision, b.clone());
                    b
                }
                Err(e) => {
                    tracing::warn!(secret = %secret.name, error = %e, "cannot answer for this secret");
                    return refuse(api, Refusal::unservable(&secret.name));
                }
            },
        };
        json(StatusCode::OK, body)
    }

    /// Has the engine fetch `secret` now (its files written too), at most once
    /// a second; callers arriving meanwhile wait for that fetch and share it.
    /// A leased or issued secret is not fetched: what the engine holds is served.
    async fn refresh(&self, secret: &crate::config::Secret) {
        let slot = self
            .refreshes
            .lock()
            .await
            .entry(secret.name.clone())
            .or_default()
            .clone();
        let mut last = slot.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let request = RefreshNow {
            secret: secret.name.clone(),
            done,
        };
        let outcome = match self.engine.send(request).await {
            Ok(()) => answer.await.unwrap_or(Refreshed::Unknown),
            Err(_) => Refreshed::Unknown,
        };
        match outcome {
            Refreshed::Fetched(ok) => {
                if !ok {
                    tracing::warn!(secret = %secret.name, "refreshNow failed; the value held is served while the source's login holds");
                }
                self.metrics.proxy_refresh(ok);
            }
            Refreshed::Held => {
                tracing::debug!(secret = %secret.name, "refreshNow on a leased or issued secret: serving what the sidecar holds");
            }
            Refreshed::Unknown => self.metrics.proxy_refresh(false),
        }
        *last = Some(Instant::now());
    }
}

/// Plain TCP whose connections over the cap are counted as 429 answers.
struct Counted(Arc<Metrics>);

impl http::Transport for Counted {
    type Io = TcpStream;

    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }

    async fn busy(&self, tcp: TcpStream) {
        self.0.proxy_request(429);
        http::too_many(tcp).await;
    }
}

/// Binds `listen` and serves until `stop`, at most `max_connections` at once.
pub async fn serve(
    proxy: Arc<Proxy>,
    cfg: &crate::config::Proxy,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let addr = cfg.listen;
    let listener = http::bind("proxy.listen", addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the proxy listens beyond loopback (allow_remote: true)");
    }
    tracing::info!(%addr, "proxy listening");
    let limits = http::Limits {
        max_connections: cfg.max_connections,
        header_timeout: HEADER_TIMEOUT,
        max_head: MAX_HEAD,
        one_hop: true,
        grace: DRAIN_GRACE,
        evict_waiting: false,
    };
    let transport = Counted(proxy.metrics.clone());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        async move {
            let r = proxy.handle(req).await;
            proxy.metrics.proxy_request(r.status().as_u16());
            Ok::<_, Infallible>(r)
        }
    });
    Ok(http::serve(
        "proxy", listener, transport, service, limits, stop,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_compared_whole() {
        let token = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
        assert!(same(token, token));
        assert!(same(b"", b""));
        for at in 0..token.len() {
            let mut other = *token;
            other[at] ^= 1;
            assert!(!same(&other, token), "byte {at}");
        }
        assert!(!same(&token[..62], token));
        assert!(!same(token, &token[..8]));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd"));
    }

    #[test]
    fn each_start_error_has_its_exit_code() {
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let token = Error::Token {
            path: "/run/t".into(),
            source: io(),
        };
        let untrusted = Error::Untrusted {
            path: "/run/t".into(),
            reason: trust::Refused::Symlink,
        };
        let listen = Error::Listen(http::CannotListen {
            key: "proxy.listen",
            addr: ([127, 0, 0, 1], 8200).into(),
            source: io(),
        });
        assert_eq!(token.exit(), Exit::Config);
        assert_eq!(untrusted.exit(), Exit::NoPerm);
        assert_eq!(listen.exit(), Exit::OsErr);
    }
}

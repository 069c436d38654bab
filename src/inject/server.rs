//! The injector's HTTPS server, on the shared [`crate::http`] loop with a
//! rustls transport (HTTP/2 or HTTP/1.1, as the client's ALPN chooses; on a
//! runtime with a worker per core): `POST /mutate` unwraps an AdmissionReview, asks
//! [`super::mutate::mutate`] and wraps the answer; `/healthz`, `/readyz` and
//! `/metrics` beside it from the one health router ([`crate::telemetry::health`]). Startup: the API server's version (unless set), the
//! certificate (files, reloaded; or made, with the CA patched into the webhook
//! configuration), then serving until SIGTERM, with a drain.
//!
//! Slow or greedy clients cannot starve it ([`Reads`]): a body must arrive
//! in time, the bytes buffered across all connections are capped, and when
//! connections or bytes run out the oldest connection still sending is
//! closed to make room; overload is answered inside TLS.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube_core::DynamicObject;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::apiserver::ApiServer;
use super::tls::{self, Current};
use super::{mutate, Error, Injector};
use crate::config::inject::InjectTls;
use crate::config::Config;
use crate::http::{self, Limits, Transport};
use crate::os::signals::Signals;
use crate::telemetry::admission::Admission;
use crate::telemetry::health;

/// The largest AdmissionReview read (the API server's own request limit is 3 MiB).
const MAX_BODY: usize = 3 << 20;
/// How review bodies are read.
struct Reads {
    /// Time a review's body has to arrive once its head has.
    body_timeout: Duration,
    /// Review bytes held across all connections, as permits.
    budget: Arc<Semaphore>,
}

impl Reads {
    /// The API server sends a body at once (its own timeout is at most 30 s);
    /// 8 MiB of bodies fit the chart's 64Mi memory limit (a buffer may hold
    /// up to twice what it counts).
    fn new() -> Reads {
        Reads {
            body_timeout: Duration::from_secs(5),
            budget: Arc::new(Semaphore::new(8 << 20)),
        }
    }
}
/// How long a body waits for the bytes of a connection closed to make room.
const ROOM_WAIT: Duration = Duration::from_secs(1);
const LIMITS: Limits = Limits {
    max_connections: 256,
    header_timeout: Duration::from_secs(10),
    max_head: 16 * 1024,
    one_hop: false,
    grace: Duration::from_secs(10),
    evict_waiting: true,
};

/// An overload answer, written inside TLS.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// TLS over TCP: HTTP/2 or HTTP/1.1 by ALPN; and the same certificate with
/// HTTP/1.1 alone, for the overload answer.
struct Tls {
    serve: TlsAcceptor,
    busy: TlsAcceptor,
}

impl Tls {
    fn new(config: Arc<rustls::ServerConfig>) -> Tls {
        let mut http1 = (*config).clone();
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Tls {
            serve: TlsAcceptor::from(config),
            busy: TlsAcceptor::from(Arc::new(http1)),
        }
    }
}

impl Transport for Tls {
    type Io = TlsStream<TcpStream>;

    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<Self::Io> {
        self.serve.accept(tcp).await
    }

    /// The API server speaks TLS here: a plaintext answer would only be a
    /// handshake failure to it (and an HTTP/1.1 one on HTTP/2, a protocol error).
    async fn busy(&self, tcp: TcpStream) {
        if let Ok(mut tls) = self.busy.accept(tcp).await {
            let _ = tls.write_all(BUSY).await;
            let _ = tls.shutdown().await;
        }
    }

    fn http2(io: &Self::Io) -> bool {
        io.get_ref().1.alpn_protocol() == Some(b"h2")
    }
}

/// Why a review's body was not read.
#[derive(Debug, PartialEq, Eq)]
enum Unread {
    TooLarge,
    Slow,
    Busy,
    Broken,
}

impl Unread {
    fn answer(&self) -> Response<Full<Bytes>> {
        let (status, why) = match self {
            Unread::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "the review is over 3 MiB\n"),
            Unread::Slow => (
                StatusCode::REQUEST_TIMEOUT,
                "the review's body came too slowly\n",
            ),
            Unread::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many review bytes in flight\n",
            ),
            Unread::Broken => (StatusCode::BAD_REQUEST, "the review's body broke off\n"),
        };
        let mut r = http::answer(status, http::TEXT, why);
        if *self == Unread::Busy {
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// Reads a review's body: at most [`MAX_BODY`] bytes in time, each byte held
/// counted against the budget (shared by every connection) until the
/// returned permit drops.
async fn read_body(
    mut body: Incoming,
    reads: &Reads,
    connection: Option<&http::Connection>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), Unread> {
    let read = async {
        let (mut bytes, mut held) = (Vec::new(), None::<OwnedSemaphorePermit>);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > MAX_BODY {
                return Err(Unread::TooLarge);
            }
            let permit = take(&reads.budget, data.len(), connection).await?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            bytes.extend_from_slice(&data);
        }
        Ok((bytes, held))
    };
    tokio::time::timeout(reads.body_timeout, read)
        .await
        .unwrap_or(Err(Unread::Slow))
}

/// `n` bytes of `budget`; when it is spent, the oldest other connection not
/// being answered is closed for the bytes it holds.
async fn take(
    budget: &Arc<Semaphore>,
    n: usize,
    connection: Option<&http::Connection>,
) -> Result<OwnedSemaphorePermit, Unread> {
    // At most MAX_BODY, which fits.
    let n = u32::try_from(n).map_err(|_| Unread::TooLarge)?;
    loop {
        if let Ok(p) = budget.clone().try_acquire_many_owned(n) {
            return Ok(p);
        }
        if !connection.is_some_and(http::Connection::make_room) {
            return Err(Unread::Busy);
        }
        let freed = tokio::time::timeout(ROOM_WAIT, budget.clone().acquire_many_owned(n)).await;
        if let Ok(Ok(p)) = freed {
            return Ok(p);
        }
    }
}

/// The answer to a review body, as JSON: always a review (an unreadable one
/// gets an `invalid` response, which the API server treats as a refusal).
pub fn review(injector: &Injector, body: &[u8]) -> (Vec<u8>, &'static str) {
    let (review, result) = decide(injector, body);
    (encode(review), result)
}

/// The review as the API defines it: the patch is base64 text (kube-core
/// writes its bytes as a JSON array of numbers, twice as long).
fn encode(review: AdmissionReview<DynamicObject>) -> Vec<u8> {
    let patch = review.response.as_ref().and_then(|r| r.patch.as_deref());
    let Some(patch) = patch.map(|p| base64::engine::general_purpose::STANDARD.encode(p)) else {
        return serde_json::to_vec(&review).unwrap_or_default();
    };
    let mut v = serde_json::to_value(&review).unwrap_or_default();
    v["response"]["patch"] = Value::String(patch);
    serde_json::to_vec(&v).unwrap_or_default()
}

fn decide(injector: &Injector, body: &[u8]) -> (AdmissionReview<DynamicObject>, &'static str) {
    let request: Result<AdmissionRequest<DynamicObject>, String> =
        serde_json::from_slice::<AdmissionReview<DynamicObject>>(body)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.try_into()
                    .map_err(|e: kube_core::admission::ConvertAdmissionReviewError| e.to_string())
            });
    match request {
        Ok(req) => {
            let response = mutate::mutate(injector, &req);
            let result = match (response.allowed, response.patch.is_some()) {
                (false, _) => "denied",
                (true, true) => "patched",
                (true, false) => "unchanged",
            };
            if !response.allowed {
                tracing::info!(namespace = req.namespace.as_deref().unwrap_or_default(), reason = %response.result.message, "pod denied");
            }
            (response.into_review(), result)
        }
        Err(e) => (
            AdmissionResponse::invalid(format!("not an AdmissionReview of a Pod: {e}"))
                .into_review(),
            "invalid",
        ),
    }
}

async fn route(
    req: Request<Incoming>,
    injector: Arc<Injector>,
    metrics: Arc<Admission>,
    reads: Arc<Reads>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/mutate") => {
            let connection = req.extensions().get::<http::Connection>().cloned();
            let (body, _held) = match read_body(req.into_body(), &reads, connection.as_ref()).await
            {
                Ok(read) => read,
                Err(unread) => return unread.answer(),
            };
            if let Some(c) = &connection {
                c.answering();
            }
            let started = Instant::now();
            let (json, result) = review(&injector, &body);
            metrics.answered(result, started.elapsed());
            http::answer(StatusCode::OK, http::JSON, json)
        }
        _ => health::route(&req, &*metrics),
    }
}

/// Serves the webhook of `injector` on `listener` until `stop`, then drains.
fn serve(
    listener: TcpListener,
    server_config: Arc<rustls::ServerConfig>,
    injector: Arc<Injector>,
    (limits, reads): (Limits, Reads),
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let metrics = Arc::new(Admission::default());
    let reads = Arc::new(reads);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (injector, metrics, reads) = (injector.clone(), metrics.clone(), reads.clone());
        async move { Ok::<_, Infallible>(route(req, injector, metrics, reads).await) }
    });
    http::serve(
        "inject",
        listener,
        Tls::new(server_config),
        service,
        limits,
        stop,
    )
}

/// `ramsecrets inject`: loads the config at `path` and runs its injector;
/// returns the exit code.
pub fn command(path: &std::path::Path) -> Result<u8, crate::exit::Failure> {
    let config = Config::load(path)?;
    crate::os::process::runtime_on_every_core()?.block_on(run(config))?;
    Ok(crate::exit::Exit::Ok.code())
}

/// Runs the injector of `config` until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), Error> {
    // Before any call to the API server, so that SIGTERM stops start-up too.
    let signals = Signals::install(false).map_err(Error::Signals)?;
    let settings = config.inject.clone().ok_or(Error::NoSection)?;
    let api = || ApiServer::new(&settings.kubernetes);
    let version = match settings.kubernetes_version {
        Some(v) => v,
        None => api()?.version().await?,
    };
    let injector = Arc::new(Injector::new(&config, version)?);
    tracing::info!(
        kubernetes = %format!("{}.{}", version.0, version.1),
        native_sidecar = injector.native_sidecar,
        sources = injector.sources.len(),
        "injector settings loaded"
    );
    let stop = CancellationToken::new();
    let current = match &settings.tls {
        InjectTls::Files {
            cert_file,
            key_file,
        } => {
            let current = Current::new(tls::load(cert_file, key_file)?);
            tokio::spawn(tls::reload(
                current.clone(),
                cert_file.clone(),
                key_file.clone(),
                stop.clone(),
            )?);
            current
        }
        InjectTls::Auto { webhook, names } => {
            let made = tls::generate(names)?;
            let api = Arc::new(api()?);
            let webhooks = api.patch_ca_bundle(webhook, &made.ca_pem).await?;
            tracing::info!(webhook = %webhook, webhooks, "CA bundle patched into the webhook configuration");
            let current = Current::new(made.key);
            let webhook = webhook.clone();
            let trust = move |ca: String| {
                let (api, webhook) = (api.clone(), webhook.clone());
                async move { api.patch_ca_bundle(&webhook, &ca).await.map(drop) }
            };
            tokio::spawn(tls::renew(
                current.clone(),
                names.clone(),
                made.valid,
                tls::Renewal::default(),
                trust,
                stop.clone(),
            ));
            current
        }
    };
    let server_config = tls::server_config(current).map_err(|e| {
        Error::Tls(tls::Error::Pem {
            path: "(serving certificate)".into(),
            why: e.to_string(),
        })
    })?;
    let listener = http::bind("inject.listen", settings.listen).await?;
    tracing::info!(addr = %settings.listen, "admission webhook listening");
    let server = serve(
        listener,
        server_config,
        injector,
        (LIMITS, Reads::new()),
        stop.clone(),
    );
    signals.stopped().await;
    tracing::info!("stopping: draining admission requests");
    stop.cancel();
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

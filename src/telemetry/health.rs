//! The one health and metrics router, for the sidecar and the injector:
//! `/healthz` (alive), `/readyz` (the sidecar: 200 once every secret has been
//! written, a native sidecar's startup probe; the injector: once it listens),
//! `/metrics` (the process's [`super::registry::Registry`]). The sidecar serves
//! it on `health.listen` ([`serve`], with the limits of [`crate::http`]:
//! connections, header time and size); the injector beside `/mutate`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::http::{self, answer, TEXT};

/// What a process tells its probes and scrapers.
pub trait Health: Send + Sync {
    /// Whether `/readyz` answers 200.
    fn ready(&self) -> bool;
    /// The `/metrics` text.
    fn render(&self) -> String;
}

/// The answer to a probe or a scrape of `health`.
pub fn route<B>(req: &Request<B>, health: &dyn Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => answer(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" if health.ready() => answer(StatusCode::OK, TEXT, "ready\n"),
        "/readyz" => answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n"),
        "/metrics" => answer(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            health.render(),
        ),
        _ => answer(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// What the endpoint allows: probes and scrapes are few and small.
const LIMITS: http::Limits = http::Limits {
    max_connections: 32,
    header_timeout: Duration::from_secs(5),
    max_head: 16 * 1024,
    one_hop: false,
    grace: Duration::from_secs(2),
    // On a pod's IP: slow clients there must not lock out the kubelet's probe.
    evict_waiting: true,
};

/// Binds `addr` now (so a bad address fails at start) and serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, http::CannotListen> {
    let listener = http::bind("health.listen", addr).await?;
    tracing::info!(%addr, "health endpoint listening");
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = route(&req, &*metrics);
        async move { Ok::<_, Infallible>(r) }
    });
    Ok(http::serve(
        "health",
        listener,
        http::Plain,
        service,
        LIMITS,
        stop,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::admission::Admission;

    async fn get(method: Method, path: &str, health: &dyn Health) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        let r = route(&req, health);
        let status = r.status();
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_sidecar_and_the_injector_answer_the_same_routes() {
        let sidecar = Metrics::new(false);
        let injector = Admission::default();
        for (health, series) in [
            (&sidecar as &dyn Health, "ramsecrets_ready 0"),
            (
                &injector,
                "ramsecrets_admission_reviews_total{result=\"patched\"} 0",
            ),
        ] {
            assert_eq!(get(Method::GET, "/healthz", health).await.0, StatusCode::OK);
            let (status, text) = get(Method::GET, "/metrics", health).await;
            assert!(status == StatusCode::OK && text.contains(series), "{text}");
            assert_eq!(
                get(Method::HEAD, "/nope", health).await.0,
                StatusCode::NOT_FOUND
            );
            let post = get(Method::POST, "/metrics", health).await.0;
            assert_eq!(post, StatusCode::METHOD_NOT_ALLOWED);
        }
        assert_eq!(
            get(Method::GET, "/readyz", &sidecar).await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
        );
        sidecar.set_ready(true);
        assert_eq!(
            get(Method::GET, "/readyz", &sidecar).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(Method::GET, "/readyz", &injector).await.0,
            StatusCode::OK
        );
    }
}

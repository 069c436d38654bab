//! The health endpoint, on hyper: `/healthz` (alive), `/readyz` (200 once every
//! secret has been written: a native sidecar's startup probe), `/metrics`;
//! with the limits of [`crate::http`] (connections, header time and size).

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

fn route(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => answer(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" if metrics.is_ready() => answer(StatusCode::OK, TEXT, "ready\n"),
        "/readyz" => answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n"),
        "/metrics" => answer(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
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
        let r = route(&req, &metrics);
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

//! One HTTP server loop for the health endpoint, the proxy and the
//! admission webhook (HTTP/1.1, and HTTP/2 where the [`Transport`] says the
//! client chose it, as TLS's ALPN does): a connection cap (over it the [`Transport`] answers 429
//! or closes; or, with [`Limits::evict_waiting`], the oldest connection still
//! waiting for its client is closed to make room, so slow clients cannot lock
//! out a prompt one), a header read timeout and a head size limit, a backoff when the
//! process runs out of descriptors instead of a spinning accept loop, optional
//! single-hop sockets (IPv4 TTL 1, IPv6 hop limit 1), and a graceful drain on
//! shutdown. TLS layers on as a [`Transport`] whose `wrap` does the handshake.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::exit::{Exit, ExitCode};

/// The smallest head limit hyper accepts (its initial read buffer).
const MIN_HEAD: usize = 8192;
/// Requests at once on one HTTP/2 connection (hyper's default).
const MAX_STREAMS: u32 = 200;
/// Overload answers ([`Transport::busy`]) under way at once; past them a
/// connection is closed without one.
const BUSY_ANSWERS: usize = 64;
/// The accept loop's pauses while descriptors run out: 10 ms doubling to 1 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(10),
    cap: Duration::from_secs(1),
};

/// A server that cannot bind its address (in use, not local, not allowed):
/// the one "cannot listen" error of the health endpoint and the proxy.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {key} {addr}: {source}")]
pub struct CannotListen {
    /// The config key that gives the address, e.g. `health.listen`.
    pub key: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl ExitCode for CannotListen {
    fn exit(&self) -> Exit {
        Exit::OsErr
    }
}

/// Binds `addr`, which the config gives as `key`.
pub async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, CannotListen> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CannotListen { key, addr, source })
}

/// `text/plain` for [`answer`].
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `application/json` for [`answer`].
pub const JSON: &str = "application/json";

/// An answer of `status` with `body` of `content_type`: the one way the
/// health endpoint, the proxy and the webhook build a response.
pub fn answer(
    status: hyper::StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// What one server allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; the ones over it get [`Transport::busy`].
    pub max_connections: usize,
    /// Time a client has to send each request head (and a transport to wrap
    /// the socket); an idle HTTP/1.1 keep-alive connection is closed after it
    /// too. An idle HTTP/2 connection stays open (the API server keeps one for
    /// all its calls) until the client closes it or it is evicted.
    pub header_timeout: Duration,
    /// Largest request head, in bytes (at least 8 KiB; HTTP/2: its header list).
    pub max_head: usize,
    /// Accepted sockets get IPv4 TTL 1 / IPv6 hop limit 1, so an answer cannot
    /// be routed off the host.
    pub one_hop: bool,
    /// At shutdown, time in-flight requests get to finish before they are cut.
    pub grace: Duration,
    /// When every connection slot is taken, close the oldest connection that
    /// is not being answered (still in its handshake, head or body, or idle)
    /// to make room, instead of turning the new one away. Handlers mark a
    /// request as being answered with [`Connection::answering`], found in its
    /// extensions; an HTTP/2 connection is being answered while it has any
    /// request open, so only an idle one is closed.
    pub evict_waiting: bool,
}

/// One open connection's place in [`Slots`].
#[derive(Clone)]
struct Slot {
    /// Closes the connection: cancelled to make room, or with the server's
    /// shutdown token, whose child it is (one token for its task to wait on).
    close: CancellationToken,
    /// Its requests being answered.
    answering: Arc<AtomicUsize>,
}

/// The open connections, oldest first: the cap, and whom to close to make room.
struct Slots {
    max: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Slot>>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Slot>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection, closed too when `shutdown` is cancelled:
    /// `None` when all are taken and, with `evict`, none is waiting for its
    /// client.
    fn admit(self: &Arc<Self>, evict: bool, shutdown: &CancellationToken) -> Option<Connection> {
        let mut open = self.lock();
        if open.len() >= self.max && !(evict && Slots::evict(&mut open, None)) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            close: shutdown.child_token(),
            answering: Arc::new(AtomicUsize::new(0)),
        };
        open.insert(id, slot.clone());
        Some(Connection {
            id,
            slot,
            slots: self.clone(),
            request: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Closes the oldest connection (other than `except`) not being answered.
    fn evict(open: &mut BTreeMap<u64, Slot>, except: Option<u64>) -> bool {
        let victim = open
            .iter()
            .find(|(id, s)| Some(**id) != except && s.answering.load(Ordering::Relaxed) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(slot) => {
                slot.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// The connection a request came on, in the request's extensions when the
/// server runs with [`Limits::evict_waiting`].
#[derive(Clone)]
pub struct Connection {
    id: u64,
    slot: Slot,
    slots: Arc<Slots>,
    /// Whether its request is being answered.
    request: Arc<AtomicBool>,
}

impl Connection {
    /// Its request has been read and is being answered: it is not closed to
    /// make room until the answer is out.
    pub fn answering(&self) {
        if !self.request.swap(true, Ordering::Relaxed) {
            self.slot.answering.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the oldest other connection not being answered, for what it
    /// holds (its slot, the bytes it buffered); false when there is none.
    pub fn make_room(&self) -> bool {
        Slots::evict(&mut self.slots.lock(), Some(self.id))
    }
}

/// Ends a request's [`Connection::answering`] once answered or dropped (reset).
struct Answered(Connection);

impl Drop for Answered {
    fn drop(&mut self) {
        if self.0.request.load(Ordering::Relaxed) {
            self.0.slot.answering.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Frees a connection's slot when its task ends.
struct Release(Connection);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.slots.lock().remove(&self.0.id);
    }
}

/// How an accepted socket becomes the stream HTTP is spoken over.
pub trait Transport: Send + Sync + 'static {
    /// The stream: the socket itself, or a TLS stream over it.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Wraps an accepted socket (a TLS handshake goes here); bounded by
    /// [`Limits::header_timeout`].
    fn wrap(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;

    /// Answers a connection over [`Limits::max_connections`] before it is
    /// closed: by default a plain `429 Too Many Requests`.
    fn busy(&self, tcp: TcpStream) -> impl Future<Output = ()> + Send {
        too_many(tcp)
    }

    /// Whether the client chose HTTP/2 on `io` (by TLS's ALPN); otherwise
    /// HTTP/1.1 is spoken.
    fn http2(_io: &Self::Io) -> bool {
        false
    }
}

/// Plain HTTP over TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Transport for Plain {
    type Io = TcpStream;

    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Writes a bare `429 Too Many Requests` and closes.
pub async fn too_many(mut tcp: TcpStream) {
    let _ = tcp
        .write_all(
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
    let _ = tcp.shutdown().await;
}

/// IPv4 TTL 1 or IPv6 hop limit 1 on `tcp`.
fn one_hop(tcp: &TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    match peer {
        SocketAddr::V4(_) => tcp.set_ttl(1),
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => tcp.set_ttl(1),
        SocketAddr::V6(_) => Ok(rustix::net::sockopt::set_ipv6_unicast_hops(tcp, Some(1))?),
    }
}

/// Whether an accept error means the process or system is out of descriptors
/// or buffers: retrying at once would spin.
fn exhausted(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    Errno::from_io_error(e)
        .is_some_and(|n| [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&n))
}

/// Serves `service` on `listener` until `shutdown`, then stops accepting, lets
/// in-flight requests finish within [`Limits::grace`] (says so when it had to
/// cut them), and resolves. `name` names the server in logs.
pub fn serve<T, S, B>(
    name: &'static str,
    listener: TcpListener,
    transport: T,
    service: S,
    limits: Limits,
    shutdown: CancellationToken,
) -> JoinHandle<()>
where
    T: Transport,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let transport = Arc::new(transport);
    let slots = Arc::new(Slots {
        max: limits.max_connections,
        next: AtomicU64::new(0),
        open: Mutex::new(BTreeMap::new()),
    });
    let busy = Arc::new(Semaphore::new(BUSY_ANSWERS));
    let tracker = TaskTracker::new();
    let force = CancellationToken::new();
    tokio::spawn(async move {
        let mut pauses = 0;
        let mut starved = false;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) if exhausted(&e) => {
                    if !starved {
                        tracing::warn!(server = name, error = %e, "cannot accept connections; backing off until descriptors are free");
                        starved = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(BACKOFF.full(pauses)) => {}
                    }
                    pauses = pauses.saturating_add(1);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(server = name, error = %e, "accept failed");
                    continue;
                }
            };
            if starved {
                tracing::info!(server = name, "accepting connections again");
                (starved, pauses) = (false, 0);
            }
            if limits.one_hop {
                if let Err(e) = one_hop(&tcp, peer) {
                    tracing::debug!(server = name, error = %e, "cannot limit the socket to one hop; closing it");
                    continue;
                }
            }
            let _ = tcp.set_nodelay(true);
            let transport = transport.clone();
            let Some(connection) = slots.admit(limits.evict_waiting, &shutdown) else {
                if let Ok(answer) = busy.clone().try_acquire_owned() {
                    tracker.spawn(async move {
                        let _answer = answer;
                        let _ =
                            tokio::time::timeout(limits.header_timeout, transport.busy(tcp)).await;
                    });
                }
                continue;
            };
            let (service, shutdown, force) = (service.clone(), shutdown.clone(), force.clone());
            tracker.spawn(async move {
                let close = connection.slot.close.clone();
                let mine = limits.evict_waiting.then(|| connection.clone());
                let _release = Release(connection);
                let io = tokio::select! {
                    _ = close.cancelled() => return,
                    io = tokio::time::timeout(limits.header_timeout, transport.wrap(tcp)) => match io {
                        Ok(Ok(io)) => io,
                        Ok(Err(e)) => {
                            tracing::debug!(server = name, error = %e, "connection set-up failed");
                            return;
                        }
                        Err(_) => return,
                    },
                };
                // Each request is waiting for its client until its handler
                // says it is being answered, and again once answered. An
                // HTTP/2 one is answered from its start: its connection carries
                // others (all the API server's), so only an idle one is closed.
                let http2 = T::http2(&io);
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let answered = mine.as_ref().map(|c| {
                        let request = Arc::new(AtomicBool::new(false));
                        let c = Connection { request, ..c.clone() };
                        if http2 {
                            c.answering();
                        }
                        req.extensions_mut().insert(c.clone());
                        Answered(c)
                    });
                    let answer = service.call(req);
                    async move {
                        let response = answer.await;
                        drop(answered);
                        response
                    }
                });
                let builder = builder(&limits, http2);
                let conn = builder.serve_connection(TokioIo::new(io), service);
                tokio::pin!(conn);
                // One token to wait on while requests come and go: `close`
                // is cancelled to make room (closed at once) and by the
                // shutdown (drained).
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = close.cancelled() => {}
                }
                if !shutdown.is_cancelled() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn => {}
                    _ = force.cancelled() => {}
                }
            });
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(limits.grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                server = name,
                connections = tracker.len(),
                "requests still open after the grace period were cut"
            );
            force.cancel();
            tracker.wait().await;
        }
    })
}

/// The timer of one HTTP/1.1 connection, whose only timer is hyper's header
/// read timeout, asked for anew at each request head and dropped once the
/// head is in: one tokio `Sleep` for the connection, moved to each new
/// deadline (an atomic store while deadlines only move later), instead of a
/// new one put into and taken out of the runtime's timer wheel per request.
/// hyper's HTTP/1.1 server holds one such sleep at a time.
#[derive(Clone)]
struct HeadTimer(Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>);

impl HeadTimer {
    /// A timer for a connection whose first head is due within `timeout`.
    fn new(timeout: Duration) -> Self {
        HeadTimer(Arc::new(Mutex::new(Box::pin(tokio::time::sleep(timeout)))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pin<Box<tokio::time::Sleep>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.lock()
            .as_mut()
            .reset(tokio::time::Instant::from_std(deadline));
        Box::pin(HeadTimer(self.0.clone()))
    }
}

impl Future for HeadTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.lock().as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadTimer {}

/// A connection's server: HTTP/2 when the transport says so, else HTTP/1.1
/// (answers written with one `write`: a head and a small body copied into one
/// buffer cost less than a vectored write of the two).
fn builder(limits: &Limits, http2: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(HeadTimer::new(limits.header_timeout))
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head.max(MIN_HEAD))
        .writev(false)
        .auto_date_header(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .auto_date_header(false);
    match http2 {
        true => builder.http2_only(),
        false => builder.http1_only(),
    }
}

#[cfg(test)]
mod tests;

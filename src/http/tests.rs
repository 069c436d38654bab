//! The server loop's own tests: hop limits, the connection cap, head limits and timeouts, the drain,
//! and which connections are closed to make room.

use super::*;
use std::convert::Infallible;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::AsyncReadExt;

const LIMITS: Limits = Limits {
    max_connections: 2,
    header_timeout: Duration::from_secs(5),
    max_head: 16 * 1024,
    one_hop: true,
    grace: Duration::from_secs(30),
    evict_waiting: false,
};

/// Plain TCP that records the hop limit each socket had when wrapped.
#[derive(Default)]
struct Recorder(Arc<Mutex<Vec<u32>>>);

impl Transport for Recorder {
    type Io = TcpStream;

    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        let hops = match tcp.local_addr()? {
            SocketAddr::V4(_) => tcp.ttl()?,
            SocketAddr::V6(_) => u32::from(rustix::net::sockopt::ipv6_unicast_hops(&tcp)?),
        };
        self.0.lock().unwrap().push(hops);
        Ok(tcp)
    }
}

/// Answers `ok`; on /slow, says it `entered` and waits for `wait`.
fn service(
    wait: CancellationToken,
    entered: Arc<tokio::sync::Notify>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let (wait, entered) = (wait.clone(), entered.clone());
        async move {
            if req.uri().path() == "/slow" {
                entered.notify_one();
                wait.cancelled().await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// A running test server.
struct Test {
    addr: SocketAddr,
    stop: CancellationToken,
    release: CancellationToken,
    entered: Arc<tokio::sync::Notify>,
    handle: JoinHandle<()>,
}

impl Test {
    async fn start<T: Transport>(addr: &str, transport: T, limits: Limits) -> Test {
        let listener = TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let (stop, release) = (CancellationToken::new(), CancellationToken::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let svc = service(release.clone(), entered.clone());
        let handle = serve("test", listener, transport, svc, limits, stop.clone());
        Test {
            addr: local,
            stop,
            release,
            entered,
            handle,
        }
    }

    /// Stops the server and waits (generously) for its drain.
    async fn stopped(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the server did not stop")
            .unwrap();
    }
}

#[tokio::test]
async fn accepted_sockets_get_one_hop_on_ipv4_and_ipv6() {
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let t = Test::start(addr, Recorder(seen.clone()), LIMITS).await;
        assert!(get(t.addr, "/").await.starts_with("HTTP/1.1 200"));
        assert_eq!(*seen.lock().unwrap(), [1], "{addr}");
        t.stopped().await;
    }
}

#[tokio::test]
async fn connections_over_the_cap_get_429_until_one_frees() {
    let t = Test::start("127.0.0.1:0", Plain, LIMITS).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::spawn(get(t.addr, "/slow")));
        t.entered.notified().await;
    }
    assert!(get(t.addr, "/").await.starts_with("HTTP/1.1 429"));
    t.release.cancel();
    for h in held {
        assert!(h.await.unwrap().starts_with("HTTP/1.1 200"));
    }
    assert!(get(t.addr, "/").await.starts_with("HTTP/1.1 200"));
    t.stopped().await;
}

#[tokio::test]
async fn a_huge_head_gets_431_and_the_server_serves_on() {
    let t = Test::start("127.0.0.1:0", Plain, LIMITS).await;
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = s.write_all(head.as_bytes()).await;
    // What came before the server closed (a reset after it is ignored).
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 431"), "{out:?}");
    assert!(get(t.addr, "/").await.starts_with("HTTP/1.1 200"));
    t.stopped().await;
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight_and_closes_idle_ones() {
    let t = Test::start("127.0.0.1:0", Plain, LIMITS).await;
    let slow = tokio::spawn(get(t.addr, "/slow"));
    t.entered.notified().await;
    let mut idle = TcpStream::connect(t.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    t.stop.cancel();
    // The idle keep-alive connection is closed; the one in flight is not cut.
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest).await;
    let mut refused = false;
    for _ in 0..600 {
        refused = TcpStream::connect(t.addr).await.is_err();
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "still accepting after shutdown");
    assert!(!t.handle.is_finished());
    t.release.cancel();
    assert!(slow.await.unwrap().starts_with("HTTP/1.1 200"));
    t.stopped().await;
}

#[tokio::test]
async fn a_request_that_outlives_the_grace_period_is_cut() {
    let limits = Limits {
        grace: Duration::from_millis(100),
        ..LIMITS
    };
    let t = Test::start("127.0.0.1:0", Plain, limits).await;
    let slow = tokio::spawn(get(t.addr, "/slow"));
    t.entered.notified().await;
    t.stopped().await;
    assert_eq!(slow.await.unwrap(), "");
}

/// Plain TCP spoken as HTTP/2 (prior knowledge): TLS that chose h2, without TLS.
struct Http2;

impl Transport for Http2 {
    type Io = TcpStream;

    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }

    fn http2(_io: &TcpStream) -> bool {
        true
    }
}

/// An HTTP/2 connection may carry all of the API server's reviews: while it has a
/// request open it is not closed to make room, even before its handler says it is
/// answering (the request may still be waiting for its body or for a core); the new
/// connection is turned away instead.
#[tokio::test]
async fn an_http2_connection_with_a_request_open_is_not_closed_for_room() {
    let limits = Limits {
        max_connections: 1,
        evict_waiting: true,
        ..LIMITS
    };
    let t = Test::start("127.0.0.1:0", Http2, limits).await;
    let tcp = TcpStream::connect(t.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let slow = Request::get(format!("http://{}/slow", t.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let slow = tokio::spawn(send.send_request(slow));
    t.entered.notified().await;
    assert!(get(t.addr, "/").await.starts_with("HTTP/1.1 429"));
    t.release.cancel();
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    t.stopped().await;
}

/// Reads one `ok` answer off a keep-alive connection.
async fn answered(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn each_head_of_a_keep_alive_connection_has_its_own_timeout() {
    let limits = Limits {
        header_timeout: Duration::from_secs(2),
        ..LIMITS
    };
    let t = Test::start("127.0.0.1:0", Plain, limits).await;
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(answered(&mut s).await.starts_with(b"HTTP/1.1 200"));
    }
    // Half a head, then nothing: the connection is cut, after a 408 at most.
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut rest))
        .await
        .expect("the late head was not cut off");
    assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"));
    t.stopped().await;
}

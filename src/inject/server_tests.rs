use std::path::Path;

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio_rustls::client::TlsStream as ClientTls;
use tokio_rustls::TlsConnector;

use super::*;
use crate::inject::TEST_SETTINGS as SETTINGS;

/// A serving certificate made here, a client that trusts it (offering `alpn`)
/// and its CA.
fn certificate(alpn: &[&[u8]]) -> (Arc<rustls::ServerConfig>, TlsConnector, String) {
    let made = tls::generate(&["127.0.0.1".into()]).unwrap();
    let server_config = tls::server_config(Current::new(made.key)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(made.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (
        server_config,
        TlsConnector::from(Arc::new(client)),
        made.ca_pem,
    )
}

/// A running webhook and a client that trusts it.
struct Webhook {
    addr: std::net::SocketAddr,
    client: TlsConnector,
    ca_pem: String,
    stop: CancellationToken,
}

impl Webhook {
    /// Serves with `max_connections`, `body_timeout` and `buffered` bytes.
    async fn start(max_connections: usize, body_timeout: Duration, buffered: usize) -> Webhook {
        let (server_config, client, ca_pem) = certificate(&[]);
        let config = Config::parse(SETTINGS, Path::new("/")).unwrap();
        let injector = Arc::new(Injector::new(&config, (1, 35)).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let limits = Limits {
            max_connections,
            ..LIMITS
        };
        let reads = Reads {
            body_timeout,
            budget: Arc::new(Semaphore::new(buffered)),
        };
        drop(serve(
            listener,
            server_config,
            injector,
            (limits, reads),
            stop.clone(),
        ));
        Webhook {
            addr,
            client,
            ca_pem,
            stop,
        }
    }

    /// A TLS connection, handshake done (so the server has taken its slot).
    async fn connect(&self) -> std::io::Result<ClientTls<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        self.client.connect(name, tcp).await
    }

    /// Sends the head of a review of `length` bytes and `sent` of them.
    async fn partial(&self, length: usize, sent: usize) -> ClientTls<TcpStream> {
        let mut c = self.connect().await.unwrap();
        let head = format!("POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n");
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&vec![b' '; sent]).await.unwrap();
        c.flush().await.unwrap();
        c
    }

    /// A whole review of a pod to inject, and the answer's text.
    async fn review(&self) -> String {
        let body = review_body();
        let mut c = self.partial(body.len(), 0).await;
        c.write_all(body.as_bytes()).await.unwrap();
        read_all(&mut c).await
    }
}

/// A review of a pod to inject.
fn review_body() -> String {
    serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "0000-1111", "kind": { "group": "", "version": "v1", "kind": "Pod" },
                "resource": { "group": "", "version": "v1", "resource": "pods" },
                "namespace": "apps", "operation": "CREATE", "name": "",
                "userInfo": { "username": "admin" }, "dryRun": false,
                "object": { "apiVersion": "v1", "kind": "Pod",
                    "metadata": { "name": "p", "annotations": {
                        "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" } },
                    "spec": { "containers": [ { "name": "app", "image": "app:1" } ] } },
            }
    })
    .to_string()
}

/// What the server sent before it closed.
async fn read_all(c: &mut ClientTls<TcpStream>) -> String {
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn answered(text: &str) -> bool {
    text.starts_with("HTTP/1.1 200")
        && text.contains("\"allowed\":true")
        && text.contains("\"patch\"")
}

#[tokio::test]
async fn clients_sending_slowly_do_not_lock_out_a_review() {
    let w = Webhook::start(4, Duration::from_secs(3600), 8 << 20).await;
    // Every slot taken by a body that never completes.
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(w.partial(1000, 10).await);
    }
    let text = w.review().await;
    assert!(answered(&text), "{text}");
    // The oldest was closed to make room, without an answer.
    assert_eq!(read_all(&mut slow[0]).await, "");
    w.stop.cancel();
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let w = Webhook::start(4, Duration::from_millis(200), 8 << 20).await;
    let mut slow = w.partial(1000, 10).await;
    let text = read_all(&mut slow).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(answered(&w.review().await));
    w.stop.cancel();
}

#[tokio::test]
async fn the_bytes_held_across_connections_stay_within_the_budget() {
    let budget = 8 << 20;
    let w = Webhook::start(64, Duration::from_secs(3600), budget).await;
    // Six bodies of 3 MiB less a byte: 18 MiB if all were held.
    let big = MAX_BODY - 1;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(w.partial(MAX_BODY, big).await);
    }
    // The server read every one (the last write went through, and a review
    // is still answered): the oldest were closed for their bytes, unanswered.
    assert!(answered(&w.review().await));
    let closed = read_all(&mut held[0]).await;
    assert_eq!(closed, "", "the oldest was closed without an answer");
    w.stop.cancel();
}

#[tokio::test]
async fn reviews_are_answered_over_http2_when_the_client_offers_it_and_over_http1() {
    let w = Webhook::start(4, Duration::from_secs(5), 8 << 20).await;
    let url = format!("https://{}/mutate", w.addr);
    let ca = reqwest::Certificate::from_pem(w.ca_pem.as_bytes()).unwrap();
    let h2 = reqwest::Client::builder().tls_certs_only([ca.clone()]);
    let h1 = reqwest::Client::builder().tls_certs_only([ca]).http1_only();
    for (client, version) in [
        (h2, reqwest::Version::HTTP_2),
        (h1, reqwest::Version::HTTP_11),
    ] {
        let client = client.build().unwrap();
        // Three at once: on HTTP/2, streams of one connection.
        let sent = (0..3).map(|_| client.post(&url).body(review_body()).send());
        for answer in futures::future::join_all(sent).await {
            let answer = answer.unwrap();
            assert_eq!(answer.version(), version);
            let text = answer.text().await.unwrap();
            assert!(
                text.contains("\"allowed\":true") && text.contains("\"patch\""),
                "{text}"
            );
        }
    }
    w.stop.cancel();
}

#[tokio::test]
async fn overload_is_answered_inside_tls() {
    // A client that prefers HTTP/2 still gets the HTTP/1.1 answer it can read.
    let (server_config, client, _) = certificate(&[b"h2", b"http/1.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        Tls::new(server_config).busy(tcp).await;
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut c = client
        .connect(name, tcp)
        .await
        .expect("the overload answer is inside TLS");
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let text = read_all(&mut c).await;
    assert!(
        text.starts_with("HTTP/1.1 503") && text.contains("retry-after: 1"),
        "{text}"
    );
    server.await.unwrap();
}

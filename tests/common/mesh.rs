//! A service mesh's injector as the API server meets it, reduced to what matters to
//! `ramsecrets.io/after`: a mutating webhook served by the test over TLS on loopback that
//! appends an `istio-init` init container to every pod that has none (and leaves a pod that
//! has one alone, as Istio's does when it is reinvoked). Registered under a name that sorts
//! after ramsecrets', it runs after ramsecrets' webhook, as a mesh named so would.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use super::kube::serving_cert;

/// The init container the mesh adds.
pub const INIT: &str = "istio-init";

/// The running webhook; stopped with its runtime on drop.
pub struct Mesh {
    /// Its loopback port (`https://127.0.0.1:PORT/mutate`).
    pub port: u16,
    /// The CA of its certificate, PEM: the webhook's `caBundle`.
    pub ca_pem: String,
    /// Reviews answered.
    pub calls: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

/// The mesh's answer to one review: its `istio-init` appended, as a base64 JSON patch.
fn answer(review: &Value) -> Value {
    let request = &review["request"];
    let inits = &request["object"]["spec"]["initContainers"];
    let has = inits
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["name"] == INIT));
    let init = json!({"name": INIT, "image": "mesh/proxy:1", "args": ["iptables"]});
    let ops = match (has, inits.is_array()) {
        (true, _) => None,
        (false, true) => {
            Some(json!([{"op": "add", "path": "/spec/initContainers/-", "value": init}]))
        }
        (false, false) => {
            Some(json!([{"op": "add", "path": "/spec/initContainers", "value": [init]}]))
        }
    };
    let mut response = json!({"uid": request["uid"], "allowed": true});
    if let Some(ops) = ops {
        response["patchType"] = json!("JSONPatch");
        response["patch"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ops.to_string()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

impl Mesh {
    /// Starts the webhook on a free loopback port.
    pub fn start() -> Mesh {
        let (ca_pem, cert, key) = serving_cert(&["127.0.0.1"]);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let counted = counted.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let review: Value = serde_json::from_slice(&body).unwrap();
                            counted.fetch_add(1, Ordering::SeqCst);
                            let mut r =
                                Response::new(Full::new(Bytes::from(answer(&review).to_string())));
                            r.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Mesh {
            port,
            ca_pem,
            calls,
            _rt: rt,
        }
    }
}

//! A real Kubernetes control plane for the tests, started as controller-runtime's
//! envtest does: `etcd` (no fsync) and `kube-apiserver` on free loopback ports,
//! both built by `scripts/testbed` into `.testbed/bin`. The API server serves a
//! certificate from a CA made here, knows one admin (`--token-auth-file`, group
//! `system:masters`), signs service-account tokens with a key made here, uses
//! RBAC and keeps the ServiceAccount admission plugin on, so pods get the real
//! projected `kube-api-access-*` volume. No scheduler, controller manager or
//! kubelet: pods stay Pending, and namespaces' ServiceAccounts are made by the
//! tests ([`ControlPlane::service_account`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use serde_json::{json, Value};

use super::{free_port, rand_u64, repo, scratch, Bao, JwtSigner};

/// The issuer of the service-account tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A running etcd and kube-apiserver, stopped on drop.
pub struct ControlPlane {
    etcd: Child,
    apiserver: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA of the API server's serving certificate, PEM.
    pub ca_pem: String,
    /// The same CA, as a file.
    pub ca_file: PathBuf,
    /// A bearer token in `system:masters`.
    pub admin_token: String,
    /// The same token, as a file.
    pub admin_token_file: PathBuf,
    /// The key the API server signs service-account tokens with.
    pub sa_signer: JwtSigner,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
    client: ::kube::Client,
    /// The runtime the `kube` client runs on (dropped after it).
    rt: tokio::runtime::Runtime,
}

fn bin(name: &str) -> PathBuf {
    let path = repo().join(".testbed/bin").join(name);
    assert!(
        path.exists(),
        "{name} is not built at {}: run `bash scripts/testbed` (the README's test command does)",
        path.display()
    );
    path
}

/// `cmd`, killed if the thread that started it dies (a test that is killed
/// outright must not leave an API server behind).
fn spawn(mut cmd: Command, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // SAFETY: the closure runs between fork and exec and makes one
    // async-signal-safe system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()))
}

/// A CA and a serving certificate for 127.0.0.1 and localhost, PEM:
/// (ca, cert, key).
pub fn serving_cert(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ramsecrets test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl ControlPlane {
    /// Starts etcd and the API server and waits until `/readyz` says ok.
    /// Ports taken by another test meanwhile are retried on other ports.
    pub fn start() -> ControlPlane {
        for _ in 0..3 {
            if let Some(cp) = ControlPlane::try_start() {
                return cp;
            }
        }
        panic!("the control plane did not start three times: see the logs above");
    }

    fn try_start() -> Option<ControlPlane> {
        let dir = scratch();
        let d = dir.path();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());

        let mut etcd = Command::new(bin("etcd"));
        etcd.arg(format!("--data-dir={}", d.join("etcd").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        let etcd = spawn(etcd, &d.join("etcd.log"));

        let (ca_pem, cert, key) = serving_cert(&["127.0.0.1", "localhost"]);
        let ca_file = d.join("ca.crt");
        std::fs::write(&ca_file, &ca_pem).unwrap();
        std::fs::write(d.join("apiserver.crt"), cert).unwrap();
        std::fs::write(d.join("apiserver.key"), key).unwrap();
        let admin_token = format!("admin-{:x}{:x}", rand_u64(), rand_u64());
        std::fs::write(
            d.join("tokens.csv"),
            format!("{admin_token},admin,admin-uid,\"system:masters\"\n"),
        )
        .unwrap();
        let admin_token_file = d.join("admin-token");
        std::fs::write(&admin_token_file, &admin_token).unwrap();
        let sa_signer = JwtSigner::new(d);
        std::fs::write(d.join("sa.pub"), &sa_signer.public_pem).unwrap();

        let mut api = Command::new(bin("kube-apiserver"));
        let path = |f: &str| d.join(f).display().to_string();
        api.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--cert-dir={}", path("certs")))
            .arg(format!("--tls-cert-file={}", path("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", path("apiserver.key")))
            .arg(format!("--secure-port={api_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged=true")
            .arg("--authorization-mode=RBAC")
            .arg(format!("--token-auth-file={}", path("tokens.csv")))
            .arg(format!("--service-account-issuer={ISSUER}"))
            .arg(format!("--service-account-key-file={}", path("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_signer.key_file().display()
            ))
            .arg("--v=0");
        let apiserver = spawn(api, &d.join("apiserver.log"));

        let http = reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = {
            // kube's rustls takes the process's provider, ring as in the binary.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let _in = rt.enter();
            let mut config =
                ::kube::Config::new(format!("https://127.0.0.1:{api_port}").parse().unwrap());
            config.root_cert = Some(pem_der(&ca_pem));
            config.auth_info.token_file = Some(admin_token_file.display().to_string());
            ::kube::Client::try_from(config).unwrap()
        };
        let mut cp = ControlPlane {
            etcd,
            apiserver,
            url: format!("https://127.0.0.1:{api_port}"),
            ca_pem,
            ca_file,
            admin_token,
            admin_token_file,
            sa_signer,
            dir,
            http,
            client,
            rt,
        };
        let started = Instant::now();
        loop {
            let ready = cp
                .http
                .get(format!("{}/readyz", cp.url))
                .bearer_auth(&cp.admin_token)
                .send();
            if matches!(ready, Ok(r) if r.status().is_success()) {
                return Some(cp);
            }
            let exited = [
                ("etcd", cp.etcd.try_wait()),
                ("kube-apiserver", cp.apiserver.try_wait()),
            ];
            if let Some((name, Ok(Some(status)))) =
                exited.into_iter().find(|(_, e)| matches!(e, Ok(Some(_))))
            {
                eprintln!("{name} exited ({status}) at start; logs:\n{}", cp.logs());
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the API server at {} was not ready within 3 minutes; logs:\n{}",
                cp.url,
                cp.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The tails of etcd's and the API server's logs.
    pub fn logs(&self) -> String {
        let tail = |f: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- etcd\n{}\n--- kube-apiserver\n{}",
            tail("etcd.log"),
            tail("apiserver.log")
        )
    }

    /// A `kube` client acting as the admin; use it inside [`ControlPlane::block_on`].
    pub fn client(&self) -> ::kube::Client {
        self.client.clone()
    }

    /// Runs `f` (e.g. calls of [`ControlPlane::client`]) to completion.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A blocking admin call: `method` on `path` with an optional JSON body;
    /// returns the status and the body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.admin_token, method, path, body)
    }

    /// [`ControlPlane::call`] with bearer `token` (e.g. a service account's from
    /// [`ControlPlane::token`]); a `PATCH` body is a JSON patch.
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(token);
        req = match body {
            Some(body) if method == "PATCH" => req
                .header("content-type", "application/json-patch+json")
                .body(body.to_string()),
            Some(body) => req.json(&body),
            None => req,
        };
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The server's version, as `/version` reports it.
    pub fn version(&self) -> Value {
        self.call("GET", "/version", None).1
    }

    /// Creates namespace `ns` (if missing) and ServiceAccount `ns/sa`; the
    /// controller manager that would make `default` does not run here.
    pub fn service_account(&self, ns: &str, sa: &str) {
        self.block_on(self.service_account_async(ns, sa))
    }

    async fn service_account_async(&self, ns: &str, sa: &str) {
        use ::kube::api::{Api, PostParams};
        let client = &self.client;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let created = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap(),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(::kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("cannot create namespace {ns}: {e}"),
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let account = serde_json::from_value(json!({ "metadata": { "name": sa } })).unwrap();
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(::kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("cannot create service account {ns}/{sa}: {e}"),
        }
    }

    /// OpenBao with kubernetes auth pointed at `cp`: a reviewer allowed to create
    /// TokenReviews (system:auth-delegator), role `app` bound to `apps/app` and
    /// audience `vault` (policy `app`: `secret/data/app/*`), whose tokens live, whose tokens live `ttl`.
    pub fn bao_with_kubernetes_auth(&self, ns: &str, ttl: &str) -> Bao {
        self.service_account(ns, "app");
        self.service_account(ns, "vault-reviewer");
        let (status, body) = self.call(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            Some(json!({
                "metadata": { "name": format!("vault-reviewer-{ns}") },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
                "subjects": [ { "kind": "ServiceAccount", "name": "vault-reviewer", "namespace": ns } ]
            })),
        );
        assert!(status == 201 || status == 409, "{status}: {body}");
        let reviewer = self.token(ns, "vault-reviewer", ISSUER);

        let bao = Bao::start();
        bao.kv2_put("app/db", json!({ "password": "from-k8s-login" }));
        bao.app_policy();
        bao.kubernetes_auth(&self.url, &self.ca_pem, &reviewer, ns, ttl);
        bao
    }

    /// A token of ServiceAccount `ns/sa` for `audience`, from the TokenRequest API.
    pub fn token(&self, ns: &str, sa: &str, audience: &str) -> String {
        use ::kube::api::{Api, PostParams};
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.to_string()],
                expiration_seconds: Some(600),
                ..Default::default()
            },
            ..Default::default()
        };
        let made: TokenRequest = self
            .block_on(accounts.create_subresource("token", sa, &PostParams::default(), &request))
            .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e}"));
        made.status.expect("TokenRequest without status").token
    }
}

/// The DER of the first certificate in `pem`.
fn pem_der(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    vec![base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()]
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

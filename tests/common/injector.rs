//! `ramsecrets inject` behind the test bed's kube-apiserver ([`super::kube::ControlPlane`]):
//! the injector started on a loopback port, a MutatingWebhookConfiguration that points at a
//! webhook there (`url:` client config with the CA bundle), and annotated pods created and
//! read back as the API server stored them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, PostParams};
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::kube::{serving_cert, ControlPlane};
use super::{file, vault, Config, Running};

/// A running `ramsecrets inject` and its certificate's CA.
pub struct Injector {
    pub run: Running,
    pub port: u16,
    pub ca_pem: String,
}

/// Starts `ramsecrets inject` on `port` with `extra` under `inject:`; its
/// certificate is made here (`auto: None`) or by itself for webhook
/// `Some(name)`, whose CA bundle is then read back.
pub fn start_injector(
    cp: &ControlPlane,
    dir: &Path,
    bao_addr: &str,
    port: u16,
    auto: Option<&str>,
    extra: serde_json::Value,
) -> Injector {
    let (ca_pem, tls) = match auto {
        None => {
            let (ca, cert, key) = serving_cert(&["127.0.0.1"]);
            let cert = file(dir, "tls.crt", &cert);
            let key = file(dir, "tls.key", &key);
            (ca, json!({ "cert_file": cert, "key_file": key }))
        }
        Some(webhook) => (
            String::new(),
            json!({ "auto": { "webhook": webhook, "names": ["127.0.0.1"] } }),
        ),
    };
    let cfg = injector_config(cp, dir, bao_addr, port, tls, extra);
    let mut run = Running::start(dir, &["inject", "--config", cfg.to_str().unwrap()]);
    run.wait_log("admission webhook listening", Duration::from_secs(60));
    let ca_pem = match auto {
        None => ca_pem,
        Some(webhook) => {
            let (_, mwc) = cp.call(
                "GET",
                &format!(
                    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{webhook}"
                ),
                None,
            );
            let b = mwc["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .unwrap_or_default();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
        }
    };
    Injector { run, port, ca_pem }
}

/// Writes the config of an injector on `port` with `tls` and `extra` under `inject:`.
pub fn injector_config(
    cp: &ControlPlane,
    dir: &Path,
    bao_addr: &str,
    port: u16,
    tls: Value,
    extra: Value,
) -> PathBuf {
    Config::new()
        .source(vault(bao_addr, json!({ "kubernetes": { "role": "app" } })))
        .set(
            "inject",
            json!({
                "listen": format!("127.0.0.1:{port}"),
                "tls": tls,
                "image": "ramsecrets:test",
                "kubernetes": {
                    "host": cp.url,
                    "ca_file": cp.ca_file,
                    "token_file": cp.admin_token_file,
                },
            }),
        )
        .with("inject", extra)
        .write(dir, &format!("inject-{port}.yaml"))
}

/// Registers MutatingWebhookConfiguration `name` for Pod CREATE in namespace
/// `ns` and in kube-system, calling `port` (failurePolicy Fail); `ca_pem`
/// empty leaves the bundle for the injector to fill.
pub fn register(cp: &ControlPlane, name: &str, ns: &str, port: u16, ca_pem: &str) {
    let mut client_config = json!({ "url": format!("https://127.0.0.1:{port}/mutate") });
    if !ca_pem.is_empty() {
        client_config["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(ca_pem));
    }
    let (status, body) = cp.call(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        Some(json!({
            "metadata": { "name": name },
            "webhooks": [{
                "name": "inject.ramsecrets.io",
                "clientConfig": client_config,
                "rules": [{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"] }],
                "namespaceSelector": { "matchExpressions": [
                    { "key": "kubernetes.io/metadata.name", "operator": "In", "values": [ns, "kube-system"] }
                ] },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 10
            }]
        })),
    );
    assert_eq!(status, 201, "{body}");
}

pub fn pod(name: &str, annotations: Value, spec: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "annotations": annotations },
            "spec": spec })
}

pub fn app_spec() -> Value {
    json!({ "serviceAccountName": "app", "containers": [ { "name": "app", "image": "app:1" } ] })
}

pub fn annotated(extra: Value) -> Value {
    let mut a = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/app/db",
                        "ramsecrets.io/key.db": "password" });
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// Creates `pod` in `ns`: the stored pod, or the API server's refusal.
pub fn create(cp: &ControlPlane, ns: &str, pod: &Value) -> Result<Value, String> {
    let pods: Api<Pod> = Api::namespaced(cp.client(), ns);
    let p: Pod = serde_json::from_value(pod.clone()).unwrap();
    match cp.block_on(pods.create(&PostParams::default(), &p)) {
        Ok(stored) => Ok(serde_json::to_value(stored).unwrap()),
        Err(::kube::Error::Api(e)) => Err(e.message),
        Err(e) => panic!("create: {e}"),
    }
}

pub fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the API server's webhook cache calls the injector: a dry-run
/// create comes back injected.
pub fn wait_for_webhook(cp: &ControlPlane, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(cp.client(), ns);
    let probe: Pod =
        serde_json::from_value(pod("probe", annotated(json!({})), app_spec())).unwrap();
    for _ in 0..300 {
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        if let Ok(p) = cp.block_on(pods.create(&dry_run, &probe)) {
            if p.spec.and_then(|s| s.init_containers).is_some() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the API server never called the webhook");
}

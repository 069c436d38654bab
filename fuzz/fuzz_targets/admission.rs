//! The admission webhook: an AdmissionReview → its answer, from a review
//! built around any annotations (ramsecrets.io/ ones, or vault-k8s's with
//! `inject.compat: vault-k8s`) on a few pod shapes, or from any bytes.
//! Beyond not panicking: the answer is a review for the same uid; its patch
//! only adds and applies to the pod sent; the patched pod is still a pod
//! with every container it had; the config rendered into it is one the
//! injected ramsecrets accepts, writing only inside its output directory.
//!
//! Input: a first byte (odd: the rest is the review; even: a pod shape and
//! the Kubernetes version, then `key=value` annotation lines, keys without
//! a prefix taken as `ramsecrets.io/`), so seeds are written by hand.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use ramsecrets::config::Config;
use ramsecrets::fuzzing::{injector, Injector};
use ramsecrets::reference::RENDERED_CONFIG;
use ramsecrets_fuzz::stays_inside;
use serde_json::{json, Value};

const SETTINGS: &str = r#"
sources:
  - name: vault
    vault:
      address: https://vault.vault.svc:8200
      auth: { kubernetes: { role: default } }
  - name: aws
    aws_secrets_manager: { region: eu-west-1 }
inject:
  tls: { cert_file: /tls/tls.crt, key_file: /tls/tls.key }
  image: ramsecrets:test
  compat: vault-k8s
"#;

/// Injectors for a cluster before native sidecars (1.28) and after (1.33).
fn injectors() -> &'static [Injector; 2] {
    static INJECTORS: OnceLock<[Injector; 2]> = OnceLock::new();
    INJECTORS.get_or_init(|| {
        let config = Config::parse(SETTINGS, Path::new("/")).expect("the target's settings");
        [(1, 28), (1, 33)].map(|v| injector(&config, v).expect("the target's injector"))
    })
}

fn pod(shape: u8, annotations: Value) -> Value {
    let mut spec = json!({ "containers": [ { "name": "app", "image": "app:1",
        "volumeMounts": [ { "name": "data", "mountPath": "/data" } ] } ],
        "volumes": [ { "name": "data", "emptyDir": {} } ] });
    if shape & 1 != 0 {
        spec["initContainers"] = json!([ { "name": "istio-init", "image": "mesh:1" } ]);
    }
    if shape & 2 != 0 {
        spec["restartPolicy"] = json!("Never");
    }
    if shape & 4 != 0 {
        spec["containers"]
            .as_array_mut()
            .map(|c| c.push(json!({ "name": "side", "image": "side:1", "x-unknown": 1 })));
    }
    json!({ "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "namespace": "shop", "annotations": annotations },
            "spec": spec })
}

fn review(pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0000-1111", "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "shop", "operation": "CREATE", "name": "",
            "userInfo": { "username": "admin" }, "object": pod, "dryRun": false,
        }
    })
}

/// Checks the answer to `sent` (a review) and returns the patched pod, if patched.
fn check(answer: &[u8], sent: &Value) -> Option<Value> {
    let answer: Value = serde_json::from_slice(answer).expect("the answer is JSON");
    let response = &answer["response"];
    // A review that does not parse is answered `invalid`, without its uid.
    let unread = response["status"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("not an AdmissionReview"));
    if let Some(uid) = sent.pointer("/request/uid").and_then(Value::as_str) {
        assert!(
            response["uid"] == uid || unread,
            "the answer is for another review: {response}"
        );
    }
    let patch = response["patch"].as_str()?;
    assert_eq!(response["allowed"], true, "a patch on a denial");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("the patch is base64");
    let ops: Vec<Value> = serde_json::from_slice(&bytes).expect("the patch is JSON");
    assert!(
        ops.iter().all(|op| op["op"] == "add"),
        "the patch does more than add: {ops:?}"
    );
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).expect("a JSONPatch");
    let mut pod = sent
        .pointer("/request/object")
        .cloned()
        .expect("a patched review has a pod");
    json_patch::patch(&mut pod, &patch).unwrap_or_else(|e| panic!("the patch does not apply: {e}"));
    Some(pod)
}

fuzz_target!(|data: &[u8]| {
    let [mode, shape, rest @ ..] = data else {
        return;
    };
    let injector = &injectors()[usize::from(shape >> 7)];
    if mode % 2 == 1 {
        // serde_json skips the fields a typed review does not have without
        // checking their UTF-8, so the injector may answer a review whose
        // unknown fields hold invalid bytes: read what was sent the same way
        // (those bytes replaced) to know the pod it patched.
        let sent: Value =
            serde_json::from_str(&String::from_utf8_lossy(rest)).unwrap_or(Value::Null);
        check(&injector.review(rest), &sent);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut annotations = serde_json::Map::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = match k.contains('/') {
            true => k.to_owned(),
            false => format!("ramsecrets.io/{k}"),
        };
        annotations.insert(key, Value::String(v.replace("\\n", "\n")));
    }
    let sent_pod = pod(*shape, Value::Object(annotations));
    let sent = review(&sent_pod);
    let body = serde_json::to_vec(&sent).expect("a review");
    let Some(patched) = check(&injector.review(&body), &sent) else {
        return;
    };
    let typed: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(patched.clone()).expect("the patched pod is a pod");
    let spec = typed.spec.expect("a spec");
    for original in sent_pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = original["name"].as_str().unwrap_or_default();
        assert!(
            spec.containers.iter().any(|c| c.name == name),
            "container {name} is gone"
        );
    }
    let rendered = patched
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RENDERED_CONFIG))
        .and_then(Value::as_str)
        .expect("an injected pod carries its config");
    let config = Config::parse(rendered, Path::new("/"))
        .unwrap_or_else(|p| panic!("the injected config is refused: {p:?}\n{rendered}"));
    for file in config.secrets.iter().flat_map(|s| s.files()) {
        assert!(
            stays_inside(&file),
            "injected file {file:?} leaves the directory"
        );
    }
});

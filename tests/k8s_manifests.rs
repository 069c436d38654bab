//! The chart's webhook and `examples/k8s/` with a real kube-apiserver (the test bed's control
//! plane) and a real injector: the chart's MutatingWebhookConfiguration, created for real
//! with its service reference swapped for the test injector's URL, makes the API server
//! mutate annotated pods; every example passes server-side dry-run, the annotated ones come
//! back mutated, and the hand-written pod is what the injector makes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::apply::{self, pod_of};
use common::helm::{self, NAMESPACE};
use common::kube::{serving_cert, ControlPlane};
use common::*;
use serde_json::{json, Value};

/// The namespace the examples are applied in.
const APPS: &str = "shop";

/// The injector as the chart runs it (its container's arguments and config file), on loopback
/// with a certificate for 127.0.0.1, and the chart's webhook configuration pointing at it.
fn chart_injector(cp: &ControlPlane, dir: &Path) -> Running {
    let r = helm::render(&helm::values("helm")).unwrap();
    let (ca, cert, key) = serving_cert(&["127.0.0.1"]);
    let port = free_port();
    let mut config = r.config();
    config["inject"]["listen"] = json!(format!("127.0.0.1:{port}"));
    config["inject"]["tls"] = json!({
        "cert_file": file(dir, "tls.crt", &cert),
        "key_file": file(dir, "tls.key", &key),
    });
    config["inject"]["kubernetes"] = json!({
        "host": cp.url, "ca_file": cp.ca_file, "token_file": cp.admin_token_file,
    });
    let path = file(
        dir,
        "inject.yaml",
        &serde_saphyr::to_string(&config).unwrap(),
    );
    // The command line of the chart's container, with the config file moved here.
    let config_arg = format!("--config={}", path.display());
    let args: Vec<&str> = r.pod_spec()["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .map(|a| match a.starts_with("--config=") {
            true => config_arg.as_str(),
            false => a,
        })
        .collect();
    assert!(args.contains(&config_arg.as_str()), "{args:?}");
    let mut injector = Running::start(dir, &args);
    injector.wait_log("admission webhook listening", Duration::from_secs(60));

    use base64::Engine;
    let mut hook = r.one("MutatingWebhookConfiguration").clone();
    hook["webhooks"][0]["clientConfig"] = json!({
        "url": format!("https://127.0.0.1:{port}/mutate"),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(ca),
    });
    apply::create(cp, NAMESPACE, &hook, false).unwrap();
    injector
}

/// A control plane with the chart's namespace and the apps' namespace, and the chart's
/// injector registered with it.
fn start() -> (ControlPlane, tempfile::TempDir, Running) {
    let cp = ControlPlane::start();
    let dir = scratch();
    apply::namespace(&cp, NAMESPACE);
    apply::namespace(&cp, APPS);
    let injector = chart_injector(&cp, dir.path());
    (cp, dir, injector)
}

/// Dry-runs `pod` until the webhook has been called for it (the API server picks a new
/// webhook configuration up within seconds); returns the pod as it would be stored.
fn mutated(cp: &ControlPlane, injector: &Running, pod: &Value) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let made = apply::dry_run(cp, APPS, pod);
        if made["metadata"]["annotations"]["ramsecrets.io/injected"] == "true" {
            return made;
        }
        assert!(
            std::time::Instant::now() < until,
            "{} {} was not mutated within 60 s: {made}\ninjector:\n{}",
            pod["kind"],
            pod["metadata"]["name"],
            injector.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What every injected pod has: the two memory volumes, the secrets read-only in the app.
fn assert_injected(pod: &Value, first_init: &str) {
    let spec = &pod["spec"];
    assert_eq!(spec["initContainers"][0]["name"], first_init, "{pod}");
    let volumes = &spec["volumes"];
    for v in ["ramsecrets-secrets", "ramsecrets-state"] {
        let vol = volumes
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == v)
            .unwrap_or_else(|| panic!("{v}: {pod}"));
        assert_eq!(vol["emptyDir"]["medium"], "Memory");
    }
    for c in spec["containers"].as_array().unwrap() {
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "ramsecrets-secrets" && m["readOnly"] == true),
            "{c}"
        );
        assert!(
            !mounts.iter().any(|m| m["name"] == "ramsecrets-state"),
            "{c}"
        );
    }
}

#[test]
fn the_charts_webhook_mutates_annotated_pods_through_the_api_server() {
    let (cp, _dir, injector) = start();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web",
            "annotations": {"ramsecrets.io/inject": "true", "ramsecrets.io/role": "web",
                "ramsecrets.io/secret.db": "kv:secret/web/db"}},
        "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}});
    let stored = mutated(&cp, &injector, &pod);
    assert_injected(&stored, "ramsecrets");
    let sidecar = &stored["spec"]["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(
        sidecar["image"], "ramsecrets:0.1.0",
        "the chart's injectedImage default"
    );

    // The pod carries no label: the annotations select it. In the chart's own namespace the
    // webhook is not called.
    let mut own = pod.clone();
    own["metadata"]["namespace"] = json!(NAMESPACE);
    let made = apply::dry_run(&cp, NAMESPACE, &own);
    assert!(made["spec"].get("initContainers").is_none(), "{made}");

    // failurePolicy: Fail: with the injector gone, an annotated pod is refused.
    drop(injector);
    let err = apply::create(&cp, APPS, &pod, true).unwrap_err();
    assert!(err.contains("inject.ramsecrets.io"), "{err}");
    // A pod without ramsecrets.io/ annotations is never sent to it.
    let mut plain = pod.clone();
    plain["metadata"]["annotations"] = json!({"team": "web"});
    apply::create(&cp, APPS, &plain, true).unwrap();
}

fn example_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

#[test]
fn every_example_passes_dry_run_and_annotated_ones_come_back_mutated() {
    let (cp, dir, injector) = start();
    let examples = repo().join("examples/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut mutated_pods = 0;
    for path in &files {
        for doc in example_docs(path) {
            apply::dry_run(&cp, APPS, &doc);
            if matches!(doc["kind"].as_str(), Some("ServiceAccount" | "ConfigMap")) {
                apply::create(&cp, APPS, &doc, false).unwrap();
            }
            let Some(pod) = pod_of(&doc) else { continue };
            if pod["metadata"]["annotations"]["ramsecrets.io/inject"] != "true" {
                continue;
            }
            let stored = mutated(&cp, &injector, &pod);
            let init_only = pod["metadata"]["annotations"]["ramsecrets.io/mode"] == "init-only";
            assert_injected(
                &stored,
                if init_only {
                    "ramsecrets-init"
                } else {
                    "ramsecrets"
                },
            );
            if init_only {
                assert!(stored["spec"]["initContainers"][0]
                    .get("restartPolicy")
                    .is_none());
            }
            mutated_pods += 1;
        }
    }
    assert_eq!(
        mutated_pods, 4,
        "the Vault, CronJob, AWS and proxy examples"
    );

    // The hand-written pod is the injector's output for its annotated twin.
    let docs = example_docs(&examples.join("pod-without-injector.yaml"));
    let written = docs.iter().find(|d| d["kind"] == "Pod").unwrap();
    let mut twin = written.clone();
    let spec = &mut twin["spec"];
    spec.as_object_mut().unwrap().remove("initContainers");
    spec.as_object_mut().unwrap().remove("volumes");
    for c in spec["containers"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("volumeMounts");
    }
    twin["metadata"] = json!({"name": "inventory",
        "annotations": {"ramsecrets.io/inject": "true", "ramsecrets.io/config-map": "inventory-ramsecrets"}});
    let injected = mutated(&cp, &injector, &twin);
    let by_hand = apply::dry_run(&cp, APPS, written);
    for field in ["initContainers", "containers", "volumes"] {
        assert_eq!(
            by_hand["spec"][field], injected["spec"][field],
            "examples/k8s/pod-without-injector.yaml: spec.{field} differs from what the injector makes"
        );
    }
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config = file(
        dir.path(),
        "inventory.yaml",
        cm["data"]["config.yaml"].as_str().unwrap(),
    );
    assert_exit(
        &ramsecrets(&[
            "check",
            "--config-only",
            "--config",
            config.to_str().unwrap(),
        ]),
        0,
    );
}

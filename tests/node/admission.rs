//! The injector as the API server sees it on the node: injected pods admitted under
//! PodSecurity `restricted`, annotated pods refused while no injector pod answers (fail
//! closed) and admitted again once one does, and the chart's `auto` TLS mode, where the
//! injector pod makes its certificate and puts its CA in the webhook configuration.

use std::time::Duration;

use serde_json::{json, Value};

use super::common::apply;
use super::common::helm::NAMESPACE;
use super::common::node::{condition, container_status};
use super::{init_containers, pod, ramsecrets, Bed, APPS};

/// Far beyond what each awaited event takes, for two busy cores.
const LIMIT: Duration = Duration::from_secs(180);

/// An annotated pod, for admission only.
fn annotated() -> Value {
    pod(
        "annotated",
        ramsecrets(&[("secret.config", "kv:secret/app/config")]),
    )
}

/// Waits until the injector admits an annotated pod (a dry run), as long as the API server
/// cannot call it; returns the pod as admitted.
fn wait_admitted(bed: &Bed) -> Value {
    let mut admitted = Value::Null;
    bed.node.wait(
        LIMIT,
        "an annotated pod admitted",
        &[NAMESPACE],
        || match apply::create(&bed.node, APPS, &annotated(), true) {
            Ok(pod) => {
                admitted = pod;
                true
            }
            Err(e) if e.contains("failed calling webhook") => false,
            Err(e) => panic!("the annotated pod was refused: {e}"),
        },
    );
    assert_eq!(init_containers(&admitted), ["ramsecrets"], "{admitted}");
    admitted
}

/// Waits until no pod (running or terminating) is left in the injector's namespace.
fn wait_no_injector_pod(bed: &Bed) {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    bed.node.wait(LIMIT, "no injector pod", &[NAMESPACE], || {
        bed.node.get(&path).unwrap()["items"] == json!([])
    });
}

/// The apps' namespace enforces PodSecurity `restricted` (a pod that breaks it is refused),
/// and injected pods are admitted and run there.
pub fn restricted_namespace(bed: &Bed) {
    let ns = bed.node.get(&format!("/api/v1/namespaces/{APPS}")).unwrap();
    let enforce = &ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"];
    assert_eq!(enforce, "restricted", "{ns}");
    let mut loose = pod("loose", json!({}));
    loose["spec"]["securityContext"] = json!({});
    loose["spec"]["containers"][0]["securityContext"] = json!({});
    let refused = apply::create(&bed.node, APPS, &loose, true).unwrap_err();
    assert!(
        refused.contains("violates PodSecurity \"restricted:"),
        "{refused}"
    );
    apply::dry_run(&bed.node, APPS, &annotated());
    // The pod of kv was admitted here and runs, its sidecar ready.
    let kv = bed.again(&bed.pod("kv"));
    assert!(condition(&kv, "Ready"), "{kv}");
    assert_eq!(container_status(&kv, "ramsecrets")["ready"], true, "{kv}");
}

/// The injector scaled to 0: an annotated pod is refused (fail closed) while other pods are
/// admitted; scaled back to 1: the annotated pod is admitted, injected.
pub fn injector_down_fails_closed(bed: &Bed) {
    let scale = |n: u8| {
        let replicas = format!("--replicas={n}");
        let deployment = format!("deployment/{}", bed.injector);
        bed.node
            .kubectl(&["-n", NAMESPACE, "scale", &deployment, &replicas]);
    };
    scale(0);
    wait_no_injector_pod(bed);
    let refused = apply::create(&bed.node, APPS, &annotated(), true).unwrap_err();
    assert!(refused.contains("failed calling webhook"), "{refused}");
    apply::dry_run(&bed.node, APPS, &pod("plain", json!({})));
    scale(1);
    bed.node
        .wait_deployment(NAMESPACE, &bed.injector, &[NAMESPACE]);
    wait_admitted(bed);
}

/// The chart reinstalled in TLS mode `auto`: the injector pod makes its certificate, puts
/// its CA in the webhook configuration, and the API server calls it with it.
pub fn tls_auto(bed: &Bed) {
    let helm_mode = bed.chart("helm");
    let webhook = helm_mode.one("MutatingWebhookConfiguration")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let webhook_path =
        format!("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{webhook}");
    let ca_bundle = |config: &Value| config["webhooks"][0]["clientConfig"]["caBundle"].clone();
    let helm_ca = ca_bundle(&bed.node.get(&webhook_path).unwrap());
    assert!(helm_ca.is_string(), "no caBundle in helm mode");
    for doc in helm_mode.docs.iter().rev() {
        apply::delete(&bed.node, NAMESPACE, doc);
    }
    wait_no_injector_pod(bed);
    bed.node.wait_gone(&webhook_path, &[NAMESPACE]);
    let replica_sets = format!("/apis/apps/v1/namespaces/{NAMESPACE}/replicasets");
    bed.node
        .wait(LIMIT, "no injector ReplicaSet", &[NAMESPACE], || {
            bed.node.get(&replica_sets).unwrap()["items"] == json!([])
        });
    bed.install_chart("auto");
    bed.node.wait(
        LIMIT,
        "the injector's CA in the webhook",
        &[NAMESPACE],
        || {
            let ca = ca_bundle(&bed.node.get(&webhook_path).unwrap());
            ca.as_str().is_some_and(|ca| !ca.is_empty()) && ca != helm_ca
        },
    );
    wait_admitted(bed);
}

//! The chart's ValidatingAdmissionPolicy as the test bed's real kube-apiserver enforces it:
//! a pod's `ramsecrets.io/` annotations (the config its containers were admitted with, its
//! CA bundles) stay as they were at creation; its other annotations stay the owner's.

mod common;

use std::time::Duration;

use common::apply;
use common::helm;
use common::kube::ControlPlane;
use serde_json::{json, Value};

const NS: &str = "apps";

/// A change to a pod's annotations.
type Change = dyn Fn(&mut Value);

fn pod(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}})
}

/// Retries `attempt` until it returns `Some`, for the API server's admission caches to
/// take a new configuration in (generous: the test machine is shared).
fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(t) = attempt() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("never: {what}");
}

#[test]
fn ramsecrets_annotations_cannot_change_after_creation() {
    let cp = ControlPlane::start();
    apply::namespace(&cp, NS);
    let r = helm::render(&json!({})).unwrap();
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        apply::create(&cp, NS, r.one(kind), false).unwrap();
    }
    // No webhook here: the pod is stored as an injected one would be.
    let admitted = pod(
        "app",
        json!({"ramsecrets.io/injected": "true",
        "ramsecrets.io/rendered-config": "sources: [{name: vault, vault: {address: https://vault:8200}}]",
        "team": "orders"}),
    );
    apply::create(&cp, NS, &admitted, false).unwrap();
    let path = format!("/api/v1/namespaces/{NS}/pods/app");
    // Each attempt rewrites the annotations of the pod as stored; Err: refused.
    let update = |change: &Change| {
        let (status, mut stored) = cp.call("GET", &path, None);
        assert_eq!(status, 200, "{stored}");
        change(&mut stored["metadata"]["annotations"]);
        match cp.call("PUT", &path, Some(stored)) {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status}: {}", body["message"])),
        }
    };
    let swap = |a: &mut Value| {
        a["ramsecrets.io/rendered-config"] =
            json!("sources: [{name: vault, vault: {address: https://evil:8200}}]")
    };
    // Until the policy is in force these additions pass, harmlessly.
    let probe = std::cell::Cell::new(0);
    let refused = eventually("a ramsecrets.io/ annotation change refused", || {
        let n = probe.get() + 1;
        probe.set(n);
        update(&move |a| a["ramsecrets.io/rendered-ca.probe"] = json!(n.to_string())).err()
    });
    assert!(refused.contains("fixed at creation"), "{refused}");
    let changes: [(&str, &Change); 3] = [
        ("removed", &|a| {
            a.as_object_mut().unwrap().remove("ramsecrets.io/injected");
        }),
        ("added", &|a| {
            a["ramsecrets.io/rendered-ca.vault"] = json!("PEM")
        }),
        ("swapped", &swap),
    ];
    for (what, change) in changes {
        assert!(
            update(change).is_err(),
            "a ramsecrets.io/ annotation {what}"
        );
    }
    // Other annotations stay the owner's.
    update(&|a| a["team"] = json!("payments")).unwrap();
    let (_, stored) = cp.call("GET", &path, None);
    assert_eq!(
        stored["metadata"]["annotations"]["ramsecrets.io/rendered-config"],
        admitted["metadata"]["annotations"]["ramsecrets.io/rendered-config"]
    );
}

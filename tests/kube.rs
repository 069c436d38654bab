//! The Kubernetes test bed itself: the control plane that `scripts/testbed`
//! builds starts, reports a real version and stores objects.

mod common;

use ::kube::api::{Api, PostParams};
use common::kube::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::json;

#[test]
fn control_plane_starts_and_creates_a_namespace() {
    let cp = ControlPlane::start();
    let version = cp.version();
    let pinned = std::fs::read_to_string(common::repo().join("tests/kube/go.mod")).unwrap();
    let git = version["gitVersion"].as_str().unwrap();
    assert!(
        pinned.contains(&format!("k8s.io/kubernetes {git}")),
        "/version says {git}, tests/kube/go.mod pins another"
    );
    assert_eq!(version["major"], "1");

    let client = cp.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({ "metadata": { "name": "smoke" } })).unwrap();
    cp.block_on(async {
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let stored = namespaces.get("smoke").await.unwrap();
        assert!(stored.metadata.uid.is_some(), "the API server gives a uid");
        // The API server creates its own system namespaces.
        namespaces.get("kube-system").await.unwrap();
    });
}

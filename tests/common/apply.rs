//! Manifests sent to a test API server (the control plane of [`super::kube::ControlPlane`] or
//! the node of [`super::node::Node`], both [`Call`]) as `kubectl create` sends them: the resource found by discovery, the document's own namespace or the one
//! given, `fieldValidation=Strict` (an unknown or duplicate field is an error, not a
//! warning), and server-side dry-run (`dryRun=All`) when asked, so that the API server's
//! own validation and admission judge the document without storing it.

use serde_json::{json, Value};

use super::kube::ControlPlane;

/// An API server that takes admin calls: `method` on `path` with an optional JSON body,
/// answered with the status and the body.
pub trait Call {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value);
}

impl Call for ControlPlane {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        ControlPlane::call(self, method, path, body)
    }
}

/// The REST collection of `doc`'s kind, in `namespace` unless the document names its own.
fn collection(cp: &impl Call, namespace: &str, doc: &Value) -> String {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let group = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let (status, list) = cp.call("GET", &group, None);
    assert_eq!(status, 200, "discovery of {api_version}: {list}");
    let resource = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && !r["name"].as_str().unwrap().contains('/'))
        .unwrap_or_else(|| panic!("the API server serves no {kind} in {api_version}"));
    let plural = resource["name"].as_str().unwrap();
    if resource["namespaced"] == true {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or(namespace);
        format!("{group}/namespaces/{ns}/{plural}")
    } else {
        format!("{group}/{plural}")
    }
}

/// Namespace `name` with its `default` ServiceAccount (made here when no controller manager
/// made it first).
pub fn namespace(cp: &impl Call, name: &str) {
    let (status, body) = cp.call(
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": name}})),
    );
    assert!(
        status == 201 || status == 409,
        "namespace {name}: {status} {body}"
    );
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    match create(cp, name, &sa, false) {
        Ok(_) => {}
        Err(e) if e.starts_with("409:") => {}
        Err(e) => panic!("ServiceAccount {name}/default: {e}"),
    }
}

/// Creates `doc`, for real or as a dry run: the object as the API server stored it (or
/// would have), or its status message.
pub fn create(
    cp: &impl Call,
    namespace: &str,
    doc: &Value,
    dry_run: bool,
) -> Result<Value, String> {
    let mut path = collection(cp, namespace, doc) + "?fieldValidation=Strict";
    if dry_run {
        path += "&dryRun=All";
    }
    match cp.call("POST", &path, Some(doc.clone())) {
        (200 | 201, made) => Ok(made),
        (status, body) => Err(format!(
            "{status}: {}",
            body["message"].as_str().unwrap_or_default()
        )),
    }
}

/// Deletes `doc` (found as [`create`] finds it) with the default grace period; a document
/// that is already gone is no error.
pub fn delete(cp: &impl Call, namespace: &str, doc: &Value) {
    let name = doc["metadata"]["name"].as_str().expect("metadata.name");
    let path = format!("{}/{name}", collection(cp, namespace, doc));
    match cp.call("DELETE", &path, None) {
        (200 | 202 | 404, _) => {}
        (status, body) => panic!("DELETE {path}: {status} {body}"),
    }
}

/// [`create`] as a dry run that must pass.
pub fn dry_run(cp: &impl Call, namespace: &str, doc: &Value) -> Value {
    create(cp, namespace, doc, true).unwrap_or_else(|e| {
        panic!(
            "the API server refused {} {}: {e}",
            doc["kind"], doc["metadata"]["name"]
        )
    })
}

/// The pod a controller would make from a workload's template (Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, Job, CronJob), or the document itself when it is a Pod.
pub fn pod_of(doc: &Value) -> Option<Value> {
    let template = match doc["kind"].as_str()? {
        "Pod" => return Some(doc.clone()),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &doc["spec"]["template"]
        }
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": template["spec"]});
    pod["metadata"] = template["metadata"].clone();
    pod["metadata"]["name"] = doc["metadata"]["name"].clone();
    Some(pod)
}

/// CustomResourceDefinitions that stand in for cert-manager's and prometheus-operator's
/// (`Certificate`, `Issuer`, `ClusterIssuer`, `ServiceMonitor`, `PrometheusRule`), so that the API server can
/// judge those documents' metadata and scope; their specs are checked against the projects'
/// published schemas by `tests/helm/crds.mjs`.
pub fn install_stand_in_crds(cp: &ControlPlane) {
    let crds = [
        (
            "cert-manager.io",
            "Certificate",
            "certificates",
            "Namespaced",
        ),
        ("cert-manager.io", "Issuer", "issuers", "Namespaced"),
        (
            "cert-manager.io",
            "ClusterIssuer",
            "clusterissuers",
            "Cluster",
        ),
        (
            "monitoring.coreos.com",
            "ServiceMonitor",
            "servicemonitors",
            "Namespaced",
        ),
        (
            "monitoring.coreos.com",
            "PrometheusRule",
            "prometheusrules",
            "Namespaced",
        ),
    ];
    for (group, kind, plural, scope) in crds {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
            }
        });
        let (status, body) = cp.call(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(crd),
        );
        assert!(
            status == 201 || status == 409,
            "CRD {kind}: {status} {body}"
        );
        super::wait_until(
            std::time::Duration::from_secs(60),
            &format!("{kind} served"),
            || {
                let (status, _) = cp.call("GET", &format!("/apis/{group}/v1/{plural}"), None);
                status == 200
            },
        );
    }
}

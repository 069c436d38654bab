//! The chart's ValidatingAdmissionPolicies as the test bed's real kube-apiserver enforces
//! them: a pod's `ramsecrets.io/` annotations (the config its containers were admitted with,
//! its CA bundles) stay as they were at creation, its other annotations stay the owner's; and
//! in `tls.auto` mode the injector's service account changes nothing but the `caBundle` of its
//! own webhook configuration.

mod common;

use std::time::Duration;

use common::kube::{ControlPlane, ISSUER};
use common::{apply, file, free_port, helm, scratch, Running};
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

const WEBHOOKS: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";

/// Whether `answer` is a refusal by the chart's caBundle policy (not by RBAC).
fn by_policy(answer: &(u16, Value)) -> bool {
    let message = answer.1["message"].as_str().unwrap_or_default();
    answer.0 == 403
        && message.contains("ValidatingAdmissionPolicy")
        && message.contains("ca-bundle")
}

#[test]
fn the_tls_auto_identity_changes_only_the_ca_bundle_of_its_own_webhook() {
    let cp = ControlPlane::start();
    let ns = helm::NAMESPACE;
    apply::namespace(&cp, ns);
    let r = helm::render(&helm::values("auto")).unwrap();
    let ours = r.one("MutatingWebhookConfiguration");
    let name = ours["metadata"]["name"].as_str().unwrap().to_owned();
    let policy = format!(
        "{}-ca-bundle",
        r.one("Service")["metadata"]["name"].as_str().unwrap()
    );
    for doc in [
        r.one("ServiceAccount"),
        r.one("ClusterRole"),
        r.one("ClusterRoleBinding"),
        ours,
        r.named("ValidatingAdmissionPolicy", &policy),
        r.named("ValidatingAdmissionPolicyBinding", &policy),
    ] {
        apply::create(&cp, ns, doc, false).unwrap();
    }
    let own = format!("{WEBHOOKS}/{name}");
    let (_, created) = cp.call("GET", &own, None);
    // Another webhook configuration: a mesh's, say.
    let mut other = ours.clone();
    other["metadata"] = json!({"name": "mesh"});
    apply::create(&cp, ns, &other, false).unwrap();
    let sa = r.pod_spec()["serviceAccountName"].as_str().unwrap();
    let token = cp.token(ns, sa, ISSUER);
    let patch = |path: &str, op: Value, dry_run: bool| {
        let query = if dry_run { "?dryRun=All" } else { "" };
        cp.call_as(
            &token,
            "PATCH",
            &format!("{path}{query}"),
            Some(json!([op])),
        )
    };
    let loosen = json!({"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"});
    // RBAC and the policy reach the API server's caches in their own time: a dry run
    // of a change the policy refuses says when both are in force.
    let refused = eventually("the caBundle policy in force", || {
        Some(patch(&own, loosen.clone(), true)).filter(by_policy)
    });
    let message = refused.1["message"].as_str().unwrap();
    assert!(
        message.contains("only the webhooks' clientConfig.caBundle"),
        "{message}"
    );

    // Every field of a webhook but its name and CA is compared, as this server defines them.
    let (_, openapi) = cp.call(
        "GET",
        "/openapi/v3/apis/admissionregistration.k8s.io/v1",
        None,
    );
    let compared = r.named("ValidatingAdmissionPolicy", &policy)["spec"]["variables"].to_string();
    for (schema, prefix) in [
        ("MutatingWebhook", "w.?"),
        ("WebhookClientConfig", "w.?clientConfig.?"),
    ] {
        let schema = format!("io.k8s.api.admissionregistration.v1.{schema}");
        let fields = openapi["components"]["schemas"][&schema]["properties"]
            .as_object()
            .unwrap();
        for field in fields
            .keys()
            .filter(|f| !["name", "clientConfig", "caBundle"].contains(&f.as_str()))
        {
            assert!(
                compared.contains(&format!("{prefix}{field} ==")),
                "the policy does not compare {schema}.{field}"
            );
        }
    }

    // The injector itself, as that service account, patches the CA it made into its webhook.
    let work = scratch();
    let mut config = r.config();
    config["inject"]["listen"] = json!(format!("127.0.0.1:{}", free_port()));
    config["inject"]["kubernetes"] = json!({"host": cp.url, "ca_file": cp.ca_file,
        "token_file": file(work.path(), "token", &token)});
    let config = file(work.path(), "inject.yaml", &config.to_string());
    let mut injector = Running::start(
        work.path(),
        &["inject", "--config", config.to_str().unwrap()],
    );
    injector.wait_log("CA bundle patched", Duration::from_secs(60));
    let (_, stored) = cp.call("GET", &own, None);
    let bundle = stored["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap();
    assert!(!bundle.is_empty());
    // So can a plain patch of the bundle; nothing else of the webhook changed.
    let replaced =
        json!({"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle});
    assert_eq!(patch(&own, replaced, false).0, 200);
    let (_, stored) = cp.call("GET", &own, None);
    let mut without_ca = stored.clone();
    without_ca["webhooks"][0]["clientConfig"]
        .as_object_mut()
        .unwrap()
        .remove("caBundle");
    assert_eq!(without_ca["webhooks"], created["webhooks"]);
    assert_eq!(stored["metadata"]["labels"], created["metadata"]["labels"]);

    // Every other change to its own webhook is refused by the policy.
    let mut more = stored["webhooks"][0].clone();
    more["name"] = json!("more.ramsecrets.io");
    let changes = [
        loosen,
        json!({"op": "replace", "path": "/webhooks/0/clientConfig/service/name", "value": "evil"}),
        json!({"op": "replace", "path": "/webhooks/0/clientConfig",
               "value": {"url": "https://evil.example/mutate", "caBundle": bundle}}),
        json!({"op": "add", "path": "/webhooks/0/rules/0/resources/-", "value": "secrets"}),
        json!({"op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 1}),
        json!({"op": "remove", "path": "/webhooks/0/matchConditions"}),
        json!({"op": "add", "path": "/webhooks/-", "value": more}),
        json!({"op": "add", "path": "/metadata/labels/team", "value": "evil"}),
    ];
    for change in changes {
        let answer = patch(&own, change.clone(), false);
        assert!(by_policy(&answer), "{change}: {answer:?}");
    }
    // Another webhook's CA is RBAC's to refuse...
    let mesh = format!("{WEBHOOKS}/mesh");
    let other_ca =
        json!({"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle});
    let answer = patch(&mesh, other_ca.clone(), false);
    assert_eq!(answer.0, 403, "{answer:?}");
    // ... and the policy's, should RBAC grant the service account more than the chart does.
    let (status, body) = cp.call(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        Some(json!({"metadata": {"name": "too-much"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]})),
    );
    assert_eq!(status, 201, "{body}");
    let config_map = json!({"metadata": {"name": "x"}, "data": {"a": "b"}});
    let answer = eventually("cluster-admin granted", || {
        let answer = cp.call_as(
            &token,
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(config_map.clone()),
        );
        Some(answer).filter(by_policy)
    });
    assert!(
        answer.1["message"].as_str().unwrap().contains(&format!(
            "only patch the caBundle of MutatingWebhookConfiguration {name}"
        )),
        "{answer:?}"
    );
    assert!(by_policy(&patch(&mesh, other_ca, false)));
    assert!(by_policy(&cp.call_as(&token, "DELETE", &own, None)));
    let (_, still) = cp.call("GET", &own, None);
    assert_eq!(still["webhooks"], stored["webhooks"]);
    assert_eq!(injector.stop(rustix::process::Signal::TERM), Some(0));
}

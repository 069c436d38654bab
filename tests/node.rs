//! End to end on a real node (`scripts/cluster`): the chart installed for real, the
//! injector running as a pod behind its Service and called by the API server, and injected
//! pods started by the kubelet, with OpenBao inside the node's network namespace. One node
//! per test binary: the scenarios run one after another on it, and the node stops at the
//! end, also when one fails.

mod common;

use std::time::Instant;

use common::apply;
use common::helm::{self, NAMESPACE};
use common::node::Node;
use common::Bao;
use serde_json::{json, Value};

/// The namespace of the apps.
const APPS: &str = "apps";

/// The node with OpenBao (kubernetes auth for ServiceAccount `apps/app`, role `app`) and the
/// chart installed.
struct Bed {
    // Dropped first: OpenBao stops before the node.
    bao: Bao,
    node: Node,
}

impl Bed {
    fn start() -> Bed {
        let node = Node::up();
        let bao = Bao::start_on(node.host_ip());
        bao.app_policy();
        apply::namespace(&node, APPS);
        node.kubectl(&["-n", APPS, "create", "serviceaccount", "app"]);
        node.kubectl(&["-n", APPS, "create", "serviceaccount", "vault-reviewer"]);
        node.kubectl(&[
            "create",
            "clusterrolebinding",
            "vault-reviewer",
            "--clusterrole=system:auth-delegator",
            &format!("--serviceaccount={APPS}:vault-reviewer"),
        ]);
        let reviewer = node.kubectl(&[
            "-n",
            APPS,
            "create",
            "token",
            "vault-reviewer",
            "--duration=2h",
        ]);
        let ca = std::fs::read_to_string(&node.env["CA_FILE"]).unwrap();
        bao.kubernetes_auth(&node.env["API_URL"], &ca, reviewer.trim(), APPS, "1h");
        let bed = Bed { bao, node };
        bed.install_chart("helm");
        bed
    }

    /// The chart's documents for TLS mode `tls`, created on the node; waits until the
    /// injector is available.
    fn install_chart(&self, tls: &str) {
        let values = json!({
            "replicaCount": 1,
            "image": {"repository": "localhost/ramsecrets", "tag": "local", "pullPolicy": "Never"},
            "tls": {"mode": tls},
            "sources": [{"name": "vault", "vault": {"address": self.bao.addr,
                "auth": {"kubernetes": {"mount": "kubernetes", "role": "app"}}}}],
            "injection": {"defaults": {"refresh": "2s"}}
        });
        let rendered = helm::render(&values).unwrap_or_else(|e| panic!("{values}: {e}"));
        apply::namespace(&self.node, NAMESPACE);
        for doc in &rendered.docs {
            apply::create(&self.node, NAMESPACE, doc, false)
                .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
        }
        let injector = rendered.one("Deployment")["metadata"]["name"]
            .as_str()
            .unwrap();
        self.node.wait_deployment(NAMESPACE, injector, &[NAMESPACE]);
    }

    /// Creates `doc` in the apps' namespace.
    fn create(&self, doc: &Value) -> Value {
        apply::create(&self.node, APPS, doc, false)
            .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]))
    }

    /// The running pods of the apps' namespace labelled `app=NAME`.
    fn pods(&self, app: &str) -> Vec<Value> {
        self.node.pods(APPS, &format!("app={app}"))
    }

    /// `sh -c SCRIPT` in pod `pod`'s container `container`.
    fn sh(&self, pod: &Value, container: &str, script: &str) -> Option<String> {
        let name = pod["metadata"]["name"].as_str().unwrap();
        self.node.exec(APPS, name, container, &["sh", "-c", script])
    }
}

/// A Deployment `name` of the busybox app (uid 1000, sleeping), annotated with `annotations`
/// under `ramsecrets.io/`.
fn deployment(name: &str, annotations: &[(&str, &str)]) -> Value {
    let mut notes = serde_json::Map::new();
    notes.insert("ramsecrets.io/inject".into(), json!("true"));
    notes.insert("ramsecrets.io/role".into(), json!("app"));
    for (k, v) in annotations {
        notes.insert(format!("ramsecrets.io/{k}"), json!(v));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name, "ramsecrets.io/inject": "true"},
                    "annotations": notes
                },
                "spec": {
                    "serviceAccountName": "app",
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "app",
                        "image": "localhost/app:busybox",
                        "imagePullPolicy": "Never",
                        "command": ["sleep", "86400"],
                        "securityContext": {"allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    })
}

/// A Deployment annotated for a KV secret: its pod becomes Ready, and the app container
/// reads the file from the memory volume (content, mode, owner) but cannot see the state
/// volume.
fn deployment_reads_kv(bed: &Bed) {
    bed.bao
        .kv2_put("app/config", json!({"greeting": "hello from openbao"}));
    let created = Instant::now();
    bed.create(&deployment(
        "kv",
        &[
            ("secret.config", "kv:secret/app/config"),
            ("format.config", "json"),
        ],
    ));
    bed.node.wait_deployment(APPS, "kv", &[APPS, NAMESPACE]);
    eprintln!(
        "node: Deployment kv Ready {:.1}s after create",
        created.elapsed().as_secs_f64()
    );
    let pods = bed.pods("kv");
    let [pod] = pods.as_slice() else {
        panic!("{} pods of kv, not one", pods.len())
    };
    let injected: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(injected, ["ramsecrets"], "{pod}");
    let file = bed
        .sh(pod, "app", "cat /run/secrets/ramsecrets/config")
        .unwrap_or_else(|| panic!("cannot read the file\n{}", bed.node.diagnose(APPS)));
    let value: Value = serde_json::from_str(&file).unwrap_or_else(|e| panic!("{e}: {file}"));
    assert_eq!(value["greeting"], "hello from openbao");
    let stat = bed
        .sh(pod, "app", "stat -c '%a %u' /run/secrets/ramsecrets/config")
        .unwrap();
    assert_eq!(stat.trim(), "444 65532");
    // The secrets volume is memory, read-only for the app.
    let mounts = bed.sh(pod, "app", "cat /proc/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/run/secrets/ramsecrets"))
        .unwrap_or_else(|| panic!("no mount at /run/secrets/ramsecrets:\n{mounts}"));
    assert!(
        line.starts_with("tmpfs ") && line.contains(" ro,"),
        "{line}"
    );
    // The state volume (token and leases) is not in the app's container.
    assert!(!mounts.contains("/run/ramsecrets"), "{mounts}");
    assert!(bed.sh(pod, "app", "ls /run/ramsecrets").is_none());
}

/// A scenario's name and body.
type Scenario = (&'static str, fn(&Bed));

#[test]
fn injected_pods_run_on_a_real_node() {
    let bed = Bed::start();
    let scenarios: [Scenario; 1] = [("deployment_reads_kv", deployment_reads_kv)];
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        eprintln!("node: scenario {name}");
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&bed))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

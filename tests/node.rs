//! End to end on a real node (`scripts/cluster`): the chart installed for real, the
//! injector running as a pod behind its Service and called by the API server, and injected
//! pods started by the kubelet, with OpenBao and PostgreSQL inside the node's network
//! namespace. One node per test binary: the scenarios ([`secrets`], [`admission`]) run one
//! after another on it, and the node stops at the end, also when one fails. The apps'
//! namespace enforces PodSecurity `restricted`, so every injected pod here runs under it.

#[path = "node/admission.rs"]
mod admission;
mod common;
#[path = "node/secrets.rs"]
mod secrets;

use std::process::Output;

use common::apply;
use common::helm::{self, NAMESPACE};
use common::node::{self, Node};
use common::{Bao, Postgres};
use serde_json::{json, Map, Value};

/// The namespace of the apps.
const APPS: &str = "apps";
/// Where injected pods see their files.
const MOUNT: &str = "/run/secrets/ramsecrets";

/// The node with OpenBao (kubernetes auth for ServiceAccount `apps/app`, role `app`; KV
/// under `secret/app/`; database roles `revoke`, `restart` and `renew` on PostgreSQL) and the chart
/// installed.
struct Bed {
    // Dropped first: OpenBao and PostgreSQL stop before the node.
    bao: Bao,
    pg: Postgres,
    node: Node,
    /// The name of the injector's Deployment.
    injector: String,
}

impl Bed {
    fn start() -> Bed {
        let node = Node::up();
        // Started from this thread, so inside the node's namespace.
        let pg = Postgres::start();
        let bao = Bao::start_on(node.host_ip());
        bao.api(
            "PUT",
            "sys/policies/acl/app",
            // Nothing under sys/leases/: the sidecars revoke their leases with their token.
            json!({ "policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n\
                path \"database/creds/*\" { capabilities = [\"read\"] }" }),
        );
        bao.database_engine(&pg, &["revoke", "restart", "renew"]);
        for role in ["revoke", "restart"] {
            bao.database_role(role, "1h", "2h");
        }
        // Renewed at 2/3 of 15 s, re-issued as 30 s comes near.
        bao.database_role("renew", "15s", "30s");
        apply::namespace(&node, APPS);
        node.kubectl(&[
            "label",
            "namespace",
            APPS,
            "pod-security.kubernetes.io/enforce=restricted",
        ]);
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
        let mut bed = Bed {
            bao,
            pg,
            node,
            injector: String::new(),
        };
        apply::namespace(&bed.node, NAMESPACE);
        let rendered = bed.install_chart("helm");
        let name = &rendered.one("Deployment")["metadata"]["name"];
        bed.injector = name.as_str().unwrap().to_string();
        bed
    }

    /// The chart rendered for TLS mode `tls`: one injector whose pods revoke their leases
    /// when they stop, refresh every 2 s, and which also serves vault-k8s pods.
    fn chart(&self, tls: &str) -> helm::Rendered {
        let values = json!({
            "replicaCount": 1,
            "image": {"repository": "localhost/ramsecrets", "tag": "local", "pullPolicy": "Never"},
            "tls": {"mode": tls},
            "sources": [{"name": "vault", "vault": {"address": self.bao.addr,
                "revoke_on_exit": true,
                "auth": {"kubernetes": {"mount": "kubernetes", "role": "app"}}}}],
            "injection": {"defaults": {"refresh": "2s"}, "compat": "vault-k8s"}
        });
        helm::render(&values).unwrap_or_else(|e| panic!("{values}: {e}"))
    }

    /// The chart's documents for TLS mode `tls`, created on the node; waits until the
    /// injector is available.
    fn install_chart(&self, tls: &str) -> helm::Rendered {
        let rendered = self.chart(tls);
        for doc in &rendered.docs {
            apply::create(&self.node, NAMESPACE, doc, false)
                .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
        }
        let injector = &rendered.one("Deployment")["metadata"]["name"];
        self.node
            .wait_deployment(NAMESPACE, injector.as_str().unwrap(), &[NAMESPACE]);
        rendered
    }

    /// Creates `doc` in the apps' namespace.
    fn create(&self, doc: &Value) -> Value {
        apply::create(&self.node, APPS, doc, false)
            .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]))
    }

    /// The one running pod of the apps' namespace labelled `app=NAME`.
    fn pod(&self, app: &str) -> Value {
        let pods = self.node.pods(APPS, &format!("app={app}"));
        match <[Value; 1]>::try_from(pods) {
            Ok([pod]) => pod,
            Err(pods) => panic!("{} pods of {app}, not one", pods.len()),
        }
    }

    /// Pod `pod` of the apps' namespace as it is now.
    fn again(&self, pod: &Value) -> Value {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let path = format!("/api/v1/namespaces/{APPS}/pods/{name}");
        self.node
            .get(&path)
            .unwrap_or_else(|| panic!("pod {name} is gone"))
    }

    /// `sh -c SCRIPT` in pod `pod`'s container `container`.
    fn sh(&self, pod: &Value, container: &str, script: &str) -> Option<String> {
        let name = pod["metadata"]["name"].as_str().unwrap();
        self.node.exec(APPS, name, container, &["sh", "-c", script])
    }

    /// The file `name` of the secrets volume, read in pod `pod`'s app container.
    fn read(&self, pod: &Value, name: &str) -> String {
        self.sh(pod, "app", &format!("cat {MOUNT}/{name}"))
            .unwrap_or_else(|| panic!("cannot read {name}\n{}", self.node.diagnose(APPS)))
    }
}

/// `ramsecrets.io/` annotations: `inject` and `role: app`, then `notes`.
fn ramsecrets(notes: &[(&str, &str)]) -> Value {
    let mut map = Map::new();
    map.insert("ramsecrets.io/inject".into(), json!("true"));
    map.insert("ramsecrets.io/role".into(), json!("app"));
    for (k, v) in notes {
        map.insert(format!("ramsecrets.io/{k}"), json!(v));
    }
    Value::Object(map)
}

/// The app's container: busybox as uid 1000 running `script`, restricted.
fn app(script: &str) -> Value {
    json!({
        "name": "app",
        "image": "localhost/app:busybox",
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
    })
}

/// An app that sleeps until it is told to stop.
const SLEEP: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

/// A pod template labelled `app=NAME` with `annotations`, running `script` as uid 1000.
fn template(name: &str, annotations: Value, script: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": name}, "annotations": annotations},
        "spec": {
            "serviceAccountName": "app",
            "terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [app(script)]
        }
    })
}

/// A Deployment `name` of one sleeping app annotated with `annotations`.
fn deployment(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, annotations, SLEEP)
        }
    })
}

/// A bare Pod `name` of a sleeping app annotated with `annotations`.
fn pod(name: &str, annotations: Value) -> Value {
    let mut pod = template(name, annotations, SLEEP);
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!(name);
    pod
}

/// A Job `name` whose app runs `script` once, annotated with `annotations`.
fn job(name: &str, annotations: Value, script: &str) -> Value {
    let mut template = template(name, annotations, script);
    template["spec"]["restartPolicy"] = json!("Never");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": template}
    })
}

/// The names of `pod`'s init containers.
fn init_containers(pod: &Value) -> Vec<&str> {
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// A scenario's name and body.
type Scenario = (&'static str, fn(&Bed));

#[test]
fn injected_pods_run_on_a_real_node() {
    let bed = Bed::start();
    let scenarios: [Scenario; 11] = [
        ("deployment_reads_kv", secrets::deployment_reads_kv),
        (
            "rotation_reaches_the_pod",
            secrets::rotation_reaches_the_pod,
        ),
        (
            "sidecar_memory_in_the_pod",
            secrets::sidecar_memory_in_the_pod,
        ),
        ("restricted_namespace", admission::restricted_namespace),
        ("jobs_complete", secrets::jobs_complete),
        (
            "deleting_a_pod_revokes_its_lease",
            secrets::deleting_a_pod_revokes_its_lease,
        ),
        ("database_lease_renewed", secrets::database_lease_renewed),
        ("killed_sidecar_restarts", secrets::killed_sidecar_restarts),
        ("vault_k8s_pod", secrets::vault_k8s_pod),
        (
            "injector_down_fails_closed",
            admission::injector_down_fails_closed,
        ),
        ("tls_auto", admission::tls_auto),
    ];
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        eprintln!("node: scenario {name}");
        let started = std::time::Instant::now();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&bed))).is_err() {
            failed.push(name);
        }
        eprintln!(
            "node: scenario {name} took {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let memory = bed.node.memory();
    let total: u64 = memory.iter().map(|(_, kib)| kib).sum();
    let each: Vec<String> = memory
        .iter()
        .map(|(name, kib)| format!("{name} {} MiB", kib / 1024))
        .collect();
    eprintln!(
        "node: memory of the node's processes {} MiB ({})",
        total / 1024,
        each.join(", ")
    );
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

/// `scripts/cluster up` on a machine that lacks a piece stops naming it (exit 69), before
/// or after it started the others, and `down` then leaves nothing behind.
#[test]
fn cluster_up_names_what_is_missing() {
    let _lock = node::lock();
    let code = |o: &Output| o.status.code();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // A node left by a test binary that was killed is no part of this test.
    let clean = node::cluster_with("down", &[]);
    assert_eq!(code(&clean), Some(0), "{}", stderr(&clean));
    // No Kubernetes binaries at all: named before anything starts.
    let empty = common::scratch();
    let up = node::cluster_with("up", &[("RAMSECRETS_NODE_BIN", empty.path())]);
    let missing = format!("{}/etcd is missing", empty.path().display());
    assert_eq!(code(&up), Some(69), "{}", stderr(&up));
    assert!(stderr(&up).contains(&missing), "{}", stderr(&up));
    assert!(!std::path::Path::new("/run/netns/ramsecrets-node").exists());
    // An etcd that cannot run: found once the others started; `down` stops them all.
    let broken = common::scratch();
    let bin = common::repo().join(".testbed/bin");
    for entry in std::fs::read_dir(&bin).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), broken.path().join(entry.file_name())).unwrap();
    }
    let etcd = broken.path().join("etcd");
    std::fs::remove_file(&etcd).unwrap();
    std::fs::write(&etcd, "#!/bin/sh\necho 'etcd: cannot start' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&etcd, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = [("RAMSECRETS_NODE_BIN", broken.path())];
    let up = node::cluster_with("up", &env);
    assert_eq!(code(&up), Some(69), "{}", stderr(&up));
    assert!(
        stderr(&up).contains("etcd exited while waiting for kube-apiserver"),
        "{}",
        stderr(&up)
    );
    assert!(std::path::Path::new("/run/netns/ramsecrets-node").exists());
    let down = node::cluster_with("down", &env);
    assert_eq!(code(&down), Some(0), "{}", stderr(&down));
    for gone in [
        "/run/netns/ramsecrets-node",
        "/run/ramsecrets-node",
        "/var/lib/ramsecrets-node",
    ] {
        assert!(!std::path::Path::new(gone).exists(), "{gone} is left");
    }
    // No process of that node: its API server and containerd had started.
    let ours = format!(
        "{}/|containerd --config /run/ramsecrets-node/",
        broken.path().display()
    );
    let left = std::process::Command::new("pgrep")
        .args(["-af", &ours])
        .output()
        .unwrap();
    assert_eq!(
        code(&left),
        Some(1),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

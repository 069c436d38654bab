//! The local Kubernetes node of `scripts/cluster` for the end-to-end tests: [`Node::up`]
//! takes the machine's node lock (one node per machine; a second test binary waits),
//! starts the node, and moves the calling thread into the node's network namespace, so
//! that the API server, OpenBao and PostgreSQL started from that thread, and the pods,
//! reach each other on the namespace's addresses and nothing else does. Dropping the
//! [`Node`] stops it (`scripts/cluster down`), also when a test fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::apply::Call;
use super::repo;

/// The machine's node lock, held while a node runs.
const LOCK: &str = "/run/lock/ramsecrets-node.lock";

/// A running node; stopped on drop.
pub struct Node {
    /// `scripts/cluster env`: KUBECONFIG, KUBECTL, HOST_IP, API_URL, CA_FILE,
    /// RAMSECRETS_IMAGE, APP_IMAGE, NETNS.
    pub env: BTreeMap<String, String>,
    http: reqwest::blocking::Client,
    admin_token: String,
    _lock: File,
}

fn cluster(arg: &str) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("scripts/cluster"))
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/cluster {arg}: {e}"))
}

impl Node {
    /// Starts the node (waiting for another test binary's node to stop first) and moves
    /// this thread into its network namespace.
    pub fn up() -> Node {
        use rustix::fs::{flock, FlockOperation};
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        std::fs::create_dir_all("/run/lock").unwrap();
        let lock = File::create(LOCK).unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        flock(&lock, FlockOperation::LockExclusive).unwrap();
        let up = cluster("up");
        assert!(
            up.status.success(),
            "scripts/cluster up failed ({}):\n{}{}",
            up.status,
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let env: BTreeMap<String, String> = String::from_utf8(cluster("env").stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let netns = File::open(&env["NETNS"]).unwrap();
        move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&netns),
            Some(LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("cannot enter {}: {e}", env["NETNS"]));
        let kubeconfig: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&env["KUBECONFIG"]).unwrap()).unwrap();
        let admin_token = kubeconfig["users"][0]["user"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        let ca = std::fs::read(&env["CA_FILE"]).unwrap();
        // Made after the move: its thread starts in the namespace.
        let http = reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Node {
            env,
            http,
            admin_token,
            _lock: lock,
        }
    }

    /// The address in the node's namespace where servers listen for pods.
    pub fn host_ip(&self) -> &str {
        &self.env["HOST_IP"]
    }

    /// `kubectl ARGS` as the admin: its output, or a panic with what it printed.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_kubectl(args);
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }

    /// `kubectl ARGS` as the admin: whether it succeeded, and stdout then stderr.
    pub fn try_kubectl(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(&self.env["KUBECTL"])
            .arg("--kubeconfig")
            .arg(&self.env["KUBECONFIG"])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// What a failure report needs about namespace `ns`: its pods described, their
    /// containers' logs, and its events.
    pub fn diagnose(&self, ns: &str) -> String {
        let run = |args: &[&str]| self.try_kubectl(args).1;
        let mut out = format!("--- pods in {ns}\n{}", run(&["-n", ns, "describe", "pods"]));
        let pods = run(&["-n", ns, "get", "pods", "-o", "name"]);
        for pod in pods.lines().filter(|l| l.starts_with("pod/")) {
            out += &format!(
                "--- logs of {pod}\n{}",
                run(&[
                    "-n",
                    ns,
                    "logs",
                    pod,
                    "--all-containers",
                    "--prefix",
                    "--tail=40"
                ])
            );
        }
        out + &format!(
            "--- events in {ns}\n{}",
            run(&["-n", ns, "get", "events", "--sort-by=.lastTimestamp"])
        )
    }

    /// Polls `check` every 250 ms until it holds; after `limit`, panics with `what` and
    /// [`Node::diagnose`] of each namespace in `namespaces`.
    pub fn wait(
        &self,
        limit: Duration,
        what: &str,
        namespaces: &[&str],
        mut check: impl FnMut() -> bool,
    ) {
        let until = Instant::now() + limit;
        while !check() {
            if Instant::now() > until {
                let report: Vec<String> = namespaces.iter().map(|ns| self.diagnose(ns)).collect();
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    report.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until Deployment `ns/name` has all its replicas available.
    pub fn wait_deployment(&self, ns: &str, name: &str, namespaces: &[&str]) {
        self.wait(
            Duration::from_secs(300),
            &format!("Deployment {ns}/{name} available"),
            namespaces,
            || {
                let (status, d) = self.call(
                    "GET",
                    &format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
                    None,
                );
                status == 200
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                    && d["status"]["availableReplicas"] == d["spec"]["replicas"]
                    && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
            },
        );
    }

    /// The running pods of `ns` with label `selector` (`key=value`).
    pub fn pods(&self, ns: &str, selector: &str) -> Vec<Value> {
        let (status, list) = self.call(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods?labelSelector={selector}"),
            None,
        );
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
            .collect()
    }

    /// `CMD` in container `container` of pod `ns/pod` (`kubectl exec`): its output, or
    /// None when it fails.
    pub fn exec(&self, ns: &str, pod: &str, container: &str, cmd: &[&str]) -> Option<String> {
        let mut args = vec!["-n", ns, "exec", pod, "-c", container, "--"];
        args.extend_from_slice(cmd);
        match self.try_kubectl(&args) {
            (true, out) => Some(out),
            (false, _) => None,
        }
    }
}

impl Call for Node {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.env["API_URL"]),
            )
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let down = cluster("down");
        if !down.status.success() {
            eprintln!(
                "scripts/cluster down failed ({}):\n{}",
                down.status,
                String::from_utf8_lossy(&down.stderr)
            );
        }
    }
}

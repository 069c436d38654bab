//! The local Kubernetes node of `scripts/cluster` for the end-to-end tests: [`Node::up`]
//! takes the machine's node lock (one node per machine; a second test binary waits),
//! starts the node, and moves the calling thread into the node's network namespace, so
//! that the API server, OpenBao and PostgreSQL started from that thread, and the pods,
//! reach each other on the namespace's addresses and nothing else does. Dropping the
//! [`Node`] stops it (`scripts/cluster down`), also when a test fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::apply::Call;
use super::repo;

/// The machine's node lock, held while a node runs.
const LOCK: &str = "/run/lock/ramsecrets-node.lock";

/// Where `scripts/cluster` keeps the pid of each process it started.
const PIDS: &str = "/run/ramsecrets-node/pid";

/// A running node; stopped on drop.
pub struct Node {
    /// `scripts/cluster env`: KUBECONFIG, KUBECTL, HOST_IP, API_URL, CA_FILE,
    /// RAMSECRETS_IMAGE, APP_IMAGE, NETNS.
    pub env: BTreeMap<String, String>,
    http: reqwest::blocking::Client,
    admin_token: String,
    _lock: File,
}

/// `scripts/cluster ARG`, with `env` added to its environment.
pub fn cluster_with(arg: &str, env: &[(&str, &Path)]) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("scripts/cluster"))
        .arg(arg)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/cluster {arg}: {e}"))
}

fn cluster(arg: &str) -> std::process::Output {
    cluster_with(arg, &[])
}

/// Takes the machine's node lock (waiting while another test binary's node runs): while it
/// is held, no other test starts or stops a node.
pub fn lock() -> File {
    use rustix::fs::{flock, FlockOperation};
    std::fs::create_dir_all("/run/lock").unwrap();
    let lock = File::create(LOCK).unwrap_or_else(|e| panic!("{LOCK}: {e}"));
    flock(&lock, FlockOperation::LockExclusive).unwrap();
    lock
}

impl Node {
    /// Starts the node (waiting for another test binary's node to stop first) and moves
    /// this thread into its network namespace.
    pub fn up() -> Node {
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        let lock = lock();
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
        let kubeconfig: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&env["KUBECONFIG"]).unwrap()).unwrap();
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

impl Node {
    /// The object at API path `path`, or None when it does not exist.
    pub fn get(&self, path: &str) -> Option<Value> {
        match self.call("GET", path, None) {
            (200, object) => Some(object),
            (404, _) => None,
            (status, body) => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Waits until pod `ns/name` is Ready; returns it as it is then.
    pub fn wait_pod_ready(&self, ns: &str, name: &str, namespaces: &[&str]) -> Value {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let mut ready = Value::Null;
        self.wait(
            Duration::from_secs(300),
            &format!("pod {ns}/{name} Ready"),
            namespaces,
            || {
                ready = self.get(&path).unwrap_or_default();
                condition(&ready, "Ready")
            },
        );
        ready
    }

    /// Waits until Job `ns/name` is Complete; panics with [`Node::diagnose`] when it failed.
    pub fn wait_job(&self, ns: &str, name: &str, namespaces: &[&str]) {
        let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}");
        self.wait(
            Duration::from_secs(300),
            &format!("Job {ns}/{name} Complete"),
            namespaces,
            || {
                let job = self.get(&path).unwrap_or_default();
                if condition(&job, "Failed") {
                    panic!("Job {ns}/{name} failed: {job}\n{}", self.diagnose(ns));
                }
                condition(&job, "Complete")
            },
        );
    }

    /// Starts reading the log of container `container` of pod `ns/pod` until the container
    /// ends (`kubectl logs -f`); [`Logs::end`] returns it.
    pub fn follow_logs(&self, ns: &str, pod: &str, container: &str) -> Logs {
        let child = Command::new(&self.env["KUBECTL"])
            .arg("--kubeconfig")
            .arg(&self.env["KUBECONFIG"])
            .args(["-n", ns, "logs", "-f", "--tail=-1", pod, "-c", container])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Logs(child)
    }

    /// The resident memory (VmRSS, KiB) of each process `scripts/cluster` started (etcd, the
    /// API server, containerd, the controller manager, the scheduler, the kubelet), by name.
    pub fn memory(&self) -> Vec<(String, u64)> {
        let mut rss = Vec::new();
        for entry in std::fs::read_dir(PIDS).unwrap_or_else(|e| panic!("{PIDS}: {e}")) {
            let entry = entry.unwrap();
            let pid = std::fs::read_to_string(entry.path()).unwrap();
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
            let kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            rss.push((entry.file_name().to_string_lossy().into_owned(), kib));
        }
        rss.sort();
        rss
    }

    /// Waits until the object at API path `path` is gone.
    pub fn wait_gone(&self, path: &str, namespaces: &[&str]) {
        self.wait(
            Duration::from_secs(300),
            &format!("{path} gone"),
            namespaces,
            || self.get(path).is_none(),
        );
    }
}

/// A container's log being read ([`Node::follow_logs`]).
pub struct Logs(std::process::Child);

impl Logs {
    /// The log, once the container ended (or after 60 s, what was read by then).
    pub fn end(mut self) -> String {
        use std::io::Read;
        let until = Instant::now() + Duration::from_secs(60);
        while self.0.try_wait().unwrap().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let mut log = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let _ = self.0.wait();
        log
    }
}

/// Whether `object`'s status has condition `kind` with status True.
pub fn condition(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// The status of container `name` of `pod` (an init container or an app container).
pub fn container_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("pod has no status of container {name}: {pod}"))
}

/// The memory cgroup of container `name` of `pod` as the kubelet made it (cgroupfs driver):
/// `kubepods/QOS/podUID/ID` in cgroup v1's memory hierarchy, or in the unified one.
pub fn container_cgroup(pod: &Value, name: &str) -> PathBuf {
    let id = container_status(pod, name)["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .unwrap_or_else(|| panic!("container {name} has no containerd ID: {pod}"));
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let qos = match pod["status"]["qosClass"].as_str() {
        Some("Guaranteed") => String::new(),
        Some(class) => format!("{}/", class.to_lowercase()),
        None => panic!("pod has no QoS class: {pod}"),
    };
    let root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/memory"
    };
    let dir = PathBuf::from(format!("{root}/kubepods/{qos}pod{uid}/{id}"));
    assert!(
        dir.is_dir(),
        "no cgroup {} for container {name}",
        dir.display()
    );
    dir
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

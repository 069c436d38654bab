//! What injected pods get on the node: files from KV and from leased database credentials,
//! rotation reaching the running pod (a KV update; a lease renewed, then re-issued), Jobs
//! that complete, leases revoked with the pod and kept across a sidecar's crash, the
//! sidecar's real memory, and a pod written for vault-k8s.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::apply::Call;
use super::common::helm::NAMESPACE;
use super::common::node::{container_cgroup, container_status};
use super::{deployment, init_containers, job, pod, ramsecrets, Bed, APPS, MOUNT};

/// Far beyond what each awaited event takes, for two busy cores.
const LIMIT: Duration = Duration::from_secs(180);

/// A Deployment annotated for a KV secret: its pod becomes Ready, and the app container
/// reads the file from the memory volume (content, mode, owner) but cannot see the state
/// volume.
pub fn deployment_reads_kv(bed: &Bed) {
    bed.bao
        .kv2_put("app/config", json!({"greeting": "hello from openbao"}));
    let created = Instant::now();
    bed.create(&deployment(
        "kv",
        ramsecrets(&[
            ("secret.config", "kv:secret/app/config"),
            ("format.config", "json"),
        ]),
    ));
    bed.node.wait_deployment(APPS, "kv", &[APPS, NAMESPACE]);
    eprintln!(
        "node: Deployment kv Ready {:.1}s after create",
        created.elapsed().as_secs_f64()
    );
    let pod = bed.pod("kv");
    assert_eq!(init_containers(&pod), ["ramsecrets"], "{pod}");
    let file = bed.read(&pod, "config");
    let value: Value = serde_json::from_str(&file).unwrap_or_else(|e| panic!("{e}: {file}"));
    assert_eq!(value["greeting"], "hello from openbao");
    let stat = bed
        .sh(&pod, "app", &format!("stat -c '%a %u' {MOUNT}/config"))
        .unwrap();
    assert_eq!(stat.trim(), "444 65532");
    // The secrets volume is memory, read-only for the app.
    let mounts = bed.sh(&pod, "app", "cat /proc/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(MOUNT))
        .unwrap_or_else(|| panic!("no mount at {MOUNT}:\n{mounts}"));
    assert!(
        line.starts_with("tmpfs ") && line.contains(" ro,"),
        "{line}"
    );
    // The state volume (token and leases) is not in the app's container.
    assert!(!mounts.contains("/run/ramsecrets"), "{mounts}");
    assert!(bed.sh(&pod, "app", "ls /run/ramsecrets").is_none());
}

/// A KV update in OpenBao reaches the file inside the running pod of `kv` (refresh 2 s).
pub fn rotation_reaches_the_pod(bed: &Bed) {
    let pod = bed.pod("kv");
    bed.bao
        .kv2_put("app/config", json!({"greeting": "rotated in openbao"}));
    let updated = Instant::now();
    bed.node.wait(
        LIMIT,
        "the updated value in the pod's file",
        &[APPS, NAMESPACE],
        || bed.read(&pod, "config").contains("rotated in openbao"),
    );
    eprintln!(
        "node: the update reached the pod's file {:.1}s after the write (refresh 2s)",
        updated.elapsed().as_secs_f64()
    );
    let now = bed.again(&pod);
    assert_eq!(container_status(&now, "app")["restartCount"], 0, "{now}");
}

/// The sidecar's memory in the pod of `kv` after its first render (the memory cgroup of
/// its container, as the kubelet and the OOM killer count it) is under its request.
pub fn sidecar_memory_in_the_pod(bed: &Bed) {
    let pod = bed.again(&bed.pod("kv"));
    let sidecar = pod["spec"]["initContainers"][0].clone();
    let request = sidecar["resources"]["requests"]["memory"].as_str().unwrap();
    let request_bytes: u64 = match request.strip_suffix("Mi") {
        Some(mib) => mib.parse::<u64>().unwrap() << 20,
        None => panic!("memory request {request} is not in Mi"),
    };
    let cgroup = container_cgroup(&pod, "ramsecrets");
    let read = |file: &str| std::fs::read_to_string(cgroup.join(file)).ok();
    let usage: u64 = read("memory.current")
        .or_else(|| read("memory.usage_in_bytes"))
        .unwrap_or_else(|| panic!("no memory usage in {}", cgroup.display()))
        .trim()
        .parse()
        .unwrap();
    // What the usage is made of: rss and cache (cgroup v1), anon and file (v2).
    let stat = read("memory.stat").unwrap_or_default();
    let parts: Vec<String> = stat
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| ["rss", "cache", "anon", "file"].contains(k))
        .map(|(k, v)| format!("{k} {:.1} MiB", v.parse::<f64>().unwrap_or(0.0) / 1048576.0))
        .collect();
    // The process's own resident set also counts the binary's pages that the injector's
    // pod (same image) faulted in first, which the cgroup charges to that pod.
    let rss: Vec<String> = read("cgroup.procs")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            Some(line.trim_start_matches("VmRSS:").trim().to_string())
        })
        .collect();
    eprintln!(
        "node: sidecar memory in the pod: {:.1} MiB ({}; VmRSS {}), request {request}",
        usage as f64 / 1048576.0,
        parts.join(", "),
        rss.join(", ")
    );
    assert!(
        usage < request_bytes,
        "the sidecar uses {usage} bytes, over its request {request}\n{stat}"
    );
}

/// A Job in `init-only` mode and a Job with the native sidecar both complete, and their app
/// read the file.
pub fn jobs_complete(bed: &Bed) {
    let read = format!("cat {MOUNT}/config");
    let notes = [
        ("secret.config", "kv:secret/app/config"),
        ("format.config", "json"),
    ];
    let mut init_only = notes.to_vec();
    init_only.push(("mode", "init-only"));
    for (name, notes, injected) in [
        ("job-init-only", init_only, "ramsecrets-init"),
        ("job-sidecar", notes.to_vec(), "ramsecrets"),
    ] {
        bed.create(&job(name, ramsecrets(&notes), &read));
        bed.node.wait_job(APPS, name, &[APPS]);
        let pods = bed.node.pods(APPS, &format!("job-name={name}"));
        let pod = pods.first().unwrap_or_else(|| panic!("no pod of {name}"));
        assert_eq!(init_containers(pod), [injected], "{pod}");
        let logs = bed
            .node
            .kubectl(&["-n", APPS, "logs", &format!("job/{name}"), "-c", "app"]);
        assert!(logs.contains("\"greeting\""), "{name}: {logs}");
    }
}

/// Database credentials (a leased secret) in a pod: deleting the pod revokes its lease
/// before its containers are gone, so within the grace period.
pub fn deleting_a_pod_revokes_its_lease(bed: &Bed) {
    let leases = || bed.bao.leases("database/creds/revoke");
    bed.create(&pod(
        "lease",
        ramsecrets(&[
            ("secret.db", "read:database/creds/revoke"),
            ("format.db", "json"),
        ]),
    ));
    let pod = bed.node.wait_pod_ready(APPS, "lease", &[APPS]);
    let creds: Value = serde_json::from_str(&bed.read(&pod, "db")).unwrap();
    let login = || {
        let (user, password) = (&creds["username"], &creds["password"]);
        bed.pg
            .can_login(user.as_str().unwrap(), password.as_str().unwrap())
    };
    assert!(login(), "the pod's credentials do not log in: {creds}");
    assert_eq!(leases(), 1);
    // The sidecar's log to its end, which says what became of the lease.
    let follow = bed.node.follow_logs(APPS, "lease", "ramsecrets");
    let path = format!("/api/v1/namespaces/{APPS}/pods/lease");
    let deleted = Instant::now();
    bed.node.call("DELETE", &path, None);
    bed.node.wait_gone(&path, &[APPS]);
    eprintln!(
        "node: pod lease gone {:.1}s after delete (grace period 10s)",
        deleted.elapsed().as_secs_f64()
    );
    let log = follow.end();
    // Revoked with the sidecar's token (its policy has no sys/leases/ path), which Vault
    // follows by revoking the token's leases in the background.
    assert!(log.contains("token revoked"), "{log}");
    assert!(log.contains("lease revoked"), "{log}");
    let left = Instant::now();
    while leases() != 0 {
        assert!(
            left.elapsed() < Duration::from_secs(60),
            "the deleted pod's lease is left; its sidecar said:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!login(), "the deleted pod's credentials still log in");
}

/// Database credentials that last 15 s, at most 30 s: the sidecar in the pod renews the
/// lease, then reads new credentials as the end nears and writes them to the file; they log
/// in.
pub fn database_lease_renewed(bed: &Bed) {
    bed.create(&pod(
        "renew",
        ramsecrets(&[
            ("secret.db", "read:database/creds/renew"),
            ("format.db", "json"),
        ]),
    ));
    let pod = bed.node.wait_pod_ready(APPS, "renew", &[APPS]);
    let first = bed.read(&pod, "db");
    let mut now = first.clone();
    bed.node
        .wait(LIMIT, "new credentials in the pod's file", &[APPS], || {
            now = bed.read(&pod, "db");
            now != first
        });
    let creds: Value = serde_json::from_str(&now).unwrap_or_else(|e| panic!("{e}: {now}"));
    let (user, password) = (&creds["username"], &creds["password"]);
    assert!(
        bed.pg
            .can_login(user.as_str().unwrap(), password.as_str().unwrap()),
        "the new credentials do not log in: {creds}"
    );
    let log = bed
        .node
        .kubectl(&["-n", APPS, "logs", "renew", "-c", "ramsecrets"]);
    assert!(log.contains("lease renewed"), "{log}");
}

/// The sidecar's process killed (SIGKILL, as the OOM killer would): the kubelet restarts
/// it, the app keeps running, the file stays the same, and the restarted sidecar adopts the
/// lease from the state volume instead of taking a second one.
pub fn killed_sidecar_restarts(bed: &Bed) {
    let leases = || bed.bao.leases("database/creds/restart");
    bed.create(&deployment(
        "restart",
        ramsecrets(&[
            ("secret.db", "read:database/creds/restart"),
            ("format.db", "json"),
        ]),
    ));
    bed.node.wait_deployment(APPS, "restart", &[APPS]);
    let pod = bed.again(&bed.pod("restart"));
    let before = bed.read(&pod, "db");
    assert_eq!(leases(), 1);
    let app_id = container_status(&pod, "app")["containerID"].clone();
    let procs = container_cgroup(&pod, "ramsecrets").join("cgroup.procs");
    let pids = std::fs::read_to_string(&procs).unwrap();
    assert!(!pids.trim().is_empty(), "no process in {}", procs.display());
    for pid in pids.split_whitespace() {
        let pid = rustix::process::Pid::from_raw(pid.parse().unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    let mut now = pod.clone();
    bed.node
        .wait(LIMIT, "the sidecar restarted and ready", &[APPS], || {
            now = bed.again(&pod);
            let sidecar = container_status(&now, "ramsecrets");
            sidecar["restartCount"].as_u64() >= Some(1) && sidecar["ready"] == true
        });
    let app = container_status(&now, "app");
    assert_eq!(app["restartCount"], 0, "the app was restarted: {now}");
    assert_eq!(app["containerID"], app_id, "the app was replaced: {now}");
    assert_eq!(bed.read(&now, "db"), before, "the file changed");
    assert_eq!(leases(), 1, "the restarted sidecar took a second lease");
}

/// A pod written for vault-k8s (its annotations as they are, the chart's
/// `injection.compat: vault-k8s`) runs, with its file at `/vault/secrets`.
pub fn vault_k8s_pod(bed: &Bed) {
    bed.bao
        .kv2_put("app/config", json!({"greeting": "hello vault-k8s"}));
    let notes = json!({
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "app",
        "vault.hashicorp.com/agent-inject-secret-config.txt": "secret/data/app/config",
    });
    bed.create(&deployment("vault-k8s", notes));
    bed.node
        .wait_deployment(APPS, "vault-k8s", &[APPS, NAMESPACE]);
    let pod = bed.pod("vault-k8s");
    assert_eq!(init_containers(&pod), ["ramsecrets"], "{pod}");
    let file = bed
        .sh(&pod, "app", "cat /vault/secrets/config.txt")
        .unwrap_or_else(|| panic!("cannot read the file\n{}", bed.node.diagnose(APPS)));
    // vault-k8s's default template: `key: value` lines of .Data, as Go prints maps.
    assert!(
        file.starts_with("data: map[greeting:hello vault-k8s]\nmetadata: map[created_time:"),
        "{file}"
    );
}

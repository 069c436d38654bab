//! `ramsecrets inject` behind a real kube-apiserver: a MutatingWebhookConfiguration
//! points at the injector (`url:` client config with the CA bundle), pods are
//! created, and what the API server stored (after its own validation) is read
//! back. No kubelet runs, so the injected spec is also run here by hand.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, PostParams};
use common::injector::*;
use common::kube::{serving_cert, ControlPlane};
use common::mesh::{self, Mesh};
use common::*;
use k8s_openapi::api::batch::v1::Job;
use serde_json::{json, Value};

const NS: &str = "apps";

#[test]
fn pods_are_injected_as_stored_by_the_api_server() {
    let cp = ControlPlane::start();
    let bao = cp.bao_with_kubernetes_auth(NS, "1h");
    cp.service_account("kube-system", "app");
    let work = scratch();
    let health = free_port();
    let mut injector = start_injector(
        &cp,
        work.path(),
        &bao.addr,
        free_port(),
        None,
        json!({ "defaults": { "health_port": health } }),
    );
    register(&cp, "ramsecrets", NS, injector.port, &injector.ca_pem);
    wait_for_webhook(&cp, NS);

    // A plain pod: a native sidecar first, the memory volumes, the token, the config.
    let plain = create(&cp, NS, &pod("plain", annotated(json!({})), app_spec())).unwrap();
    let spec = &plain["spec"];
    assert_eq!(names(&spec["initContainers"]), ["ramsecrets"]);
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    let volumes = names(&spec["volumes"]);
    for v in [
        "ramsecrets-secrets",
        "ramsecrets-state",
        "ramsecrets-config",
        "ramsecrets-token",
    ] {
        assert!(volumes.contains(&v.to_string()), "{v} in {volumes:?}");
    }
    assert!(
        volumes.iter().any(|v| v.starts_with("kube-api-access-")),
        "the ServiceAccount admission plugin ran too: {volumes:?}"
    );
    let app_mounts = spec["containers"][0]["volumeMounts"].to_string();
    assert!(
        app_mounts.contains("\"ramsecrets-secrets\"") && !app_mounts.contains("ramsecrets-state")
    );
    eprintln!(
        "stored pod spec:\n{}",
        serde_saphyr::to_string(&plain["spec"]).unwrap()
    );

    // Its own init containers run after ramsecrets, with the secrets.
    let mut with_init = app_spec();
    with_init["initContainers"] = json!([{ "name": "migrate", "image": "migrate:1" }]);
    let p = create(&cp, NS, &pod("with-init", annotated(json!({})), with_init)).unwrap();
    assert_eq!(
        names(&p["spec"]["initContainers"]),
        ["ramsecrets", "migrate"]
    );
    assert!(p["spec"]["initContainers"][1]["volumeMounts"]
        .to_string()
        .contains("ramsecrets-secrets"));

    // Several containers, one selected.
    let mut two = app_spec();
    two["containers"] =
        json!([{ "name": "app", "image": "a" }, { "name": "metrics", "image": "m" }]);
    let p = create(
        &cp,
        NS,
        &pod(
            "selected",
            annotated(json!({ "ramsecrets.io/containers": "app" })),
            two,
        ),
    )
    .unwrap();
    assert!(p["spec"]["containers"][0]["volumeMounts"]
        .to_string()
        .contains("ramsecrets-secrets"));
    assert!(!p["spec"]["containers"][1]["volumeMounts"]
        .to_string()
        .contains("ramsecrets-secrets"));

    // A Job's pod template in init-only mode: the Job is valid, and its pod
    // (made here as the Job controller would) gets one init container.
    let jobs: Api<Job> = Api::namespaced(cp.client(), NS);
    let template = json!({
        "metadata": { "annotations": annotated(json!({ "ramsecrets.io/mode": "init-only" })) },
        "spec": { "serviceAccountName": "app", "restartPolicy": "Never",
                  "containers": [{ "name": "job", "image": "job:1" }] }
    });
    let job: Job = serde_json::from_value(
        json!({ "metadata": { "name": "report" }, "spec": { "template": template } }),
    )
    .unwrap();
    cp.block_on(jobs.create(&PostParams::default(), &job))
        .unwrap();
    let job_pod = create(
        &cp,
        NS,
        &pod(
            "report-x1",
            template["metadata"]["annotations"].clone(),
            template["spec"].clone(),
        ),
    )
    .unwrap();
    assert_eq!(
        names(&job_pod["spec"]["initContainers"]),
        ["ramsecrets-init"]
    );
    assert_eq!(names(&job_pod["spec"]["containers"]), ["job"]);

    // An already injected pod is stored as it was sent.
    let mut again = plain.clone();
    let meta = again["metadata"].as_object_mut().unwrap();
    meta.retain(|k, _| k == "annotations" || k == "labels");
    meta.insert("name".into(), json!("again"));
    again.as_object_mut().unwrap().remove("status");
    let p = create(&cp, NS, &again).unwrap();
    assert_eq!(p["spec"]["initContainers"], plain["spec"]["initContainers"]);
    assert_eq!(
        names(&p["spec"]["volumes"]),
        names(&plain["spec"]["volumes"])
    );

    // Not annotated, or in kube-system (the webhook is called for both): untouched.
    let p = create(&cp, NS, &pod("bare", json!({}), app_spec())).unwrap();
    assert!(p["spec"].get("initContainers").is_none());
    let p = create(
        &cp,
        "kube-system",
        &pod("system", annotated(json!({})), app_spec()),
    )
    .unwrap();
    assert!(p["spec"].get("initContainers").is_none());

    // Bad annotations: the create fails with the webhook's message.
    for (extra, key) in [
        (
            json!({ "ramsecrets.io/mode.db": "0999" }),
            "ramsecrets.io/mode.db",
        ),
        (
            json!({ "ramsecrets.io/secret.db": "kv:nomount" }),
            "ramsecrets.io/secret.db",
        ),
        (
            json!({ "ramsecrets.io/secret.db": "ssm-path:app" }),
            "ramsecrets.io/secret.db",
        ),
        (
            json!({ "ramsecrets.io/secret.db": "ssm:/app/db" }),
            "Parameter Store source",
        ),
        (
            json!({ "ramsecrets.io/colour": "red" }),
            "ramsecrets.io/colour",
        ),
        (
            json!({ "ramsecrets.io/containers": "ghost" }),
            "ramsecrets.io/containers",
        ),
    ] {
        let refused =
            create(&cp, NS, &pod("bad", annotated(extra.clone()), app_spec())).unwrap_err();
        assert!(
            refused.contains("denied the request") && refused.contains(key),
            "{extra}: {refused}"
        );
    }

    // The injected spec runs: the Job pod's init container and the plain
    // pod's sidecar, with tmpfs for the memory volumes and a TokenRequest
    // token for the projected one, against OpenBao's kubernetes auth.
    let token = cp.token(NS, "app", "vault");
    let out = run_container(&job_pod, "ramsecrets-init", "db", &token, work.path());
    assert_eq!(out.trim(), "from-k8s-login");
    let out = run_container(&plain, "ramsecrets", "db", &token, work.path());
    assert_eq!(out.trim(), "from-k8s-login");

    // Its metrics counted what the API server sent.
    let metrics = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(injector.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{}/metrics", injector.port))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // Every result's series is there from the start; these were counted.
    for result in ["patched", "unchanged", "denied"] {
        let prefix = format!("ramsecrets_admission_reviews_total{{result=\"{result}\"}} ");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in {metrics}"));
        assert!(count >= 1.0, "{metrics}");
    }

    // A namespace with a `limits.cpu` quota admits an injected pod: the
    // injected containers have a CPU limit by default (the pod's app sets its own).
    let quotas = format!("/api/v1/namespaces/{NS}/resourcequotas");
    let hard = json!({ "limits.cpu": "4", "limits.memory": "4Gi" });
    let (status, body) = cp.call(
        "POST",
        &quotas,
        Some(json!({ "metadata": { "name": "limits" }, "spec": { "hard": hard } })),
    );
    assert_eq!(status, 201, "{body}");
    // What the quota controller would record (none runs here): the admission
    // plugin judges against the status.
    let mut quota = body;
    quota["status"] = json!({ "hard": hard, "used": { "limits.cpu": "0", "limits.memory": "0" } });
    let (status, body) = cp.call("PUT", &format!("{quotas}/limits/status"), Some(quota));
    assert_eq!(status, 200, "{body}");
    let mut limited = app_spec();
    limited["containers"][0]["resources"] =
        json!({ "limits": { "cpu": "100m", "memory": "64Mi" } });
    let p = create(
        &cp,
        NS,
        &pod("quota", annotated(json!({})), limited.clone()),
    )
    .unwrap_or_else(|e| panic!("refused under a limits.cpu quota: {e}"));
    assert_eq!(
        p["spec"]["initContainers"][0]["resources"]["limits"]["cpu"],
        "250m"
    );
    // A pod's own limits: a bad one is refused naming it.
    let refused = create(
        &cp,
        NS,
        &pod(
            "quota-bad",
            annotated(json!({ "ramsecrets.io/limits-cpu": "lots" })),
            limited,
        ),
    )
    .unwrap_err();
    assert!(refused.contains("ramsecrets.io/limits-cpu"), "{refused}");

    // failurePolicy Fail: with the injector stopped, an annotated pod is refused.
    assert_eq!(
        injector.run.stop(rustix::process::Signal::TERM),
        Some(0),
        "{}",
        injector.run.logs()
    );
    let refused = create(&cp, NS, &pod("unserved", annotated(json!({})), app_spec())).unwrap_err();
    assert!(refused.contains("failed calling webhook"), "{refused}");
}

/// Runs container `name` of stored pod `pod` as the kubelet would, as far as
/// ramsecrets can tell: the same args, its volume mounts at the same paths
/// (a private mount namespace, tmpfs for the memory and downward-API volumes,
/// `token` as the projected token), until its secrets are written; returns
/// the secrets' `file`.
fn run_container(pod: &Value, name: &str, file: &str, token: &str, dir: &Path) -> String {
    let spec = &pod["spec"];
    let c = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    let annotations = &pod["metadata"]["annotations"];
    let stage = tempfile::tempdir_in(dir).unwrap();
    let mut script = String::from("set -e\nmount -t tmpfs tmpfs /run\n");
    let mut secrets_path = String::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let path = m["mountPath"].as_str().unwrap();
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        script.push_str(&format!(
            "mkdir -p {path}\nmount -t tmpfs -o size=1m tmpfs {path}\n"
        ));
        let mut put = |file: &str, content: &str| {
            let staged: PathBuf = stage
                .path()
                .join(format!("{}-{file}", m["name"].as_str().unwrap()));
            std::fs::write(&staged, content).unwrap();
            script.push_str(&format!("cp {} {path}/{file}\n", staged.display()));
        };
        if let Some(items) = volume["downwardAPI"]["items"].as_array() {
            for item in items {
                let field = item["fieldRef"]["fieldPath"].as_str().unwrap();
                let key = field
                    .trim_start_matches("metadata.annotations['")
                    .trim_end_matches("']");
                put(
                    item["path"].as_str().unwrap(),
                    annotations[key].as_str().unwrap(),
                );
            }
        }
        if volume.get("projected").is_some() {
            put("token", token);
        }
        if m["name"] == "ramsecrets-secrets" {
            secrets_path = path.to_owned();
        }
    }
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let verb = args[0].clone();
    let bin = env!("CARGO_BIN_EXE_ramsecrets");
    let db = format!("{secrets_path}/{file}");
    // `init` exits when done; the sidecar runs until its file is there, then stops.
    match verb.as_str() {
        "init" => script.push_str(&format!("{bin} \"$@\"\ncat {db}\n")),
        _ => script.push_str(&format!(
            "{bin} \"$@\" & pid=$!\nfor i in $(seq 600); do [ -s {db} ] && break; sleep 0.1; done\ncat {db}\nkill -TERM $pid\nwait $pid\n"
        )),
    }
    let o = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name} of the stored pod failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The pods of vault-k8s's documentation (getting started, a template for a
/// database URL, `pre-populate-only` for a Job), with the test bed's role and
/// path, are admitted with `inject.compat: vault-k8s`, stored by the API
/// server, and their injected containers write `/vault/secrets` from OpenBao.
#[test]
fn vault_k8s_pods_are_injected_as_stored_by_the_api_server() {
    let cp = ControlPlane::start();
    let bao = cp.bao_with_kubernetes_auth(NS, "1h");
    let work = scratch();
    let injector = start_injector(
        &cp,
        work.path(),
        &bao.addr,
        free_port(),
        None,
        json!({ "compat": "vault-k8s", "defaults": { "health_port": free_port() } }),
    );
    register(&cp, "ramsecrets", NS, injector.port, &injector.ca_pem);
    wait_for_webhook(&cp, NS);
    let getting_started = json!({
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "app",
        "vault.hashicorp.com/agent-inject-secret-database-config.txt": "secret/data/app/db",
    });
    let mut url = getting_started.clone();
    url["vault.hashicorp.com/agent-inject-template-database-config.txt"] = json!(
        "{{- with secret \"secret/data/app/db\" -}}\npostgresql://app:{{ .Data.data.password }}@postgres:5432/wizard\n{{- end -}}\n"
    );
    let mut job = url.clone();
    job["vault.hashicorp.com/agent-pre-populate-only"] = json!("true");
    let mut job_spec = app_spec();
    job_spec["restartPolicy"] = json!("Never");

    let plain = create(
        &cp,
        NS,
        &pod("getting-started", getting_started, app_spec()),
    )
    .unwrap();
    assert_eq!(names(&plain["spec"]["initContainers"]), ["ramsecrets"]);
    let mounts = plain["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("\"/vault/secrets\""), "{mounts}");
    let with_url = create(&cp, NS, &pod("db-url", url, app_spec())).unwrap();
    let job_pod = create(&cp, NS, &pod("job", job, job_spec)).unwrap();
    assert_eq!(
        names(&job_pod["spec"]["initContainers"]),
        ["ramsecrets-init"]
    );

    // Refused at admission, naming the annotation: an unsupported one, a template beyond the subset.
    for (extra, key) in [
        (
            json!({ "vault.hashicorp.com/agent-json-patch": "[]" }),
            "vault.hashicorp.com/agent-json-patch",
        ),
        (
            json!({ "vault.hashicorp.com/agent-inject-template-database-config.txt": "{{ with pkiCert \"pki/issue/x\" }}{{ end }}" }),
            "vault.hashicorp.com/agent-inject-template-database-config.txt",
        ),
    ] {
        let mut a = json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/agent-inject-secret-database-config.txt": "secret/data/app/db",
        });
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let refused = create(&cp, NS, &pod("refused", a, app_spec())).unwrap_err();
        assert!(refused.contains(key), "{extra}: {refused}");
    }

    let token = cp.token(NS, "app", "vault");
    let file = "database-config.txt";
    let out = run_container(&plain, "ramsecrets", file, &token, work.path());
    assert!(
        out.starts_with("data: map[password:from-k8s-login]\nmetadata: map[created_time:"),
        "{out}"
    );
    let url = "postgresql://app:from-k8s-login@postgres:5432/wizard";
    assert_eq!(
        run_container(&with_url, "ramsecrets", file, &token, work.path()),
        url
    );
    assert_eq!(
        run_container(&job_pod, "ramsecrets-init", file, &token, work.path()),
        url
    );
}

#[test]
fn tls_auto_patches_the_ca_bundle_keeping_other_cas_and_refuses_one_that_is_not_pem() {
    let cp = ControlPlane::start();
    cp.service_account(NS, "app");
    let work = scratch();
    let webhook = |name: &str| {
        let (_, mwc) = cp.call(
            "GET",
            &format!("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"),
            None,
        );
        mwc["webhooks"][0]["clientConfig"]["caBundle"].clone()
    };
    // A bundle that is not PEM is an error naming it, and is left as it is.
    register(
        &cp,
        "ramsecrets-bad",
        "nowhere",
        free_port(),
        "not a certificate",
    );
    let before = webhook("ramsecrets-bad");
    let tls = json!({ "auto": { "webhook": "ramsecrets-bad", "names": ["127.0.0.1"] } });
    let cfg = injector_config(
        &cp,
        work.path(),
        "http://127.0.0.1:8200",
        free_port(),
        tls,
        json!({ "kubernetes_version": "1.28" }),
    );
    let out = ramsecrets(&["inject", "--config", cfg.to_str().unwrap()]);
    assert_exit(&out, 65);
    assert!(
        text(&out).contains("MutatingWebhookConfiguration ramsecrets-bad: webhook inject.ramsecrets.io: clientConfig.caBundle holds 17 bytes that are not a PEM certificate"),
        "{}",
        text(&out)
    );
    assert_eq!(webhook("ramsecrets-bad"), before);
    let (status, body) = cp.call(
        "DELETE",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ramsecrets-bad",
        None,
    );
    assert_eq!(status, 200, "{body}");

    // Registered with another replica's CA: ours is added before it, both kept.
    let (other_ca, _, _) = serving_cert(&["127.0.0.1"]);
    let port = free_port();
    register(&cp, "ramsecrets-auto", NS, port, &other_ca);
    // Told the server is 1.28: an init container and a regular sidecar,
    // which the real (newer) server stores as valid all the same.
    let mut injector = start_injector(
        &cp,
        work.path(),
        "http://127.0.0.1:8200",
        port,
        Some("ramsecrets-auto"),
        json!({ "kubernetes_version": "1.28" }),
    );
    assert!(
        injector.ca_pem.starts_with("-----BEGIN CERTIFICATE-----")
            && injector
                .ca_pem
                .matches("-----BEGIN CERTIFICATE-----")
                .count()
                == 2
            && injector.ca_pem.ends_with(&format!("{}\n", other_ca.trim())),
        "caBundle: {}",
        injector.ca_pem
    );
    wait_for_webhook(&cp, NS);
    let p = create(&cp, NS, &pod("auto", annotated(json!({})), app_spec())).unwrap();
    assert_eq!(names(&p["spec"]["initContainers"]), ["ramsecrets-init"]);
    assert_eq!(names(&p["spec"]["containers"]), ["app", "ramsecrets"]);
    assert_eq!(injector.run.stop(rustix::process::Signal::TERM), Some(0));
}

/// A mesh whose webhook runs after ramsecrets' (its configuration's name sorts after) adds
/// its `istio-init` after ramsecrets' container. With `ramsecrets.io/after: istio-init` the
/// API server's reinvocation of ramsecrets' webhook (`reinvocationPolicy: IfNeeded`) moves it
/// first, so the mesh's network is up before ramsecrets calls Vault.
#[test]
fn a_mesh_init_container_added_after_ours_is_moved_before_it() {
    let cp = ControlPlane::start();
    cp.service_account(NS, "app");
    let work = scratch();
    let port = free_port();
    let injector = start_injector(
        &cp,
        work.path(),
        "http://127.0.0.1:8200",
        port,
        None,
        json!({}),
    );
    register(&cp, "ramsecrets", NS, port, &injector.ca_pem);
    let mesh = Mesh::start();
    register(&cp, "zz-mesh", NS, mesh.port, &mesh.ca_pem);
    let mut spec = app_spec();
    spec["initContainers"] = json!([{ "name": "migrate", "image": "migrate:1" }]);
    let inits = |p: &Value| names(&p["spec"]["initContainers"]);
    // Both webhooks are called once a dry run comes back with both containers.
    let dry_run = format!("/api/v1/namespaces/{NS}/pods?dryRun=All");
    let probe = pod("probe", annotated(json!({})), spec.clone());
    wait_until(Duration::from_secs(120), "both webhooks called", || {
        let (status, p) = cp.call("POST", &dry_run, Some(probe.clone()));
        status == 201 && inits(&p).len() == 3
    });

    // Without the annotation the mesh's container stays where its webhook put it.
    let p = create(
        &cp,
        NS,
        &pod("unordered", annotated(json!({})), spec.clone()),
    )
    .unwrap();
    assert_eq!(inits(&p), ["ramsecrets", "migrate", mesh::INIT]);
    let before = mesh.calls.load(std::sync::atomic::Ordering::SeqCst);
    let after = annotated(json!({ "ramsecrets.io/after": mesh::INIT }));
    let p = create(&cp, NS, &pod("meshed", after, spec)).unwrap();
    assert_eq!(inits(&p), [mesh::INIT, "ramsecrets", "migrate"]);
    assert!(mesh.calls.load(std::sync::atomic::Ordering::SeqCst) > before);
    // The app's init container still runs after ramsecrets, with the secrets.
    assert!(p["spec"]["initContainers"][2]["volumeMounts"]
        .to_string()
        .contains("ramsecrets-secrets"));
}

use std::path::Path;

use base64::Engine;
use kube_core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::inject::Injector;

pub(crate) const SETTINGS: &str = r#"
sources:
  - name: vault
    vault:
      address: https://vault.vault.svc:8200
      auth: { kubernetes: { role: default } }
  - name: aws
    aws_secrets_manager: { region: eu-west-1 }
inject:
  tls: { cert_file: /tls/tls.crt, key_file: /tls/tls.key }
  image: ramsecrets:test
"#;

pub(crate) fn injector(version: (u32, u32)) -> Injector {
    let config = Config::parse(SETTINGS, Path::new("/")).unwrap();
    Injector::new(&config, version).unwrap()
}

pub(crate) fn pod(annotations: Value, spec: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "annotations": annotations }, "spec": spec })
}

pub(crate) fn app() -> Value {
    json!({ "containers": [ { "name": "app", "image": "app:1" } ] })
}

fn review_json(pod: &Value, ns: &str, op: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0000-1111", "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": ns, "operation": op, "name": "",
            "userInfo": { "username": "admin" }, "object": pod, "dryRun": false,
        }
    })
}

pub(crate) fn review(pod: &Value, ns: &str, op: &str) -> AdmissionRequest<DynamicObject> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review_json(pod, ns, op)).unwrap();
    review.try_into().unwrap()
}

/// The pod after the injector's answer (unchanged when there is no patch);
/// panics on a denial.
pub(crate) fn admitted(inj: &Injector, pod: &Value, ns: &str) -> Value {
    let r = mutate(inj, &review(pod, ns, "CREATE"));
    assert!(r.allowed, "denied: {:?}", r.result.message);
    let mut out = pod.clone();
    if let Some(p) = r.patch {
        let p: json_patch::Patch = serde_json::from_slice(&p).unwrap();
        json_patch::patch(&mut out, &p).unwrap();
    }
    out
}

pub(crate) fn denial(inj: &Injector, pod: &Value) -> String {
    let r = mutate(inj, &review(pod, "apps", "CREATE"));
    assert!(!r.allowed, "admitted: {pod}");
    r.result.message
}

pub(crate) fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_plain_pod_gets_a_native_sidecar_volumes_and_its_config() {
    let inj = injector((1, 35));
    let before = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/app/db",
                             "ramsecrets.io/key.db": "password" }),
        app(),
    );
    let p = admitted(&inj, &before, "apps");
    let spec = &p["spec"];
    assert_eq!(names(&spec["initContainers"]), ["ramsecrets"]);
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/readyz");
    // The sidecar runs only the config it was admitted with.
    let admitted = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    let pin = Pin::of(admitted.as_bytes()).to_string();
    assert_eq!(
        sidecar["args"],
        json!(["run", "--config", CONFIG_FILE, "--config-sha256", pin])
    );
    assert_eq!(sidecar["image"], "ramsecrets:test");
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        sidecar["resources"]["requests"],
        json!({ "cpu": "5m", "memory": "16Mi" })
    );
    assert_eq!(names(&spec["containers"]), ["app"], "no regular sidecar");
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{ "name": SECRETS, "mountPath": "/run/secrets/ramsecrets", "readOnly": true }])
    );
    assert_eq!(names(&spec["volumes"]), [SECRETS, STATE, CONFIG, TOKEN]);
    assert_eq!(
        spec["volumes"][0]["emptyDir"],
        json!({ "medium": "Memory", "sizeLimit": "16Mi" })
    );
    assert_eq!(
        spec["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "vault"
    );
    // The state volume is ramsecrets' own.
    let app_mounts = spec["containers"][0]["volumeMounts"].to_string();
    assert!(!app_mounts.contains(STATE) && !app_mounts.contains(TOKEN));

    let annotations = &p["metadata"]["annotations"];
    assert_eq!(annotations[INJECTED], "true");
    let text = annotations[RENDERED_CONFIG].as_str().unwrap();
    let config = Config::parse(text, Path::new("/")).unwrap();
    assert_eq!(
        config.output.as_ref().unwrap().dir,
        Path::new("/run/secrets/ramsecrets")
    );
    assert_eq!(config.output.as_ref().unwrap().mode, 0o444);
    assert_eq!(config.secrets[0].name, "db");
    assert!(
        text.contains("role: default") && text.contains("token_file: /run/ramsecrets/token/token"),
        "{text}"
    );

    // Idempotent: the injected pod is returned as it is.
    let again = mutate(&inj, &review(&p, "apps", "CREATE"));
    assert!(again.allowed && again.patch.is_none());
}

#[test]
fn before_1_29_an_init_container_and_a_regular_sidecar() {
    let inj = injector((1, 28));
    let before = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/app/db" }),
        app(),
    );
    let p = admitted(&inj, &before, "apps");
    assert_eq!(names(&p["spec"]["initContainers"]), ["ramsecrets-init"]);
    assert_eq!(p["spec"]["initContainers"][0]["args"][0], "init");
    assert!(p["spec"]["initContainers"][0]
        .get("restartPolicy")
        .is_none());
    assert_eq!(names(&p["spec"]["containers"]), ["app", "ramsecrets"]);
    assert_eq!(
        p["spec"]["containers"][1]["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );
}

#[test]
fn init_only_mode_injects_one_init_container() {
    let inj = injector((1, 35));
    let before = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.api": "aws:prod/api", "ramsecrets.io/mode": "init-only" }),
        json!({ "restartPolicy": "Never", "containers": [ { "name": "job", "image": "job:1" } ] }),
    );
    let p = admitted(&inj, &before, "apps");
    assert_eq!(names(&p["spec"]["initContainers"]), ["ramsecrets-init"]);
    assert_eq!(names(&p["spec"]["containers"]), ["job"]);
    // AWS only: no token for Vault.
    assert_eq!(names(&p["spec"]["volumes"]), [SECRETS, STATE, CONFIG]);
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    assert!(
        text.contains("aws_secrets_manager")
            && text.contains("eu-west-1")
            && !text.contains("vault"),
        "{text}"
    );
}

#[test]
fn parameter_store_pods_get_an_ssm_source_and_no_token() {
    let settings = SETTINGS.replace(
        "inject:",
        "  - name: ssm\n    ssm_parameter_store: { region: eu-central-1 }\ninject:",
    );
    let config = Config::parse(&settings, Path::new("/")).unwrap();
    let inj = Injector::new(&config, (1, 35)).unwrap();
    let before = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "ssm:/app/db/password",
                "ramsecrets.io/secret.flags": "ssm-path:/app/flags", "ramsecrets.io/format.flags": "json" }),
        app(),
    );
    let p = admitted(&inj, &before, "apps");
    assert_eq!(names(&p["spec"]["volumes"]), [SECRETS, STATE, CONFIG]);
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    assert!(
        text.contains("ssm_parameter_store")
            && !text.contains("aws_secrets_manager")
            && !text.contains("vault")
            && text.contains("eu-central-1")
            && text.contains("parameter: /app/db/password")
            && text.contains("parameters_by_path: /app/flags"),
        "{text}"
    );

    // Without a Parameter Store source, the injector says what is missing.
    let why = denial(&injector((1, 35)), &before);
    assert!(why.contains("Parameter Store source"), "{why}");
}

#[test]
fn app_init_containers_get_secrets_and_a_mesh_init_can_go_first() {
    let inj = injector((1, 35));
    let spec = json!({ "initContainers": [ { "name": "istio-init", "image": "i" }, { "name": "migrate", "image": "m" } ],
                       "containers": [ { "name": "app", "image": "a" } ] });
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
    let p = admitted(&inj, &pod(ann.clone(), spec.clone()), "apps");
    assert_eq!(
        names(&p["spec"]["initContainers"]),
        ["ramsecrets", "istio-init", "migrate"]
    );
    assert!(p["spec"]["initContainers"][2]["volumeMounts"]
        .to_string()
        .contains(SECRETS));

    let mut ann = ann;
    ann["ramsecrets.io/after"] = json!("istio-init");
    let p = admitted(&inj, &pod(ann, spec), "apps");
    assert_eq!(
        names(&p["spec"]["initContainers"]),
        ["istio-init", "ramsecrets", "migrate"]
    );
    assert!(
        p["spec"]["initContainers"][0].get("volumeMounts").is_none(),
        "before the secrets exist"
    );
    assert!(p["spec"]["initContainers"][2]["volumeMounts"]
        .to_string()
        .contains(SECRETS));
}

#[test]
fn only_the_selected_containers_get_the_volume() {
    let inj = injector((1, 35));
    let spec = json!({ "containers": [ { "name": "app", "image": "a" }, { "name": "metrics", "image": "m" } ] });
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
                      "ramsecrets.io/containers": "app", "ramsecrets.io/mount-path": "/secrets" });
    let p = admitted(&inj, &pod(ann, spec), "apps");
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/secrets"
    );
    assert!(p["spec"]["containers"][1].get("volumeMounts").is_none());
}

#[test]
fn proxy_needs_an_fs_group_and_then_files_are_group_readable() {
    let inj = injector((1, 35));
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db", "ramsecrets.io/proxy": "true" });
    assert!(denial(&inj, &pod(ann.clone(), app())).contains("ramsecrets.io/proxy"));
    let mut spec = app();
    spec["securityContext"] = json!({ "fsGroup": 2000 });
    let p = admitted(&inj, &pod(ann, spec), "apps");
    assert_eq!(p["spec"]["initContainers"][0]["args"][0], "proxy");
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    let config = Config::parse(text, Path::new("/")).unwrap();
    assert_eq!(config.output.as_ref().unwrap().mode, 0o440);
    assert!(config.proxy.is_some());
}

#[test]
fn a_config_map_supplies_the_whole_config() {
    let inj = injector((1, 35));
    let ann =
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/config-map": "app-ramsecrets" });
    let p = admitted(&inj, &pod(ann, app()), "apps");
    let config = p["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == CONFIG)
        .unwrap();
    assert_eq!(config["configMap"]["name"], "app-ramsecrets");
    assert!(p["metadata"]["annotations"].get(RENDERED_CONFIG).is_none());
}

#[test]
fn untouched_pods() {
    let inj = injector((1, 35));
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
    for (p, ns) in [
        (pod(ann.clone(), app()), "kube-system"),
        (pod(json!({}), app()), "apps"),
    ] {
        let r = mutate(&inj, &review(&p, ns, "CREATE"));
        assert!(r.allowed && r.patch.is_none(), "{ns}");
    }
    let r = mutate(&inj, &review(&pod(ann, app()), "apps", "UPDATE"));
    assert!(r.allowed && r.patch.is_none(), "only CREATE is mutated");
}

#[test]
fn denials_name_the_annotation() {
    let inj = injector((1, 35));
    let base = |extra: Value| {
        let mut a =
            json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        pod(a, app())
    };
    let cases = [
        (
            json!({ "ramsecrets.io/mode.db": "999" }),
            "ramsecrets.io/mode.db",
        ),
        (
            json!({ "ramsecrets.io/format.db": "xml" }),
            "ramsecrets.io/format.db",
        ),
        (
            json!({ "ramsecrets.io/file.db": "../escape" }),
            "ramsecrets.io/file.db",
        ),
        (
            json!({ "ramsecrets.io/template.db": "{{ unclosed" }),
            "ramsecrets.io/template.db",
        ),
        (
            json!({ "ramsecrets.io/previous.db": "true" }),
            "ramsecrets.io/previous.db",
        ),
        (
            json!({ "ramsecrets.io/source": "nowhere" }),
            "ramsecrets.io/source",
        ),
        (
            json!({ "ramsecrets.io/source": "aws" }),
            "ramsecrets.io/source",
        ),
        (
            json!({ "ramsecrets.io/containers": "ghost" }),
            "ramsecrets.io/containers",
        ),
        (
            json!({ "ramsecrets.io/mount-path": "/data" }),
            "ramsecrets.io/mount-path",
        ),
        (json!({ "ramsecrets.io/wat": "1" }), "ramsecrets.io/wat"),
        (
            json!({ "ramsecrets.io/injected": "true" }),
            "ramsecrets.io/injected",
        ),
    ];
    for (extra, key) in cases {
        let mut p = base(extra.clone());
        if key.ends_with("mount-path") {
            p["spec"]["containers"][0]["volumeMounts"] =
                json!([{ "name": "data", "mountPath": "/data" }]);
        }
        let message = denial(&inj, &p);
        assert!(message.contains(key), "{extra}: {message}");
    }
}

#[test]
fn the_review_answer_carries_the_patch_as_base64_text() {
    let inj = injector((1, 35));
    let p = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" }),
        app(),
    );
    let body = serde_json::to_vec(&review_json(&p, "apps", "CREATE")).unwrap();
    let (answer, result) = crate::inject::server::review(&inj, &body);
    assert_eq!(result, "patched");
    let out: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["response"]["uid"], "0000-1111");
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    // `patch` is []byte in the API: base64 text in JSON.
    let text = out["response"]["patch"].as_str().expect("base64 text");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    assert!(!patch.0.is_empty());
    assert!(answer.len() < 2 * bytes.len(), "no byte arrays");
}

#[test]
fn the_patch_only_adds_and_unknown_fields_stay_on_their_container() {
    let inj = injector((1, 35));
    // Fields k8s-openapi does not know (a newer API's), on the pod, a container and an init
    // container the injected one goes before.
    let spec = json!({ "futureSpecField": 1,
        "initContainers": [ { "name": "migrate", "image": "m", "futureField": { "a": 1 } } ],
        "containers": [ { "name": "app", "image": "a", "futureField": "x",
                          "volumeMounts": [ { "name": "data", "mountPath": "/data" } ] } ] });
    let before = pod(
        json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" }),
        spec,
    );
    let r = mutate(&inj, &review(&before, "apps", "CREATE"));
    let ops: Value = serde_json::from_slice(r.patch.as_deref().unwrap()).unwrap();
    for op in ops.as_array().unwrap() {
        assert_eq!(op["op"], "add", "{op}");
    }
    let p = admitted(&inj, &before, "apps");
    let spec = &p["spec"];
    assert_eq!(names(&spec["initContainers"]), ["ramsecrets", "migrate"]);
    assert!(spec["initContainers"][0].get("futureField").is_none());
    assert_eq!(spec["initContainers"][1]["futureField"], json!({ "a": 1 }));
    assert_eq!(spec["containers"][0]["futureField"], "x");
    assert_eq!(spec["futureSpecField"], 1);
    assert_eq!(
        names(&spec["containers"][0]["volumeMounts"]),
        ["data", SECRETS]
    );
}

#[test]
fn before_1_29_a_pod_that_runs_to_completion_needs_init_only() {
    let inj = injector((1, 28));
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
    let mut job = pod(ann.clone(), app());
    job["metadata"]["ownerReferences"] = json!([{ "apiVersion": "batch/v1", "kind": "Job",
        "name": "migrate", "uid": "1", "controller": true }]);
    let mut never = pod(ann.clone(), app());
    never["spec"]["restartPolicy"] = json!("Never");
    for p in [&job, &never] {
        let message = denial(&inj, p);
        assert!(
            message.contains("ramsecrets.io/mode") && message.contains("init-only"),
            "{message}"
        );
        // From 1.29 the native sidecar ends with the pod.
        admitted(&injector((1, 29)), p, "apps");
    }
    let mut init_only = job.clone();
    init_only["metadata"]["annotations"]["ramsecrets.io/mode"] = json!("init-only");
    admitted(&inj, &init_only, "apps");
}

#[test]
fn every_problem_of_the_pod_is_reported_at_once() {
    let inj = injector((1, 35));
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
        "ramsecrets.io/containers": "app,nosuch", "ramsecrets.io/requests-cpu": "1",
        "ramsecrets.io/proxy": "true" });
    let message = denial(&inj, &pod(ann, app()));
    for key in ["proxy", "containers", "requests-cpu"] {
        assert!(
            message.contains(&format!("annotation ramsecrets.io/{key}:")),
            "{key}: {message}"
        );
    }
}

#[test]
fn the_injectors_revoke_on_exit_reaches_the_pods_of_its_source() {
    let annotations = json!({ "ramsecrets.io/inject": "true",
                              "ramsecrets.io/secret.db": "read:database/creds/app" });
    let rendered = |settings: &str| {
        let config = Config::parse(settings, Path::new("/")).unwrap();
        let inj = Injector::new(&config, (1, 35)).unwrap();
        let p = admitted(&inj, &pod(annotations.clone(), app()), "apps");
        let text = p["metadata"]["annotations"][RENDERED_CONFIG]
            .as_str()
            .unwrap()
            .to_owned();
        Config::parse(&text, Path::new("/")).unwrap().sources[0].revoke_on_exit()
    };
    assert!(!rendered(SETTINGS));
    let revoking = SETTINGS.replace(
        "auth: { kubernetes: { role: default } }",
        "auth: { kubernetes: { role: default } }\n      revoke_on_exit: true",
    );
    assert!(rendered(&revoking));
}

#[test]
fn a_mesh_init_container_added_after_ramsecrets_is_moved_before_it_on_reinvocation() {
    let inj = injector((1, 35));
    let spec = json!({ "initContainers": [ { "name": "migrate", "image": "m" } ],
                       "containers": [ { "name": "app", "image": "a" } ] });
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
                      "ramsecrets.io/after": "istio-init,istio-proxy" });
    // Not there yet: not an error, ramsecrets goes first.
    let mut p = admitted(&inj, &pod(ann, spec), "apps");
    assert_eq!(
        names(&p["spec"]["initContainers"]),
        ["ramsecrets", "migrate"]
    );
    // The mesh's webhook, called after this one, appends its containers.
    let inits = p["spec"]["initContainers"].as_array_mut().unwrap();
    inits.push(json!({ "name": "istio-init", "image": "i" }));
    inits.push(json!({ "name": "other", "image": "o" }));
    inits.push(json!({ "name": "istio-proxy", "image": "p", "restartPolicy": "Always" }));
    // Called again (reinvocationPolicy IfNeeded): the named ones move before
    // ramsecrets, in their order; the rest stays.
    let r = mutate(&inj, &review(&p, "apps", "CREATE"));
    let patch: Value = serde_json::from_slice(r.patch.as_deref().unwrap()).unwrap();
    assert!(
        patch
            .as_array()
            .unwrap()
            .iter()
            .all(|op| op["op"] == "move"),
        "{patch}"
    );
    let again = admitted(&inj, &p, "apps");
    assert_eq!(
        names(&again["spec"]["initContainers"]),
        [
            "istio-init",
            "istio-proxy",
            "ramsecrets",
            "migrate",
            "other"
        ]
    );
    assert!(again["spec"]["initContainers"][3]["volumeMounts"]
        .to_string()
        .contains(SECRETS));
    // In place: nothing more to do.
    let r = mutate(&inj, &review(&again, "apps", "CREATE"));
    assert!(r.allowed && r.patch.is_none());
}

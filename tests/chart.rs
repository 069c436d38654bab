//! The Helm chart `helm/ramsecrets`, linted and rendered by Helm's own Go SDK: the default
//! values, each TLS mode and an overridden set pass `helm lint --strict` and render what the
//! issue asks for; values the schema forbids are refused with a message naming the value.

mod common;

use std::process::Command;

use common::helm::{self, Rendered, NAMESPACE};
use common::*;
use serde_json::{json, Value};

/// A non-default set of values touching most knobs.
fn overridden() -> Value {
    json!({
        "replicaCount": 3,
        "image": {"repository": "registry.example/ramsecrets", "digest": format!("sha256:{}", "a".repeat(64))},
        "injectedImage": {"repository": "registry.example/ramsecrets-slim", "tag": "0.1.0-slim"},
        "sources": [
            {"name": "vault", "vault": {"address": "https://openbao.secrets.svc:8200",
                "ca_cert": "/etc/ramsecrets/ca.pem", "namespace": "team-a",
                "auth": {"kubernetes": {"mount": "k8s-prod", "role": "default"}}}},
            {"name": "aws", "aws_secrets_manager": {"region": "eu-west-1"}}
        ],
        "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 3,
            "excludeNamespaces": ["istio-system"],
            "namespaceSelectorExpressions": [{"key": "secrets", "operator": "In", "values": ["ramsecrets"]}]},
        "serviceAccount": {"name": "injector", "annotations": {"team": "platform"}},
        "podAnnotations": {"example.com/owner": "platform"},
        "podLabels": {"tier": "control"},
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "control", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpread": {"enabled": false},
        "podDisruptionBudget": {"enabled": false},
        "injection": {"audience": "openbao", "kubernetes_version": "1.28",
            "defaults": {"refresh": "1m", "mount_path": "/var/run/secrets/app", "size_limit": "4Mi",
                "resources": {"requests": {"cpu": "2m", "memory": "12Mi"}, "limits": {"memory": "32Mi"}},
                "run_as_user": 4242, "health_port": 9099}},
        "logLevel": "debug",
        "logFormat": "text",
        "metrics": {"serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}}}
    })
}

fn tls(mode: &str) -> Value {
    json!({"tls": {"mode": mode}})
}

fn rendered(values: &Value) -> Rendered {
    helm::render(values).unwrap_or_else(|e| panic!("helm refused {values}: {e}"))
}

#[test]
fn lint_passes_strict_for_defaults_each_tls_mode_and_overrides() {
    for values in [
        json!({}),
        tls("helm"),
        tls("certManager"),
        tls("auto"),
        overridden(),
    ] {
        let findings = helm::lint(&values);
        let bad: Vec<_> = findings.iter().filter(|m| m.severity >= 2).collect();
        assert!(bad.is_empty(), "lint of {values}: {bad:?}");
    }
}

#[test]
fn default_values_render_a_hardened_injector() {
    let r = rendered(&json!({}));
    assert_eq!(
        r.kinds(),
        [
            "ConfigMap",
            "Deployment",
            "MutatingWebhookConfiguration",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    let d = r.one("Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let spec = r.pod_spec();
    // The injector asks the API server's /version (native sidecars or not).
    assert_eq!(spec["automountServiceAccountToken"], true);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["resources"]["requests"]["cpu"], "10m");
    assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(c["args"][2], "inject");
    let spread = spec["topologySpreadConstraints"].as_array().unwrap();
    let keys: Vec<_> = spread
        .iter()
        .map(|t| t["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    let one = rendered(&json!({"replicaCount": 1}));
    assert!(
        one.all("PodDisruptionBudget").is_empty(),
        "one pod: no PDB to block drains"
    );
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], d["spec"]["selector"]);

    let w = &r.one("MutatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(
        w["rules"],
        json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"], "scope": "Namespaced"}])
    );
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["reinvocationPolicy"], "IfNeeded");
    assert_eq!(w["timeoutSeconds"], 5);
    // Selected by annotation, not by label: a pod that asks without the label still
    // reaches the webhook (and is refused while it is down).
    assert!(w.get("objectSelector").is_none(), "{w}");
    let conditions = w["matchConditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{w}");
    let cel = conditions[0]["expression"].as_str().unwrap();
    assert!(cel.contains("startsWith('ramsecrets.io/')"), "{cel}");
    // With injection.compat, pods annotated for vault-k8s are sent too, and the
    // injector serves them.
    let compat = rendered(&json!({"injection": {"compat": "vault-k8s"}}));
    let cel = compat.one("MutatingWebhookConfiguration")["webhooks"][0]["matchConditions"][0]
        ["expression"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cel.contains("startsWith('ramsecrets.io/') || k == 'vault.hashicorp.com/agent-inject'"),
        "{cel}"
    );
    assert_eq!(compat.config()["inject"]["compat"], "vault-k8s");
    assert!(r.config()["inject"].get("compat").is_none());
    let labelled = rendered(&json!({"webhook": {"objectSelector":
        {"matchLabels": {"ramsecrets.io/inject": "true"}}}}));
    assert_eq!(
        labelled.one("MutatingWebhookConfiguration")["webhooks"][0]["objectSelector"],
        json!({"matchLabels": {"ramsecrets.io/inject": "true"}})
    );
    assert_eq!(
        w["namespaceSelector"],
        json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                     "values": ["kube-system", NAMESPACE]}]})
    );
    let svc = r.one("Service");
    assert_eq!(
        w["clientConfig"]["service"],
        json!({"name": svc["metadata"]["name"], "namespace": NAMESPACE, "path": "/mutate", "port": 443})
    );
    assert!(
        r.notes.contains("ramsecrets.io/inject: \"true\""),
        "{}",
        r.notes
    );

    let config = r.config();
    assert_eq!(config["inject"]["listen"], "0.0.0.0:8443");
    assert_eq!(config["inject"]["image"], "ramsecrets:0.1.0");
    assert_eq!(
        config["inject"]["tls"],
        json!({"cert_file": "/etc/ramsecrets-tls/tls.crt", "key_file": "/etc/ramsecrets-tls/tls.key"})
    );
}

/// The chart-made certificate: signed by the CA in the webhook's caBundle and valid for
/// the names the API server calls the Service by.
#[test]
fn helm_tls_mode_makes_a_ca_and_a_serving_certificate_for_the_service() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = rendered(&tls("helm"));
    let secret = r.one("Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let field = |k: &str| b64.decode(secret["data"][k].as_str().unwrap()).unwrap();
    let w = &r.one("MutatingWebhookConfiguration")["webhooks"][0];
    let bundle = b64
        .decode(w["clientConfig"]["caBundle"].as_str().unwrap())
        .unwrap();
    assert_eq!(bundle, field("ca.crt"));

    let dir = scratch();
    std::fs::write(dir.path().join("ca.crt"), field("ca.crt")).unwrap();
    std::fs::write(dir.path().join("tls.crt"), field("tls.crt")).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.crt", "tls.crt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", "tls.crt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let sans = text(&sans);
    for name in [
        "rs-ramsecrets.ramsecrets.svc",
        "rs-ramsecrets.ramsecrets.svc.cluster.local",
    ] {
        assert!(
            sans.contains(&format!("DNS:{name}")),
            "{name} missing: {sans}"
        );
    }
    let volumes = &r.pod_spec()["volumes"];
    assert!(volumes
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == secret["metadata"]["name"]));
}

#[test]
fn cert_manager_mode_renders_a_certificate_and_the_ca_injection_annotation() {
    let r = rendered(&tls("certManager"));
    assert!(r.all("Secret").is_empty());
    let certs = r.all("Certificate");
    assert_eq!(certs.len(), 2, "a CA and the serving certificate");
    let serving = certs.iter().find(|c| c["spec"]["isCA"] != true).unwrap();
    let name = serving["metadata"]["name"].as_str().unwrap();
    let hook = r.one("MutatingWebhookConfiguration");
    assert_eq!(
        hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{NAMESPACE}/{name}")
    );
    assert!(hook["webhooks"][0]["clientConfig"]
        .get("caBundle")
        .is_none());
    assert!(serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&json!("rs-ramsecrets.ramsecrets.svc")));
    let secret = serving["spec"]["secretName"].as_str().unwrap();
    let volumes = &r.pod_spec()["volumes"];
    assert!(volumes
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == secret));
    assert_eq!(
        r.all("Issuer").len(),
        2,
        "self-signed root and the CA issuer"
    );

    // An issuer of the cluster's own: no chain made by the chart.
    let own = json!({"tls": {"mode": "certManager",
        "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}});
    let r = rendered(&own);
    assert!(r.all("Issuer").is_empty());
    assert_eq!(r.one("Certificate")["spec"]["issuerRef"]["name"], "corp-ca");
}

#[test]
fn auto_mode_lets_the_injector_patch_only_its_own_webhook() {
    let r = rendered(&tls("auto"));
    assert!(r.all("Secret").is_empty());
    assert!(r.all("Certificate").is_empty());
    let hook = r.one("MutatingWebhookConfiguration");
    let hook_name = hook["metadata"]["name"].as_str().unwrap();
    assert!(hook["webhooks"][0]["clientConfig"]
        .get("caBundle")
        .is_none());
    let role = r.one("ClusterRole");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [hook_name], "verbs": ["get", "patch"]}])
    );
    let binding = r.one("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["name"],
        r.pod_spec()["serviceAccountName"]
    );
    // A policy narrows that patch to the caBundle (tests/chart_policy.rs enforces it for real).
    let policy = r.named("ValidatingAdmissionPolicy", "rs-ramsecrets-ca-bundle");
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        format!(
            "request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:{}'",
            binding["subjects"][0]["name"].as_str().unwrap()
        )
    );
    assert!(policy["spec"]["variables"][0]["expression"]
        .as_str()
        .unwrap()
        .contains(&format!("request.name == '{hook_name}'")));
    let bound = r.named(
        "ValidatingAdmissionPolicyBinding",
        "rs-ramsecrets-ca-bundle",
    );
    assert_eq!(bound["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(r.pod_spec()["automountServiceAccountToken"], true);
    let tls = &r.config()["inject"]["tls"];
    assert_eq!(tls["auto"]["webhook"], hook_name);
    assert_eq!(tls["auto"]["service"], r.one("Service")["metadata"]["name"]);
    assert_eq!(tls["auto"]["namespace"], NAMESPACE);
}

#[test]
fn the_network_policy_admits_only_the_api_server_and_the_scrapers() {
    assert!(rendered(&json!({})).all("NetworkPolicy").is_empty());
    let api = json!([{"ipBlock": {"cidr": "10.0.0.0/24"}}]);
    let scrapers = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]);
    let values = json!({"networkPolicy": {"enabled": true, "apiServer": api, "metrics": scrapers}});
    let r = rendered(&values);
    let np = r.one("NetworkPolicy");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        r.one("Deployment")["spec"]["selector"]["matchLabels"]
    );
    let port = json!([{"port": "https", "protocol": "TCP"}]);
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": port, "from": api}, {"ports": port, "from": scrapers}])
    );
    assert!(r.pod_spec()["containers"][0]["ports"]
        .to_string()
        .contains("\"name\":\"https\""));
    assert!(helm::lint(&values).iter().all(|m| m.severity < 2));
    // Without the API server's addresses it would refuse every annotated pod.
    let Err(refused) = helm::render(&json!({"networkPolicy": {"enabled": true}})) else {
        panic!("rendered without the API server's addresses");
    };
    assert!(refused.contains("networkPolicy.apiServer"), "{refused}");
}

/// OpenShift: `run_as_user: null` leaves injected containers' uid to the platform; Helm
/// keeps the null (it is no chart default to remove).
#[test]
fn a_null_uid_of_injected_containers_reaches_the_injector() {
    let r = rendered(&json!({"injection": {"defaults": {"run_as_user": null}}}));
    let defaults = &r.config()["inject"]["defaults"];
    assert!(
        defaults
            .as_object()
            .is_some_and(|d| d.get("run_as_user") == Some(&Value::Null)),
        "{defaults}"
    );
}

#[test]
fn overridden_values_reach_the_manifests() {
    let r = rendered(&overridden());
    assert!(r.all("PodDisruptionBudget").is_empty());
    // The version is given, and the certificate comes from a file: no API server token.
    assert_eq!(r.pod_spec()["automountServiceAccountToken"], false);
    let d = r.one("Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let spec = r.pod_spec();
    assert!(spec.get("topologySpreadConstraints").is_none());
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["serviceAccountName"], "injector");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(spec["tolerations"][0]["key"], "control");
    let c = &spec["containers"][0];
    assert_eq!(
        c["image"],
        format!("registry.example/ramsecrets@sha256:{}", "a".repeat(64))
    );
    assert_eq!(c["args"][0], "--log-format=text");
    assert_eq!(c["args"][1], "--log-level=debug");
    assert_eq!(c["resources"]["limits"]["memory"], "96Mi");
    let meta = &d["spec"]["template"]["metadata"];
    assert_eq!(meta["labels"]["tier"], "control");
    assert_eq!(meta["annotations"]["example.com/owner"], "platform");
    assert_eq!(
        r.one("ServiceAccount")["metadata"]["annotations"]["team"],
        "platform"
    );

    let w = &r.one("MutatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(w["timeoutSeconds"], 3);
    let exprs = w["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap();
    assert_eq!(
        exprs[0]["values"],
        json!(["kube-system", NAMESPACE, "istio-system"])
    );
    assert_eq!(exprs[1]["key"], "secrets");

    let sm = r.one("ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");

    let config = r.config();
    assert_eq!(
        config["inject"]["image"],
        "registry.example/ramsecrets-slim:0.1.0-slim"
    );
    assert_eq!(config["sources"], overridden()["sources"]);
    let injection = &overridden()["injection"];
    assert_eq!(config["inject"]["audience"], injection["audience"]);
    assert_eq!(
        config["inject"]["kubernetes_version"],
        injection["kubernetes_version"]
    );
    assert_eq!(config["inject"]["defaults"], injection["defaults"]);
}

/// Values the schema forbids: the render is refused and lint reports an error, both
/// naming the value.
#[test]
fn values_the_schema_forbids_are_refused() {
    let cases = [
        (json!({"replicaCount": 0}), "/replicaCount"),
        (json!({"replicas": 2}), "replicas"),
        (json!({"tls": {"mode": "self-signed"}}), "/tls/mode"),
        (
            json!({"webhook": {"failurePolicy": "Retry"}}),
            "/webhook/failurePolicy",
        ),
        (
            json!({"webhook": {"timeoutSeconds": 60}}),
            "/webhook/timeoutSeconds",
        ),
        (json!({"image": {"digest": "latest"}}), "/image/digest"),
        (json!({"sources": []}), "/sources"),
        (
            json!({"injection": {"defaults": {"sidecar": true}}}),
            "/injection/defaults",
        ),
        (
            json!({"sources": [{"vault": {"address": "https://v:8200", "auth": {}, "token": "s.x"}}]}),
            "/sources/0/vault",
        ),
        (
            json!({"metrics": {"serviceMonitor": {"interval": "often"}}}),
            "/metrics/serviceMonitor/interval",
        ),
    ];
    for (values, path) in cases {
        let err = match helm::render(&values) {
            Ok(_) => panic!("{values} was rendered"),
            Err(e) => e,
        };
        assert!(err.contains(path), "{values}: {err}");
        let lint = helm::lint(&values);
        assert!(
            lint.iter()
                .any(|m| m.severity == 3 && m.error.contains(path)),
            "{values}: {lint:?}"
        );
    }
}

/// The chart's `sources` and `injection` schemas are the config file's, as `ramsecrets
/// schema` prints it (`scripts/chart-schema` copies them).
#[test]
fn the_chart_schema_shares_the_config_schema() {
    let chart: Value = serde_json::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let o = ramsecrets(&["schema"]);
    assert_exit(&o, 0);
    let config: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (name, def) in chart["$defs"].as_object().unwrap() {
        assert_eq!(
            def, &config["$defs"][name],
            "$defs.{name} differs from `ramsecrets schema`: run scripts/chart-schema"
        );
    }
    assert_eq!(
        chart["properties"]["sources"]["items"]["$ref"],
        "#/$defs/Source"
    );
    let injection = chart["properties"]["injection"]["properties"]
        .as_object()
        .unwrap();
    let inject = &config["$defs"]["Inject"]["properties"];
    assert_eq!(injection.len(), 5);
    for (key, def) in injection {
        assert_eq!(
            def, &inject[key],
            "injection.{key} differs from inject.{key}: run scripts/chart-schema"
        );
    }
}

/// The documents of cert-manager's and prometheus-operator's kinds satisfy those projects'
/// published schemas; a broken one is caught.
#[test]
fn cert_manager_and_service_monitor_documents_match_their_published_schemas() {
    let monitor = json!({"enabled": true});
    for values in [
        json!({"tls": {"mode": "certManager"}, "metrics": {"serviceMonitor": monitor}}),
        json!({"tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}}}),
        json!({"tls": {"mode": "auto"}, "metrics": {"serviceMonitor": monitor}}),
    ] {
        let r = rendered(&values);
        let docs: Vec<&Value> = r
            .docs
            .iter()
            .filter(|d| helm::is_custom_resource(d))
            .collect();
        assert!(!docs.is_empty());
        let report =
            helm::check_published_schemas(&docs).unwrap_or_else(|e| panic!("{values}: {e}"));
        assert_eq!(
            report.lines().filter(|l| l.starts_with("ok ")).count(),
            docs.len(),
            "{report}"
        );
    }
    let r = rendered(&tls("certManager"));
    let mut broken = r.all("Certificate")[0].clone();
    broken["spec"]["privateKey"]["algorithm"] = json!("EC");
    let err = helm::check_published_schemas(&[&broken]).unwrap_err();
    assert!(err.contains("privateKey/algorithm"), "{err}");
}

/// The config file the chart writes for the injector is one that ramsecrets accepts.
#[test]
fn the_rendered_injector_config_passes_ramsecrets_check() {
    for values in [json!({}), tls("auto"), overridden()] {
        let r = rendered(&values);
        let dir = scratch();
        let text = r.one("ConfigMap")["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .to_string();
        let path = file(dir.path(), "config.yaml", &text);
        let o = ramsecrets(&["check", "--config-only", "--config", path.to_str().unwrap()]);
        assert_exit(&o, 0);
    }
}

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::inject::TEST_SETTINGS as SETTINGS;
use crate::inject::{mutate, Injector};

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
        .collect()
}

fn request(pairs: &[(&str, &str)]) -> PodRequest {
    match parse(&annotations(pairs), false) {
        Ok(Parsed::Inject(r)) => *r,
        other => panic!("{pairs:?}: {other:?}"),
    }
}

fn denial(pairs: &[(&str, &str)]) -> String {
    match parse(&annotations(pairs), false) {
        Err(d) => d.to_string(),
        other => panic!("{pairs:?}: admitted as {other:?}"),
    }
}

/// The pod of vault-k8s's "getting started": one secret, a role, the default template.
#[test]
fn the_getting_started_pod_reads_its_path_with_the_default_template() {
    let r = request(&[
        ("agent-inject", "true"),
        ("role", "internal-app"),
        (
            "agent-inject-secret-database-config.txt",
            "internal/data/database/config",
        ),
    ]);
    assert_eq!(r.role.as_deref(), Some("internal-app"));
    assert_eq!(r.mount_path.as_deref(), Some(MOUNT_PATH));
    assert_eq!(r.mode, Mode::Sidecar);
    let s = &r.secrets[0];
    assert_eq!(s.name, "database-config.txt");
    assert_eq!(s.address, logical_read("internal/data/database/config"));
    assert_eq!(s.format.as_deref(), Some("go-template"));
    assert_eq!(
        s.template.as_deref(),
        Some(agent_template::default_template("internal/data/database/config").as_str())
    );
}

#[test]
fn templates_files_perms_and_modes_keep_vault_k8s_meaning() {
    let t = "{{- with secret \"database/creds/db-app\" -}}postgres://{{ .Data.username }}:{{ .Data.password }}@postgres:5432/app{{- end }}";
    let r = request(&[
        ("agent-inject", "true"),
        ("agent-pre-populate-only", "true"),
        ("agent-inject-secret-db", "/database/creds/db-app"),
        ("agent-inject-template-db", t),
        ("agent-inject-file-db", "/conf/db.url"),
        ("agent-inject-perms-db", "0400"),
        ("agent-inject-containers", "app, worker"),
        ("auth-path", "auth/k8s-east"),
        ("namespace", "team-a"),
        ("agent-revoke-on-shutdown", "true"),
        ("agent-cache-enable", "true"),
        ("agent-init-first", "true"),
    ]);
    assert_eq!(r.mode, Mode::InitOnly);
    let s = &r.secrets[0];
    assert_eq!(s.address, logical_read("database/creds/db-app"));
    assert_eq!(s.template.as_deref(), Some(t));
    assert_eq!(s.file.as_deref(), Some("conf/db.url"));
    assert_eq!(s.mode.as_deref(), Some("0400"));
    assert_eq!(r.containers, Some(vec!["app".into(), "worker".into()]));
    assert_eq!(r.vault.auth_mount.as_deref(), Some("k8s-east"));
    assert_eq!(r.vault.namespace.as_deref(), Some("team-a"));
    assert!(r.vault.revoke_on_exit);
    let json = request(&[
        ("agent-inject", "true"),
        ("agent-inject-default-template", "json"),
        ("agent-inject-secret-x", "secret/data/x"),
    ]);
    assert!(json.secrets[0]
        .template
        .as_deref()
        .unwrap()
        .contains("toJSON"));
}

#[test]
fn pods_not_asking_are_left_alone() {
    for pairs in [
        &[("agent-inject", "false"), ("agent-inject-secret-x", "a/b")][..],
        &[("role", "r")][..],
        &[
            ("agent-inject", "true"),
            ("agent-inject-status", "injected"),
        ][..],
    ] {
        assert_eq!(
            parse(&annotations(pairs), false),
            Ok(Parsed::NotRequested),
            "{pairs:?}"
        );
    }
}

#[test]
fn what_ramsecrets_does_not_do_is_refused_naming_each_annotation() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                ("agent-json-patch", "[]"),
                ("agent-extra-secret", "s"),
                ("agent-copy-volume-mounts", "app"),
            ],
            &[
                "vault.hashicorp.com/agent-json-patch",
                "vault.hashicorp.com/agent-extra-secret",
                "vault.hashicorp.com/agent-copy-volume-mounts",
            ],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                ("agent-inject-command-x", "kill -HUP 1"),
            ],
            &["agent-inject-command-x", "no shell"],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                ("colour", "x"),
            ],
            &["vault.hashicorp.com/colour", "not a vault-k8s annotation"],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                (
                    "agent-inject-template-x",
                    "{{ with secret \"a/b\" }}{{ pkiCert \"c\" }}{{ end }}",
                ),
            ],
            &[
                "vault.hashicorp.com/agent-inject-template-x",
                "function `pkiCert`",
            ],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                (
                    "agent-inject-template-x",
                    "{{ with secret \"c/d\" }}{{ end }}",
                ),
            ],
            &["agent-inject-template-x", "secret \"c/d\""],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                ("agent-inject-file-y", "f"),
            ],
            &["agent-inject-file-y", "agent-inject-secret-y"],
        ),
        (
            &[
                ("agent-inject", "true"),
                ("agent-inject-secret-x", "a/b"),
                ("agent-inject-perms-x", "rw"),
            ],
            &["agent-inject-perms-x", "octal"],
        ),
        (
            &[("agent-inject", "true"), ("agent-inject-secret-X", "a/b")],
            &["agent-inject-secret-X", "secret name"],
        ),
        (&[("agent-inject", "true")], &["agent-inject", "no secrets"]),
        (&[("agent-inject", "maybe")], &["agent-inject", "maybe"]),
    ];
    for (pairs, expected) in cases {
        let d = denial(pairs);
        for e in *expected {
            assert!(d.contains(e), "{pairs:?}: {d}");
        }
    }
}

#[test]
fn every_row_of_the_table_is_reachable() {
    for (pattern, _, _) in ANNOTATIONS {
        let key = pattern.replace("NAME", "x").replace('*', "y");
        assert_eq!(row(&key).map(|r| r.0), Some(*pattern), "{pattern}");
    }
}

fn injector(compat: bool) -> Injector {
    let text = match compat {
        true => format!("{SETTINGS}  compat: vault-k8s\n"),
        false => SETTINGS.to_owned(),
    };
    let config = Config::parse(&text, Path::new("/")).unwrap();
    Injector::new(&config, (1, 35)).unwrap()
}

fn pod(pairs: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "p", "annotations": annotations(pairs) },
        "spec": { "containers": [ { "name": "app", "image": "app:1" } ] },
    }))
    .unwrap()
}

fn patched(inj: &Injector, pod: &Pod) -> Option<Value> {
    let mut out = serde_json::to_value(pod).unwrap();
    let patch = mutate::patch(inj, "apps", &out).unwrap()?;
    json_patch::patch(&mut out, &patch).unwrap();
    Some(out)
}

#[test]
fn the_injector_serves_vault_k8s_pods_only_when_asked() {
    let p = pod(&[
        ("agent-inject", "true"),
        ("role", "internal-app"),
        (
            "agent-inject-secret-database-config.txt",
            "internal/data/database/config",
        ),
    ]);
    assert_eq!(patched(&injector(false), &p), None);
    let out = patched(&injector(true), &p).unwrap();
    let app = &out["spec"]["containers"][0];
    assert_eq!(app["volumeMounts"][0]["mountPath"], MOUNT_PATH);
    assert_eq!(out["spec"]["initContainers"][0]["name"], mutate::SIDECAR);
    let config = out["metadata"]["annotations"]["ramsecrets.io/rendered-config"]
        .as_str()
        .unwrap();
    let config = Config::parse(config, Path::new("/")).unwrap();
    let s = &config.secrets[0];
    assert_eq!(s.file, "database-config.txt");
    assert_eq!(s.format, crate::config::Format::AgentTemplate);
    // Admitted once: a second look (reinvocation) leaves it as it is.
    let again: Pod = serde_json::from_value(out).unwrap();
    assert_eq!(patched(&injector(true), &again), None);
}

/// `tls-skip-verify: "true"`: refused naming the annotation and the
/// setting unless the injector allows it; allowed, the pod's source skips
/// verifying Vault's certificate, and only that pod's.
#[test]
fn tls_skip_verify_is_admitted_only_where_the_injector_allows_it() {
    let asks = [
        ("agent-inject", "true"),
        ("agent-inject-secret-x", "a/b"),
        ("tls-skip-verify", "true"),
    ];
    let d = denial(&asks);
    assert!(
        d.contains("vault.hashicorp.com/tls-skip-verify")
            && d.contains("inject.compat_allow_tls_skip_verify: true"),
        "{d}"
    );
    let denied = mutate::patch(
        &injector(true),
        "apps",
        &serde_json::to_value(pod(&asks)).unwrap(),
    );
    assert_eq!(
        denied.unwrap_err().key,
        "vault.hashicorp.com/tls-skip-verify"
    );
    let text = format!("{SETTINGS}  compat: vault-k8s\n  compat_allow_tls_skip_verify: true\n");
    let config = Config::parse(&text, Path::new("/")).unwrap();
    let allowing = Injector::new(&config, (1, 35)).unwrap();
    let skips = |pairs: &[(&str, &str)]| {
        let out = patched(&allowing, &pod(pairs)).unwrap();
        let config = out["metadata"]["annotations"]["ramsecrets.io/rendered-config"]
            .as_str()
            .unwrap();
        // As `check` shows the source: "… certificate NOT verified)".
        let shown = Config::parse(config, Path::new("/")).unwrap().to_string();
        shown.contains("certificate NOT verified")
    };
    assert!(skips(&asks));
    assert!(!skips(&asks[..2]));
    assert!(!skips(&[asks[0], asks[1], ("tls-skip-verify", "false")]));
    assert!(request(&[asks[0], asks[1], ("tls-skip-verify", "false")])
        .vault
        .eq(&VaultOverrides::default()));
    // The setting means nothing without compat: a config problem says so.
    let text = format!("{SETTINGS}  compat_allow_tls_skip_verify: true\n");
    let p = Config::parse(&text, Path::new("/")).unwrap_err();
    assert_eq!(p[0].path, "inject.compat_allow_tls_skip_verify", "{p:?}");
}

#[test]
fn a_pod_annotated_for_both_injectors_is_refused() {
    let mut p = pod(&[("agent-inject", "true"), ("agent-inject-secret-x", "a/b")]);
    let a = p.metadata.annotations.as_mut().unwrap();
    a.insert("ramsecrets.io/inject".into(), "true".into());
    a.insert("ramsecrets.io/secret.y".into(), "kv:secret/y".into());
    let d = mutate::patch(&injector(true), "apps", &serde_json::to_value(&p).unwrap()).unwrap_err();
    assert!(d.why.contains("vault-k8s"), "{d}");
}

#[test]
fn problems_found_later_are_blamed_on_the_vault_k8s_annotation() {
    let mut p = pod(&[
        ("agent-inject", "true"),
        ("agent-inject-secret-x", "a/b"),
        ("agent-inject-containers", "nope"),
    ]);
    let d = mutate::patch(&injector(true), "apps", &serde_json::to_value(&p).unwrap()).unwrap_err();
    assert_eq!(d.key, "vault.hashicorp.com/agent-inject-containers", "{d}");
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove("vault.hashicorp.com/agent-inject-containers");
    p.metadata.annotations.as_mut().unwrap().insert(
        "vault.hashicorp.com/agent-inject-file-x".into(),
        "a/../../b".into(),
    );
    let d = mutate::patch(&injector(true), "apps", &serde_json::to_value(&p).unwrap()).unwrap_err();
    assert_eq!(d.key, "vault.hashicorp.com/agent-inject-file-x", "{d}");
}

#[test]
fn vault_k8s_resources_and_users_become_those_of_the_injected_containers() {
    let base = [("agent-inject", "true"), ("agent-inject-secret-x", "a/b")];
    let with = |more: &[(&'static str, &'static str)]| pod(&[&base[..], more].concat());
    let p = with(&[
        ("agent-limits-cpu", "500m"),
        ("agent-limits-mem", "128Mi"),
        ("agent-limits-ephemeral", "8Mi"),
        ("agent-requests-cpu", "50m"),
        ("agent-requests-mem", " 32Mi "),
        ("agent-requests-ephemeral", "1Mi"),
        ("agent-run-as-user", "1000"),
        ("agent-run-as-group", "3000"),
    ]);
    let out = patched(&injector(true), &p).unwrap();
    let c = &out["spec"]["initContainers"][0];
    assert_eq!(
        c["resources"],
        json!({
            "requests": { "cpu": "50m", "memory": "32Mi", "ephemeral-storage": "1Mi" },
            "limits": { "cpu": "500m", "memory": "128Mi", "ephemeral-storage": "8Mi" },
        })
    );
    assert_eq!(c["securityContext"]["runAsUser"], 1000);
    assert_eq!(c["securityContext"]["runAsGroup"], 3000);
    // Empty: the injector's default, which has a CPU limit.
    let out = patched(&injector(true), &with(&[("agent-limits-cpu", "")])).unwrap();
    let c = &out["spec"]["initContainers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "250m");

    // The app's user: its first container's, else the pod's.
    let mut p = with(&[("agent-run-as-same-user", "true")]);
    let spec = p.spec.as_mut().unwrap();
    spec.security_context = Some(k8s_openapi::api::core::v1::PodSecurityContext {
        run_as_user: Some(4000),
        ..Default::default()
    });
    let uid = |p: &Pod| {
        let out = patched(&injector(true), p).unwrap();
        out["spec"]["initContainers"][0]["securityContext"]["runAsUser"].clone()
    };
    assert_eq!(uid(&p), 4000);
    p.spec.as_mut().unwrap().containers[0].security_context =
        Some(k8s_openapi::api::core::v1::SecurityContext {
            run_as_user: Some(5000),
            ..Default::default()
        });
    assert_eq!(uid(&p), 5000);

    let denied = |p: &Pod| {
        mutate::patch(&injector(true), "apps", &serde_json::to_value(p).unwrap()).unwrap_err()
    };
    let d = denied(&with(&[("agent-run-as-same-user", "true")]));
    assert_eq!(d.key, "vault.hashicorp.com/agent-run-as-same-user", "{d}");
    assert!(d.why.contains("runAsUser"), "{d}");
    let d = denied(&with(&[("agent-requests-cpu", "1")]));
    assert_eq!(d.key, "vault.hashicorp.com/agent-requests-cpu", "{d}");
    assert!(d.why.contains("above the cpu limit `250m`"), "{d}");
    // Every bad one at once.
    let d = denial(
        &[
            &base[..],
            &[
                ("agent-limits-mem", "lots"),
                ("agent-run-as-user", "0"),
                ("agent-run-as-same-user", "maybe"),
            ],
        ]
        .concat(),
    );
    for key in [
        "agent-limits-mem",
        "agent-run-as-user",
        "agent-run-as-same-user",
    ] {
        assert!(d.contains(&format!("{PREFIX}{key}:")), "{key}: {d}");
    }
}

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::config::inject::Quantities;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
        .collect()
}

fn request(pairs: &[(&str, &str)]) -> PodRequest {
    match parse(&ann(pairs)) {
        Ok(Parsed::Inject(r)) => *r,
        other => panic!("{pairs:?}: {other:?}"),
    }
}

fn denied(pairs: &[(&str, &str)]) -> Denial {
    match parse(&ann(pairs)) {
        Err(d) => d,
        other => panic!("{pairs:?} was not denied: {other:?}"),
    }
}

/// The annotations a denial names, in order.
fn keys(d: &Denial) -> Vec<&str> {
    std::iter::once(d)
        .chain(&d.more)
        .map(|d| d.key.as_str())
        .collect()
}

#[test]
fn every_annotation_is_read() {
    let r = request(&[
        ("inject", "true"),
        ("secret.db", "kv:secret/app/db"),
        ("file.db", "db.json"),
        ("format.db", "json"),
        ("secret.pw", "kv:secret/app/db"),
        ("key.pw", "password"),
        ("mode.pw", "0440"),
        ("secret.creds", "read:database/creds/app"),
        ("template.creds", "{{ username }}:{{ password }}"),
        (
            "secret.tls",
            "pki:pki/web?common_name=app.ns.svc&ttl=24h&alt_names=a,b",
        ),
        ("secret.api", "aws:prod/api"),
        ("previous.api", "true"),
        ("role", "app"),
        ("source", "vault"),
        ("mode", "init-only"),
        ("containers", "app, worker"),
        ("after", "istio-init"),
        ("mount-path", "/secrets/"),
        ("proxy", "false"),
    ]);
    assert_eq!(r.role.as_deref(), Some("app"));
    assert_eq!(r.source.as_deref(), Some("vault"));
    assert_eq!(r.mode, Mode::InitOnly);
    assert_eq!(r.containers, Some(vec!["app".into(), "worker".into()]));
    assert_eq!(r.after, vec!["istio-init".to_string()]);
    assert_eq!(r.mount_path.as_deref(), Some("/secrets"));
    assert!(!r.proxy, "the proxy needs the sidecar");
    let by = |n: &str| r.secrets.iter().find(|s| s.name == n).unwrap().clone();
    let address = |n: &str| {
        let s = by(n);
        let (key, value) = s.address.config();
        (key, value.clone())
    };
    assert_eq!(
        address("db"),
        ("kv", json!({ "mount": "secret", "path": "app/db" }))
    );
    assert_eq!(by("db").file.as_deref(), Some("db.json"));
    assert_eq!(by("db").format.as_deref(), Some("json"));
    assert_eq!(by("pw").key.as_deref(), Some("password"));
    assert_eq!(by("pw").mode.as_deref(), Some("0440"));
    assert_eq!(address("creds"), ("read", json!("database/creds/app")));
    assert!(by("creds").template.is_some());
    assert_eq!(
        address("tls"),
        (
            "pki",
            json!({
                "mount": "pki",
                "role": "web",
                "common_name": "app.ns.svc",
                "ttl": "24h",
                "alt_names": ["a", "b"],
            })
        )
    );
    assert_eq!(by("tls").address.kind(), "Vault");
    assert!(by("tls").address.needs_token());
    assert_eq!(address("api"), ("secret_id", json!("prod/api")));
    assert_eq!(by("api").address.kind(), "AWS");
    assert!(!by("api").address.needs_token());
    assert!(by("api").previous);
}

#[test]
fn pods_without_the_request_or_already_injected_are_left_alone() {
    assert_eq!(parse(&BTreeMap::new()), Ok(Parsed::NotRequested));
    let mut other = BTreeMap::new();
    other.insert("example.com/x".to_string(), "y".to_string());
    assert_eq!(parse(&other), Ok(Parsed::NotRequested));
    assert_eq!(
        parse(&ann(&[("inject", "false"), ("secret.a", "kv:s/a")])),
        Ok(Parsed::NotRequested)
    );
    assert_eq!(
        parse(&ann(&[
            ("inject", "true"),
            ("secret.a", "kv:s/a"),
            ("injected", "true")
        ])),
        Ok(Parsed::Injected)
    );
}

#[test]
fn config_map_takes_the_whole_config() {
    let r = request(&[("inject", "true"), ("config-map", "app-secrets")]);
    assert_eq!(r.config_map.as_deref(), Some("app-secrets"));
    assert!(r.secrets.is_empty());
}

#[test]
fn bad_annotations_are_denied_by_name() {
    // (annotations, the annotation named, words of the reason)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("inject", "yes")], "ramsecrets.io/inject", "not \"true\""),
        (&[("secret.a", "kv:s/a")], "ramsecrets.io/inject", "missing"),
        (&[("inject", "true")], "ramsecrets.io/inject", "no secrets"),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("colour", "red"),
            ],
            "ramsecrets.io/colour",
            "unknown",
        ),
        (
            &[("inject", "true"), ("secret.a", "kv:secret")],
            "ramsecrets.io/secret.a",
            "kv:MOUNT/PATH",
        ),
        (
            &[("inject", "true"), ("secret.a", "vault:x")],
            "ramsecrets.io/secret.a",
            "unknown kind",
        ),
        (
            &[("inject", "true"), ("secret.a", "nothing")],
            "ramsecrets.io/secret.a",
            "expected kv:",
        ),
        (
            &[("inject", "true"), ("secret.a", "read:")],
            "ramsecrets.io/secret.a",
            "read:PATH",
        ),
        (
            &[("inject", "true"), ("secret.a", "aws:")],
            "ramsecrets.io/secret.a",
            "aws:SECRET_ID",
        ),
        (
            &[("inject", "true"), ("secret.a", "ssm:")],
            "ramsecrets.io/secret.a",
            "ssm:NAME",
        ),
        (
            &[("inject", "true"), ("secret.a", "ssm-path:app")],
            "ramsecrets.io/secret.a",
            "ssm-path:PATH",
        ),
        (
            &[("inject", "true"), ("secret.a", "pki:pki/web")],
            "ramsecrets.io/secret.a",
            "common_name",
        ),
        (
            &[("inject", "true"), ("secret.a", "pki:pki/web?cn=x")],
            "ramsecrets.io/secret.a",
            "unknown parameter",
        ),
        (
            &[("inject", "true"), ("secret.A", "kv:s/a")],
            "ramsecrets.io/secret.A",
            "not a secret name",
        ),
        (
            &[("inject", "true"), ("secret.a", "kv:s/a"), ("file.b", "x")],
            "ramsecrets.io/file.b",
            "no ramsecrets.io/secret.b",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("previous.a", "1"),
            ],
            "ramsecrets.io/previous.a",
            "not \"true\"",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("mode", "daemon"),
            ],
            "ramsecrets.io/mode",
            "sidecar",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("mount-path", "rel"),
            ],
            "ramsecrets.io/mount-path",
            "absolute",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("mount-path", "/a/../b"),
            ],
            "ramsecrets.io/mount-path",
            "absolute",
        ),
        (
            &[("inject", "true"), ("secret.a", "kv:s/a"), ("proxy", "on")],
            "ramsecrets.io/proxy",
            "not \"true\"",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("containers", "a,,b"),
            ],
            "ramsecrets.io/containers",
            "comma-separated",
        ),
        (
            &[("inject", "true"), ("secret.a", "kv:s/a"), ("role", " ")],
            "ramsecrets.io/role",
            "empty",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("config-map", "cm"),
            ],
            "ramsecrets.io/config-map",
            "cannot be combined",
        ),
        (
            &[("inject", "true"), ("config-map", "Bad_Name!")],
            "ramsecrets.io/config-map",
            "not a ConfigMap name",
        ),
        (
            &[
                ("inject", "true"),
                ("secret.a", "kv:s/a"),
                ("rendered-config", "x"),
            ],
            "ramsecrets.io/rendered-config",
            "set by the injector",
        ),
    ];
    for (pairs, key, why) in cases {
        let d = denied(pairs);
        assert_eq!(d.key, *key, "{pairs:?}: {d}");
        assert!(d.why.contains(why), "{pairs:?}: `{d}` lacks `{why}`");
    }
}

#[test]
fn the_annotation_table_is_what_the_parser_reads() {
    for (key, _) in ANNOTATIONS {
        let key = key.replace("NAME", "x");
        let outcome = parse(&ann(&[
            ("inject", "true"),
            ("secret.x", "kv:secret/x"),
            (&key, "true"),
        ]));
        if let Err(d) = outcome {
            assert!(!d.why.starts_with("unknown"), "{key}: {d}");
        }
    }
    let d = denied(&[("inject", "true"), ("colour", "blue")]);
    assert_eq!(d.why, format!("unknown: expected {}", known()));
    assert!(
        d.why.contains("inject, secret.NAME, file.NAME") && d.why.ends_with("proxy or config-map")
    );
}

#[test]
fn every_bad_annotation_is_reported_at_once() {
    let d = denied(&[
        ("inject", "true"),
        ("colour", "blue"),
        ("mode", "daemon"),
        ("secret.db", "nosuch:x"),
        ("file.other", "x"),
    ]);
    assert_eq!(
        keys(&d),
        [
            "ramsecrets.io/colour",
            "ramsecrets.io/mode",
            "ramsecrets.io/secret.db",
            "ramsecrets.io/file.other"
        ],
        "{d}"
    );
    let text = d.to_string();
    assert!(
        text.contains("annotation ramsecrets.io/colour: unknown")
            && text.contains("; annotation ramsecrets.io/file.other: there is no"),
        "{text}"
    );
}

#[test]
fn the_mount_path_cannot_cover_system_or_ramsecrets_own_directories() {
    for path in [
        "/",
        "/etc",
        "/etc/",
        "/proc",
        "/proc/self",
        "/dev",
        "/dev/shm",
        "/sys",
        "/run",
        "/run/ramsecrets",
        "/run/ramsecrets/config",
        "/run/ramsecrets/state/x",
    ] {
        let d = denied(&[
            ("inject", "true"),
            ("secret.db", "kv:s/db"),
            ("mount-path", path),
        ]);
        assert_eq!(d.key, "ramsecrets.io/mount-path", "{path}: {d}");
    }
    for path in ["/etc/app", "/run/secrets/app", "/devices", "/secrets"] {
        let r = request(&[
            ("inject", "true"),
            ("secret.db", "kv:s/db"),
            ("mount-path", path),
        ]);
        assert_eq!(r.mount_path.as_deref(), Some(path));
    }
}

#[test]
fn the_proxy_needs_the_sidecar() {
    let d = denied(&[
        ("inject", "true"),
        ("secret.db", "kv:s/db"),
        ("mode", "init-only"),
        ("proxy", "true"),
    ]);
    assert_eq!(d.key, "ramsecrets.io/proxy", "{d}");
    assert!(d.why.contains("init-only"), "{d}");
}

#[test]
fn resources_are_kubernetes_quantities() {
    let r = request(&[
        ("inject", "true"),
        ("secret.db", "kv:s/db"),
        ("requests-cpu", "10m"),
        ("requests-memory", "32Mi"),
        ("limits-cpu", "0.5"),
        ("limits-memory", "128Mi"),
        ("limits-ephemeral-storage", "1Gi"),
    ]);
    let q = |cpu: &str, memory: &str, eph: Option<&str>| Quantities {
        cpu: Some(cpu.into()),
        memory: Some(memory.into()),
        ephemeral_storage: eph.map(String::from),
    };
    assert_eq!(r.resources.requests, q("10m", "32Mi", None));
    assert_eq!(r.resources.limits, q("0.5", "128Mi", Some("1Gi")));
    let d = denied(&[
        ("inject", "true"),
        ("secret.db", "kv:s/db"),
        ("requests-cpu", "lots"),
        ("limits-memory", "128MB"),
        ("limits-gpu", "1"),
    ]);
    assert_eq!(
        keys(&d),
        [
            "ramsecrets.io/limits-gpu",
            "ramsecrets.io/limits-memory",
            "ramsecrets.io/requests-cpu"
        ],
        "{d}"
    );
    assert!(
        d.to_string()
            .contains("`128MB` is not a Kubernetes quantity"),
        "{d}"
    );
}

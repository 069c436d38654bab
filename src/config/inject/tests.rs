//! Tests of the injector's config section: quantities, defaults and their bounds.

use super::*;

#[test]
fn quantities() {
    for good in ["5m", "16Mi", "0.5", "1", "64Mi", "100k"] {
        assert!(is_quantity(good), "{good}");
    }
    for bad in ["", "Mi", "5 m", "1.2.3", "-1", "16MB", "1."] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

fn problems(inject: &str) -> Vec<String> {
    let text = format!(
        "sources:\n  - vault: {{ address: https://v:8200, auth: {{ kubernetes: {{ role: r }} }} }}\ninject:\n{inject}"
    );
    match super::super::Config::parse(&text, std::path::Path::new("/")) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

#[test]
fn an_injector_file_needs_no_output_or_secrets() {
    let ok = "  tls: { auto: { webhook: w, service: s, namespace: n } }\n  image: i\n";
    assert_eq!(problems(ok), Vec::<String>::new());
}

#[test]
fn bad_settings_name_their_key() {
    let cases = [
        ("  tls: {}\n  image: i\n", "inject.tls: needs `cert_file`"),
        ("  tls: { cert_file: c }\n  image: i\n", "inject.tls: needs `cert_file`"),
        ("  tls: { auto: { webhook: w } }\n  image: i\n", "inject.tls.auto: needs"),
        ("  tls: { auto: { webhook: w, service: s } }\n  image: i\n", "inject.tls.auto: `service` and `namespace`"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: ' '\n", "inject.image: must not be empty"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  listen: nowhere\n", "inject.listen: `nowhere`"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  kubernetes_version: latest\n", "inject.kubernetes_version"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  defaults: { size_limit: 16MB }\n", "inject.defaults.size_limit"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  defaults: { mount_path: rel }\n", "inject.defaults.mount_path"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  defaults: { run_as_user: 0 }\n", "inject.defaults.run_as_user"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  defaults: { refresh: soon }\n", "inject.defaults.refresh"),
        ("  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  colour: red\n", "inject.colour: unknown field `colour`"),
    ];
    for (inject, expected) in cases {
        let p = problems(inject);
        assert!(p.iter().any(|p| p.starts_with(expected)), "{inject}: {p:?}");
    }
}

/// The pod defaults of an injector whose `inject.defaults` is `defaults`.
fn defaults_of(defaults: &str) -> PodDefaults {
    let text = format!(
        "sources:\n  - vault: {{ address: https://v:8200, auth: {{ kubernetes: {{ role: r }} }} }}\ninject:\n  tls: {{ auto: {{ webhook: w, names: [a] }} }}\n  image: i\n  defaults: {defaults}\n"
    );
    let config = super::super::Config::parse(&text, std::path::Path::new("/")).unwrap();
    config.inject.unwrap().defaults
}

#[test]
fn each_resource_keeps_its_default_unless_set_or_null() {
    let defaults =
        |resources: &str| defaults_of(&format!("{{ resources: {resources} }}")).resources;
    let q = |cpu: Option<&str>, memory: Option<&str>| Quantities {
        cpu: cpu.map(String::from),
        memory: memory.map(String::from),
        ephemeral_storage: None,
    };
    let r = defaults("{}");
    assert_eq!(r.requests, q(Some("5m"), Some("16Mi")));
    assert_eq!(r.limits, q(Some("250m"), Some("64Mi")));
    let r = defaults("{ limits: { memory: 128Mi } }");
    assert_eq!(r.limits, q(Some("250m"), Some("128Mi")));
    let r = defaults("{ limits: { cpu: null }, requests: { memory: null } }");
    assert_eq!(r.limits, q(None, Some("64Mi")));
    assert_eq!(r.requests, q(Some("5m"), None));
    let p = problems(
        "  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n  defaults: { resources: { requests: { cpu: '1' } } }\n",
    );
    assert!(
        p.iter().any(|p| p
            .starts_with("inject.defaults.resources.requests.cpu: `1` is above the limit `250m`")),
        "{p:?}"
    );
}

#[test]
fn a_null_uid_is_left_to_the_platform() {
    let uid = |defaults: &str| defaults_of(defaults).run_as_user;
    assert_eq!(uid("{}"), Some(65532));
    assert_eq!(uid("{ run_as_user: 1000 }"), Some(1000));
    assert_eq!(uid("{ run_as_user: null }"), None);
    assert_eq!(uid("{ run_as_user: ~ }"), None);
}

#[test]
fn injected_pods_log_in_with_kubernetes_auth() {
    let text = "sources:\n  - vault: { address: https://v:8200, auth: { token_file: /t } }\ninject:\n  tls: { auto: { webhook: w, names: [a] } }\n  image: i\n";
    let p = super::super::Config::parse(text, std::path::Path::new("/")).unwrap_err();
    assert_eq!(p[0].path, "sources[0].vault.auth", "{p:?}");
}

#[test]
fn versions() {
    assert_eq!(parse_version("1.28"), Some((1, 28)));
    assert_eq!(parse_version("v1.35.4"), Some((1, 35)));
    assert_eq!(parse_version("v1.29.0-eks-1234"), Some((1, 29)));
    assert_eq!(parse_version("1"), None);
    assert_eq!(parse_version("one.two"), None);
}

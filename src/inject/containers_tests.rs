//! The containers the injector adds, through the whole decision: their
//! resources, user and health port.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::Config;
use crate::inject::mutate::tests::{admitted, app, denial, injector, pod, SETTINGS};
use crate::inject::spec::RENDERED_CONFIG;
use crate::inject::Injector;

#[test]
fn a_pod_picks_the_uid_and_gid_of_its_injected_containers() {
    let inj = injector((1, 28));
    let mut ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
        "ramsecrets.io/run-as-user": "1000710000" });
    let p = admitted(&inj, &pod(ann.clone(), app()), "apps");
    for c in [&p["spec"]["initContainers"][0], &p["spec"]["containers"][1]] {
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsUser"], 1000710000, "{c}");
        assert_eq!(sc["runAsGroup"], 1000710000, "{c}");
        assert_eq!(sc["runAsNonRoot"], true, "{c}");
    }
    ann["ramsecrets.io/run-as-group"] = json!("0");
    let p = admitted(&inj, &pod(ann.clone(), app()), "apps");
    assert_eq!(
        p["spec"]["initContainers"][0]["securityContext"]["runAsGroup"],
        0
    );
    for (key, bad) in [
        ("run-as-user", "0"),
        ("run-as-user", "-1"),
        ("run-as-group", "x"),
    ] {
        let mut a = ann.clone();
        a[format!("ramsecrets.io/{key}")] = json!(bad);
        let message = denial(&inj, &pod(a, app()));
        assert!(
            message.contains(&format!("ramsecrets.io/{key}")),
            "{message}"
        );
    }
}

#[test]
fn a_pod_sets_the_resources_of_its_injected_containers() {
    let inj = injector((1, 28));
    let resources = |more: Value| {
        let mut ann =
            json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
        ann.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        let p = admitted(&inj, &pod(ann, app()), "apps");
        let init = p["spec"]["initContainers"][0]["resources"].clone();
        assert_eq!(init, p["spec"]["containers"][1]["resources"]);
        init
    };
    // The injector's defaults have a CPU limit: a namespace with a
    // `limits.cpu` quota admits the pod.
    assert_eq!(
        resources(json!({})),
        json!({ "requests": { "cpu": "5m", "memory": "16Mi" },
                "limits": { "cpu": "250m", "memory": "64Mi" } })
    );
    assert_eq!(
        resources(
            json!({ "ramsecrets.io/limits-cpu": "1", "ramsecrets.io/requests-memory": "64Mi",
                          "ramsecrets.io/requests-ephemeral-storage": "1Mi" })
        ),
        json!({ "requests": { "cpu": "5m", "memory": "64Mi", "ephemeral-storage": "1Mi" },
                "limits": { "cpu": "1", "memory": "64Mi" } })
    );
    // A request above its limit is refused here, not by the API server.
    for (key, value) in [("requests-memory", "65Mi"), ("limits-cpu", "1m")] {
        let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
                          format!("ramsecrets.io/{key}"): value, "ramsecrets.io/containers": "nosuch" });
        let message = denial(&inj, &pod(ann, app()));
        assert!(
            message.contains(&format!("annotation ramsecrets.io/{key}: "))
                && message.contains("is above the")
                && message.contains("ramsecrets.io/containers"),
            "{message}"
        );
    }
}

#[test]
fn the_health_port_is_one_no_container_of_the_pod_declares() {
    let inj = injector((1, 35));
    let ports = |ports: &[u16]| {
        let ports: Vec<Value> = ports
            .iter()
            .map(|p| json!({ "containerPort": p }))
            .collect();
        json!({ "containers": [ { "name": "app", "image": "app:1", "ports": ports } ] })
    };
    let port = |extra: Value, spec: Value| {
        let mut ann =
            json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
        ann.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let p = admitted(&inj, &pod(ann, spec), "apps");
        let sidecar = &p["spec"]["initContainers"][0];
        let probed = sidecar["startupProbe"]["httpGet"]["port"].as_u64().unwrap();
        let text = p["metadata"]["annotations"][RENDERED_CONFIG]
            .as_str()
            .unwrap();
        let config = Config::parse(text, Path::new("/")).unwrap();
        assert_eq!(config.health.unwrap().port() as u64, probed, "{text}");
        probed
    };
    assert_eq!(port(json!({}), app()), 8099);
    assert_eq!(port(json!({}), ports(&[8080, 8099, 8100])), 8101);
    let proxy = json!({ "ramsecrets.io/proxy": "true", "ramsecrets.io/health-port": "9000" });
    let mut spec = ports(&[8099]);
    spec["securityContext"] = json!({ "fsGroup": 2000 });
    assert_eq!(port(proxy, spec), 9000);
    for (value, why) in [
        ("8080", "8080 is taken by app"),
        ("0", "not a port"),
        ("65536", "not a port"),
    ] {
        let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
                          "ramsecrets.io/health-port": value });
        let message = denial(&inj, &pod(ann, ports(&[8080])));
        assert!(
            message.contains("annotation ramsecrets.io/health-port: ") && message.contains(why),
            "{value}: {message}"
        );
    }
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
                      "ramsecrets.io/health-port": "2773", "ramsecrets.io/proxy": "true" });
    let mut spec = app();
    spec["securityContext"] = json!({ "fsGroup": 2000 });
    let message = denial(&inj, &pod(ann, spec));
    assert!(message.contains("taken by ramsecrets' proxy"), "{message}");
}

#[test]
fn a_null_default_uid_is_left_to_the_platform_and_still_not_root() {
    let settings = format!("{SETTINGS}  defaults: {{ run_as_user: null }}\n");
    let config = Config::parse(&settings, Path::new("/")).unwrap();
    let inj = Injector::new(&config, (1, 35)).unwrap();
    let ann = json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db" });
    let p = admitted(&inj, &pod(ann.clone(), app()), "apps");
    let sc = &p["spec"]["initContainers"][0]["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{sc}");
    assert!(
        sc.get("runAsUser").is_none() && sc.get("runAsGroup").is_none(),
        "{sc}"
    );
    // A pod still picks its own.
    let mut ann = ann;
    ann["ramsecrets.io/run-as-user"] = json!("1000710000");
    let p = admitted(&inj, &pod(ann, app()), "apps");
    let sc = &p["spec"]["initContainers"][0]["securityContext"];
    assert_eq!(sc["runAsUser"], 1000710000);
    assert_eq!(sc["runAsGroup"], 1000710000);
}

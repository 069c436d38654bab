use std::path::Path;

use serde_json::{json, Value};

use crate::config::{Action, Config};
use crate::inject::mutate::tests::{admitted, denial, injector, pod};
use crate::inject::spec::RENDERED_CONFIG;

fn annotated(on_change: &str) -> Value {
    json!({ "ramsecrets.io/inject": "true", "ramsecrets.io/secret.db": "kv:secret/db",
            "ramsecrets.io/on-change.db": on_change })
}

fn spec(command: Value, uid: Option<i64>) -> Value {
    let mut app = json!({ "name": "app", "image": "nginx:1", "command": command });
    if let Some(uid) = uid {
        app["securityContext"] = json!({ "runAsUser": uid });
    }
    json!({ "containers": [ app ] })
}

/// The on_change actions of the admitted pod's config.
fn actions(p: &Value) -> Vec<Action> {
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    Config::parse(text, Path::new("/")).unwrap().secrets[0]
        .on_change
        .clone()
}

#[test]
fn the_app_is_told_over_the_pods_loopback() {
    let inj = injector((1, 35));
    let p = admitted(
        &inj,
        &pod(
            annotated("http://127.0.0.1:8080/-/reload"),
            spec(json!(null), None),
        ),
        "apps",
    );
    assert!(
        matches!(&actions(&p)[..], [Action::Http { url, .. }] if url.as_str() == "http://127.0.0.1:8080/-/reload"),
        "{:?}",
        actions(&p)
    );
    assert!(p["spec"].get("shareProcessNamespace").is_none());
    for bad in [
        "http://db.example:8080/",
        "https://127.0.0.1/",
        "kill -HUP 1",
        "signal:HUP",
    ] {
        let message = denial(&inj, &pod(annotated(bad), spec(json!(null), None)));
        assert!(
            message.contains("annotation ramsecrets.io/on-change.db:"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn a_signal_goes_to_the_containers_process_in_a_shared_process_namespace() {
    let inj = injector((1, 35));
    let with_run_as = |a: Value, uid: &str| {
        let mut a = a;
        a["ramsecrets.io/run-as-user"] = json!(uid);
        a
    };
    let command = json!(["/usr/local/bin/a-very-long-server-name", "-c", "x"]);
    let p = admitted(
        &inj,
        &pod(
            with_run_as(annotated("signal:HUP:app"), "101"),
            spec(command.clone(), Some(101)),
        ),
        "apps",
    );
    assert_eq!(p["spec"]["shareProcessNamespace"], true);
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    // /proc/PID/comm keeps 15 bytes of the name.
    assert!(text.contains("process: a-very-long-ser\n"), "{text}");
    assert_eq!(actions(&p).len(), 1);
    // Named, when the image's entrypoint is not in the pod spec.
    let p = admitted(
        &inj,
        &pod(
            with_run_as(annotated("signal:USR1:app:nginx"), "101"),
            spec(json!(null), None),
        ),
        "apps",
    );
    let text = p["metadata"]["annotations"][RENDERED_CONFIG]
        .as_str()
        .unwrap();
    assert!(
        text.contains("process: nginx") && text.contains("signal: USR1"),
        "{text}"
    );

    for (value, uid, app_spec, why) in [
        (
            "signal:HUP:app",
            "101",
            spec(json!(null), None),
            "sets no command",
        ),
        (
            "signal:HUP:web",
            "101",
            spec(command.clone(), None),
            "no container `web`",
        ),
        (
            "signal:HUP:app",
            "65532",
            spec(command.clone(), Some(101)),
            "run-as-user: \"101\"",
        ),
        (
            "signal:NOPE:app:x",
            "101",
            spec(command.clone(), None),
            "NOPE",
        ),
    ] {
        let message = denial(&inj, &pod(with_run_as(annotated(value), uid), app_spec));
        assert!(
            message.contains("annotation ramsecrets.io/on-change.db:") && message.contains(why),
            "{value}: {message}"
        );
    }
    let mut no_sharing = spec(command, Some(101));
    no_sharing["shareProcessNamespace"] = json!(false);
    let message = denial(
        &inj,
        &pod(with_run_as(annotated("signal:HUP:app"), "101"), no_sharing),
    );
    assert!(message.contains("process namespace"), "{message}");
}

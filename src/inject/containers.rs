//! What the containers the injector adds run with: their resources (the
//! injector's `defaults.resources`, each quantity replaced by the pod's
//! `requests-*`/`limits-*` annotation), the uid and gid they run as, their
//! restricted security context, and the sidecar's health port, which no
//! container of the pod declares.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::{json, Map, Value};

use super::spec::{deny, Denial, PodRequest};
use crate::config::inject::{is_quantity, PodDefaults, Quantities, Resources};

/// Reads annotation `key` (after the prefix) into `pod` when it is a
/// `requests-RESOURCE` or `limits-RESOURCE` one; `None` when it is not.
pub fn read(key: &str, value: &str, pod: &mut Resources) -> Option<Result<(), Denial>> {
    let (kind, resource) = key.split_once('-')?;
    let quantities = match kind {
        "requests" => &mut pod.requests,
        "limits" => &mut pod.limits,
        _ => return None,
    };
    let slot = quantities.get_mut(resource)?;
    if !is_quantity(value) {
        let example = if resource == "cpu" {
            "100m or 0.5"
        } else {
            "64Mi"
        };
        return Some(Err(deny(
            key,
            format!("`{value}` is not a Kubernetes quantity like {example}"),
        )));
    }
    *slot = Some(value.to_owned());
    Some(Ok(()))
}

/// The `resources` of the injected containers: `defaults` with each quantity
/// the pod sets in its place. A request above its limit is denied, naming the
/// pod's annotation that made it so.
pub fn resources(defaults: &Resources, pod: &Resources) -> Result<Value, Denial> {
    let mut merged = defaults.clone();
    let overlay = |into: &mut Quantities, from: &Quantities| {
        for (name, q) in from.each() {
            if let (Some(q), Some(slot)) = (q, into.get_mut(name)) {
                *slot = Some(q.to_owned());
            }
        }
    };
    overlay(&mut merged.requests, &pod.requests);
    overlay(&mut merged.limits, &pod.limits);
    if let Some((name, request, limit)) = merged.request_above_limit() {
        let pod_sets = |q: &Quantities| q.each().iter().any(|(n, q)| *n == name && q.is_some());
        let key = match pod_sets(&pod.requests) || !pod_sets(&pod.limits) {
            true => format!("requests-{name}"),
            false => format!("limits-{name}"),
        };
        return Err(deny(
            &key,
            format!(
                "the {name} request `{request}` is above the {name} limit `{limit}`, which Kubernetes refuses (ramsecrets.io/requests-{name} and limits-{name} change them)"
            ),
        ));
    }
    let mut out = Map::new();
    for (kind, quantities) in [("requests", &merged.requests), ("limits", &merged.limits)] {
        let set: Map<String, Value> = quantities
            .each()
            .into_iter()
            .filter_map(|(name, q)| Some((name.to_owned(), json!(q?))))
            .collect();
        if !set.is_empty() {
            out.insert(kind.to_owned(), Value::Object(set));
        }
    }
    Ok(Value::Object(out))
}

/// The `(uid, gid)` the injected containers of `pod` run as: the pod's
/// annotations, else the app's user (vault-k8s' `agent-run-as-same-user`),
/// else the injector's default, which may leave it to the platform (`None`);
/// the gid defaults to the uid.
pub fn user(
    defaults: &PodDefaults,
    request: &PodRequest,
    pod: &Pod,
) -> Result<(Option<i64>, Option<i64>), Denial> {
    let uid = match (request.run_as_same_user, request.run_as_user) {
        (true, _) => Some(app_user(pod)?),
        (false, Some(uid)) => Some(uid),
        (false, None) => defaults.run_as_user,
    };
    Ok((uid, request.run_as_group.or(uid)))
}

/// The uid of the pod's first app container, as the kubelet runs it: its own
/// `runAsUser`, else the pod's.
fn app_user(pod: &Pod) -> Result<i64, Denial> {
    let spec = pod.spec.as_ref();
    let container = spec
        .and_then(|s| s.containers.first())
        .and_then(|c| c.security_context.as_ref())
        .and_then(|sc| sc.run_as_user);
    let pod_level = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.run_as_user);
    match container.or(pod_level) {
        Some(uid) if uid > 0 => Ok(uid),
        Some(_) => Err(deny(
            "run-as-same-user",
            "the app runs as root, and ramsecrets' containers never do",
        )),
        None => Err(deny(
            "run-as-same-user",
            "the first app container (or the pod) sets no securityContext.runAsUser to run as",
        )),
    }
}

/// The restricted security context of an injected container (PodSecurity
/// `restricted` admits it); without a uid (or gid) the platform picks it.
pub fn security_context(uid: Option<i64>, gid: Option<i64>) -> Value {
    let mut sc = json!({
        "runAsNonRoot": true,
        "readOnlyRootFilesystem": true,
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    });
    if let Some(uid) = uid {
        sc["runAsUser"] = json!(uid);
    }
    if let Some(gid) = gid {
        sc["runAsGroup"] = json!(gid);
    }
    sc
}

/// Where the sidecar's proxy listens in the pod (on loopback; the health port,
/// on every address, cannot share it).
const PROXY_PORT: u16 = 2773;

/// The port of the sidecar's `/readyz` (and `/healthz`, `/metrics`) on the
/// pod's IP: the pod's `health-port`, else the injector's default or the next
/// port above it; never one a container of the pod declares (the containers
/// of a pod share its network), nor the proxy's.
pub fn health_port(default: u16, request: &PodRequest, spec: &PodSpec) -> Result<u16, Denial> {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut taken: Vec<(u16, String)> = containers
        .flat_map(|c| {
            let ports = c.ports.iter().flatten();
            ports.filter_map(|p| Some((u16::try_from(p.container_port).ok()?, c.name.clone())))
        })
        .collect();
    if request.proxy {
        taken.push((PROXY_PORT, "ramsecrets' proxy".to_owned()));
    }
    let owner = |port: u16| taken.iter().find(|(p, _)| *p == port).map(|(_, c)| c);
    match request.health_port {
        Some(port) => match owner(port) {
            Some(c) => Err(deny(
                "health-port",
                format!("{port} is taken by {c}: pick another"),
            )),
            None => Ok(port),
        },
        None => (default..=u16::MAX)
            .find(|p| owner(*p).is_none())
            .ok_or_else(|| {
                deny(
                    "health-port",
                    format!("every port from {default} up is taken: set one"),
                )
            }),
    }
}

#[cfg(test)]
#[path = "containers_tests.rs"]
mod tests;

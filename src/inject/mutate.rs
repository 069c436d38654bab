//! The admission decision, a pure function: (injector settings, AdmissionRequest
//! of a Pod) → AdmissionResponse with a JSONPatch of `add` operations on the
//! pod as sent (on a reinvocation, `move`s of a mesh's init containers named
//! by `ramsecrets.io/after`), or a denial that names the annotation at fault.
//! The HTTP layer only unwraps and wraps the review.
//!
//! An injected pod gets two memory volumes (the secrets, read-only in the app
//! containers; the hand-off state, only in ramsecrets' containers), a
//! projected service-account token for Vault, its config as an annotation
//! shown to ramsecrets' containers by a downward-API volume (and pinned by
//! their `--config-sha256`, so a later edit of it is never run), and ramsecrets
//! itself: a native sidecar (an init container with `restartPolicy: Always`
//! and a startup probe on `/readyz`) placed before the app's init containers;
//! on servers before 1.29 an init container and a regular sidecar; in
//! `init-only` mode one init container.

use std::collections::BTreeMap;

use json_patch::Patch;
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube_core::DynamicObject;
use serde::Deserialize;
use serde_json::{json, Value};

use super::compat;
use super::containers;
use super::onchange;
use super::podconfig::{self, CONFIG_DIR, CONFIG_FILE, STATE_DIR, TOKEN_DIR};
use super::spec::{
    self, deny, Denial, Mode, Parsed, PodRequest, INJECTED, RENDERED_CA, RENDERED_CONFIG,
};
use super::Injector;
use crate::config::inject::Compat;
use crate::config::Pin;

/// Name of the sidecar (native or regular).
pub const SIDECAR: &str = "ramsecrets";
/// Name of the init container (`init-only`, and before 1.29).
pub const INIT: &str = "ramsecrets-init";
/// Volume names.
const SECRETS: &str = "ramsecrets-secrets";
const STATE: &str = "ramsecrets-state";
const TOKEN: &str = "ramsecrets-token";
const CONFIG: &str = "ramsecrets-config";
/// Namespaces the injector never touches.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public"];

/// Answers one AdmissionRequest (its object kept as sent, fields the typed
/// model does not know included).
pub fn mutate(injector: &Injector, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    let Some(object) = req
        .object
        .as_ref()
        .filter(|_| req.operation == Operation::Create)
    else {
        return response;
    };
    let namespace = req
        .namespace
        .as_deref()
        .or(object.metadata.namespace.as_deref())
        .unwrap_or("default");
    let patched = serde_json::to_value(object)
        .map_err(|e| deny("inject", format!("cannot read the pod: {e}")))
        .and_then(|raw| patch(injector, namespace, &raw));
    match patched {
        Ok(None) => response,
        Ok(Some(patch)) => match response.clone().with_patch(patch) {
            Ok(r) => r,
            Err(e) => response.deny(format!("cannot encode the patch: {e}")),
        },
        Err(denial) => response.deny(format!("ramsecrets: {denial}")),
    }
}

/// The patch for the pod `raw` (its JSON as sent) in `namespace`: `None`
/// when it is left alone. It only adds: what is injected, at its place in
/// `raw`, so nothing of the pod is rewritten (a field the typed model does
/// not know stays where it was).
pub fn patch(injector: &Injector, namespace: &str, raw: &Value) -> Result<Option<Patch>, Denial> {
    if SYSTEM_NAMESPACES.contains(&namespace) {
        return Ok(None);
    }
    let pod = Pod::deserialize(raw).map_err(|e| deny("inject", format!("not a pod: {e}")))?;
    let pod = &pod;
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let vault_k8s = injector.settings.compat == Some(Compat::VaultK8s);
    let allow_skip = injector.settings.compat_allow_tls_skip_verify;
    let (request, vault_k8s) = match spec::parse(annotations)? {
        Parsed::NotRequested if vault_k8s => match compat::parse(annotations, allow_skip)? {
            Parsed::Inject(r) => (r, true),
            _ => return Ok(None),
        },
        Parsed::NotRequested => return Ok(None),
        Parsed::Injected => {
            let spec = pod.spec.as_ref();
            let names = spec.into_iter().flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            });
            return match names
                .into_iter()
                .any(|c| c.name == SIDECAR || c.name == INIT)
            {
                true => Ok(reorder(pod, annotations.get(&format!("{}after", spec::PREFIX)))),
                false => Err(deny(
                    "injected",
                    "is set but the pod has no ramsecrets container: remove the annotation",
                )),
            };
        }
        Parsed::Inject(_) if vault_k8s && matches!(compat::parse(annotations, allow_skip), Ok(Parsed::Inject(_)) | Err(_)) => {
            return Err(deny(
                "inject",
                "the pod is annotated for vault-k8s (vault.hashicorp.com/agent-inject) too: keep one of the two",
            ))
        }
        Parsed::Inject(r) => (r, false),
    };
    let mut ops = Adds::default();
    inject(injector, &request, pod, raw, &mut ops).map_err(|d| match vault_k8s {
        true => compat::blame(d),
        false => d,
    })?;
    serde_json::from_value(Value::Array(ops.0))
        .map(Some)
        .map_err(|e| deny("inject", format!("cannot make the patch: {e}")))
}

/// On a reinvocation (`reinvocationPolicy: IfNeeded`) of an injected pod:
/// the init containers named by `after` (`ramsecrets.io/after`) that a later
/// webhook (a mesh's) placed after ramsecrets' are moved, in their order, to
/// just before it, so they run first and the app's init containers still run
/// after it with their secrets. `None` when nothing is to move.
fn reorder(pod: &Pod, after: Option<&String>) -> Option<Patch> {
    let names = spec::list("after", after?).ok()?;
    let inits = pod.spec.as_ref()?.init_containers.as_deref()?;
    let mut ours = inits
        .iter()
        .position(|c| c.name == SIDECAR || c.name == INIT)?;
    let mut moves = Vec::new();
    for (i, c) in inits.iter().enumerate().skip(ours + 1) {
        if names.contains(&c.name) {
            // Moving i to ours shifts only what lies between them: the
            // indices past i are still those of `inits`.
            moves.push(
                json!({ "op": "move", "from": format!("/spec/initContainers/{i}"),
                               "path": format!("/spec/initContainers/{ours}") }),
            );
            ours += 1;
        }
    }
    match moves.is_empty() {
        true => None,
        false => serde_json::from_value(Value::Array(moves)).ok(),
    }
}

/// JSONPatch `add` operations.
#[derive(Default)]
struct Adds(Vec<Value>);

impl Adds {
    fn add(&mut self, path: String, value: Value) {
        self.0
            .push(json!({ "op": "add", "path": path, "value": value }));
    }

    /// Appends `items` to the array at `path` in `raw`, made when absent.
    fn append(&mut self, raw: &Value, path: &str, items: Vec<Value>) {
        match raw.pointer(path).is_some_and(Value::is_array) {
            true => items
                .into_iter()
                .for_each(|item| self.add(format!("{path}/-"), item)),
            false => self.add(path.to_owned(), Value::Array(items)),
        }
    }
}

/// Whether `pod` is meant to end: a Job's, or one that is not restarted.
fn runs_to_completion(pod: &Pod) -> bool {
    let owned_by_job = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job");
    let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    owned_by_job || matches!(restart, Some("Never" | "OnFailure"))
}

/// `key` as one JSON Pointer token.
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn inject(
    injector: &Injector,
    request: &PodRequest,
    pod: &Pod,
    raw: &Value,
    ops: &mut Adds,
) -> Result<(), Denial> {
    let settings = &injector.settings;
    let d = &settings.defaults;
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| deny("inject", "the pod has no spec"))?;
    let mount_path = request
        .mount_path
        .clone()
        .unwrap_or_else(|| d.mount_path.clone());
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    // Every problem of the pod is reported at once.
    let mut problems = Vec::new();
    if request.proxy && fs_group.is_none() {
        problems.push(deny(
            "proxy",
            "the app reads the proxy's token through the pod's fsGroup: set spec.securityContext.fsGroup",
        ));
    }
    if request.mode == Mode::Sidecar && !injector.native_sidecar && runs_to_completion(pod) {
        problems.push(deny(
            "mode",
            "this pod runs to completion (a Job's, or restartPolicy Never/OnFailure), and before Kubernetes 1.29 the sidecar would keep it running for ever: set ramsecrets.io/mode: init-only",
        ));
    }
    // Files are readable by the app through the pod's fsGroup when it has one.
    let file_mode = if fs_group.is_some() { "0440" } else { "0444" };

    for v in spec.volumes.iter().flatten() {
        if [SECRETS, STATE, TOKEN, CONFIG].contains(&v.name.as_str()) {
            problems.push(deny(
                "inject",
                format!("the pod already has a volume named {}", v.name),
            ));
        }
    }
    let init_names: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let app_names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for missing in request.containers.iter().flatten() {
        if !app_names.contains(&missing.as_str()) && !init_names.contains(&missing.as_str()) {
            problems.push(deny(
                "containers",
                format!("the pod has no container `{missing}`"),
            ));
        }
    }
    // A name not there yet (a mesh whose webhook runs after this one) is
    // placed before ramsecrets on the reinvocation ([`reorder`]).
    let position = request
        .after
        .iter()
        .filter_map(|name| init_names.iter().position(|n| n == name))
        .map(|i| i + 1)
        .max()
        .unwrap_or(0);
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if [SIDECAR, INIT].contains(&c.name.as_str()) {
            problems.push(deny(
                "inject",
                format!("the pod already has a container named {}", c.name),
            ));
        }
        let clash = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == mount_path);
        if let Some(m) = clash {
            problems.push(deny(
                "mount-path",
                format!(
                    "container {} already mounts {} at {mount_path}",
                    c.name, m.name
                ),
            ));
        }
    }
    let resources = containers::resources(&d.resources, &request.resources);
    let user = containers::user(d, request, pod);
    let health_port = containers::health_port(d.health_port, request, spec);
    problems.extend(resources.as_ref().err().cloned());
    problems.extend(user.as_ref().err().cloned());
    problems.extend(health_port.as_ref().err().cloned());
    let mut request = request.clone();
    let uid = user.as_ref().ok().and_then(|(uid, _)| *uid);
    let share_processes = onchange::resolve(&mut request, spec, uid, &mut problems);
    let request = &request;
    if let Some(all) = Denial::all(problems) {
        return Err(all);
    }
    let (resources, (uid, gid), health_port) = (resources?, user?, health_port?);

    // The config: from the annotations, or the whole file from a ConfigMap.
    // The containers run only the rendered config they were admitted with.
    let mut annotations = json!({ INJECTED: "true" });
    let mut pin = None;
    let config_volume = match &request.config_map {
        Some(name) => json!({ "name": CONFIG, "configMap": { "name": name } }),
        None => {
            let text = podconfig::render(injector, request, &mount_path, file_mode, health_port)?;
            pin = Some(Pin::of(text.as_bytes()).to_string());
            annotations[RENDERED_CONFIG] = json!(text);
            let mut items = vec![json!({
                "path": "config.yaml",
                "fieldRef": { "fieldPath": format!("metadata.annotations['{RENDERED_CONFIG}']") },
            })];
            for s in &injector.sources {
                if let Some(pem) = s.ca_pem() {
                    let name = s.name();
                    let key = format!("{RENDERED_CA}{name}");
                    items.push(json!({
                        "path": podconfig::ca_file(name),
                        "fieldRef": { "fieldPath": format!("metadata.annotations['{key}']") },
                    }));
                    annotations[key] = json!(pem);
                }
            }
            json!({ "name": CONFIG, "downwardAPI": { "items": items } })
        }
    };
    let uses_token =
        request.config_map.is_some() || request.secrets.iter().any(|s| s.address.needs_token());

    let mut volumes = vec![
        json!({ "name": SECRETS, "emptyDir": { "medium": "Memory", "sizeLimit": d.size_limit } }),
        json!({ "name": STATE, "emptyDir": { "medium": "Memory", "sizeLimit": "1Mi" } }),
        config_volume,
    ];
    if uses_token {
        volumes.push(
            json!({ "name": TOKEN, "projected": { "sources": [ { "serviceAccountToken": {
            "audience": settings.audience, "expirationSeconds": 3600, "path": "token"
        } } ] } }),
        );
    }
    let mut mounts = vec![
        json!({ "name": SECRETS, "mountPath": mount_path }),
        json!({ "name": STATE, "mountPath": STATE_DIR }),
        json!({ "name": CONFIG, "mountPath": CONFIG_DIR, "readOnly": true }),
    ];
    if uses_token {
        mounts.push(json!({ "name": TOKEN, "mountPath": TOKEN_DIR, "readOnly": true }));
    }

    let command = if request.proxy { "proxy" } else { "run" };
    let container = |name: &str, verb: &str| {
        let mut args = vec![json!(verb), json!("--config"), json!(CONFIG_FILE)];
        if let Some(pin) = &pin {
            args.extend([json!("--config-sha256"), json!(pin)]);
        }
        json!({
            "name": name,
            "image": settings.image,
            "args": args,
            "volumeMounts": mounts,
            "resources": resources,
            "securityContext": containers::security_context(uid, gid),
        })
    };
    let probe = json!({
        "httpGet": { "path": "/readyz", "port": health_port },
        "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 120,
    });
    let (injected_init, sidecar) = match (request.mode, injector.native_sidecar) {
        (Mode::InitOnly, _) => (container(INIT, "init"), None),
        (Mode::Sidecar, true) => {
            let mut c = container(SIDECAR, command);
            c["restartPolicy"] = json!("Always");
            c["startupProbe"] = probe;
            (c, None)
        }
        (Mode::Sidecar, false) => {
            let mut c = container(SIDECAR, command);
            c["readinessProbe"] = probe;
            (container(INIT, "init"), Some(c))
        }
    };

    // The app's containers get the secrets, read-only.
    let selected = |name: &str| {
        request
            .containers
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == name))
    };
    // Mounts first, at the indices the pod has before the insertion below.
    let app_mount = json!({ "name": SECRETS, "mountPath": mount_path, "readOnly": true });
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let lists = [
        ("containers", &spec.containers[..], 0),
        ("initContainers", inits, position),
    ];
    for (list, containers, from) in lists {
        for (i, c) in containers.iter().enumerate().skip(from) {
            if selected(&c.name) {
                let path = format!("/spec/{list}/{i}/volumeMounts");
                ops.append(raw, &path, vec![app_mount.clone()]);
            }
        }
    }
    match raw
        .pointer("/spec/initContainers")
        .is_some_and(Value::is_array)
    {
        true => ops.add(format!("/spec/initContainers/{position}"), injected_init),
        false => ops.add("/spec/initContainers".to_owned(), json!([injected_init])),
    }
    if let Some(sidecar) = sidecar {
        ops.append(raw, "/spec/containers", vec![sidecar]);
    }
    ops.append(raw, "/spec/volumes", volumes);
    if share_processes && spec.share_process_namespace != Some(true) {
        ops.add("/spec/shareProcessNamespace".to_owned(), json!(true));
    }
    match raw
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        true => {
            for (k, v) in annotations.as_object().into_iter().flatten() {
                ops.add(format!("/metadata/annotations/{}", token(k)), v.clone());
            }
        }
        false => ops.add("/metadata/annotations".to_owned(), annotations),
    }
    Ok(())
}

#[cfg(test)]
#[path = "mutate_tests.rs"]
pub(crate) mod tests;

//! Annotations → what a pod asks for. Every key under `ramsecrets.io/` must be
//! known and every value well-formed; anything else is a [`Denial`] that names
//! the annotation, so a pod never starts without the secrets it asked for.

use std::collections::BTreeMap;

use super::containers;
use super::onchange::{self, OnChange};
use super::podconfig::OWN_DIR;
use crate::config::inject::Resources;
use crate::source::PodAddress;
pub use crate::source::VaultOverrides;

/// The annotation prefix.
pub const PREFIX: &str = "ramsecrets.io/";
/// Set by the injector on a pod it changed: a pod that carries it is left as it is.
pub const INJECTED: &str = "ramsecrets.io/injected";
/// Set by the injector: the ramsecrets config the injected containers run.
pub const RENDERED_CONFIG: &str = "ramsecrets.io/rendered-config";
/// Set by the injector: `rendered-ca.<source>`, the CA bundle of a Vault source.
pub const RENDERED_CA: &str = "ramsecrets.io/rendered-ca.";

/// Why a pod is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {why}{}", more.iter().map(|d| format!("; {d}")).collect::<String>())]
pub struct Denial {
    /// The annotation (or the pod field) at fault.
    pub key: String,
    /// What is wrong with it.
    pub why: String,
    /// The other problems found in the same pass: a pod hears of them all at once.
    pub more: Vec<Denial>,
}

/// A denial of `key` (without the prefix).
pub fn deny(key: &str, why: impl Into<String>) -> Denial {
    Denial {
        key: format!("{PREFIX}{key}"),
        why: why.into(),
        more: Vec::new(),
    }
}

impl Denial {
    /// One denial that reports every one of `problems`; `None` when there is none.
    pub fn all(problems: Vec<Denial>) -> Option<Denial> {
        let mut problems = problems.into_iter();
        let mut first = problems.next()?;
        first.more.extend(problems);
        Some(first)
    }
}

/// How the pod is injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// A sidecar that keeps the files fresh (a native sidecar where the server has them).
    #[default]
    Sidecar,
    /// One init container: the pod can complete (Jobs, CronJobs).
    InitOnly,
}

/// One `secret.<name>` with its per-secret annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The name after `secret.`.
    pub name: String,
    /// Where it lives.
    pub address: PodAddress,
    /// `file.<name>`.
    pub file: Option<String>,
    /// `format.<name>`.
    pub format: Option<String>,
    /// `key.<name>`.
    pub key: Option<String>,
    /// `template.<name>`.
    pub template: Option<String>,
    /// `mode.<name>`.
    pub mode: Option<String>,
    /// `previous.<name>`.
    pub previous: bool,
    /// `on-change.<name>`: how the app hears of a change.
    pub on_change: Option<OnChange>,
}

/// What an annotated pod asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequest {
    /// Secrets, by name.
    pub secrets: Vec<SecretSpec>,
    /// `role`: the Vault role (default: the source's).
    pub role: Option<String>,
    /// `source`: the source every secret uses.
    pub source: Option<String>,
    /// `mode`.
    pub mode: Mode,
    /// `containers`: the app containers that get the volume (default all).
    pub containers: Option<Vec<String>>,
    /// `mount-path`.
    pub mount_path: Option<String>,
    /// `proxy: "true"`: the sidecar also serves the local proxy.
    pub proxy: bool,
    /// `config-map`: a ConfigMap holding the whole config (`config.yaml`).
    pub config_map: Option<String>,
    /// `after`: init containers (e.g. a mesh's) the sidecar is placed after.
    pub after: Vec<String>,
    /// `run-as-user`: the uid of the injected containers (default: the injector's).
    pub run_as_user: Option<i64>,
    /// `run-as-group`: their gid (default: their uid).
    pub run_as_group: Option<i64>,
    /// Run as the uid of the first app container (vault-k8s'
    /// `agent-run-as-same-user`).
    pub run_as_same_user: bool,
    /// `health-port`: the sidecar's health port (default: the injector's, or
    /// the next one no container declares).
    pub health_port: Option<u16>,
    /// `requests-*` and `limits-*`: quantities that replace the injector's
    /// `defaults.resources` in the injected containers.
    pub resources: Resources,
    /// Translated from vault-k8s annotations ([`super::compat`]): the
    /// kubernetes auth mount, the Vault namespace, whether the sidecar
    /// revokes its leases at shutdown and whether it verifies Vault's
    /// certificate.
    pub vault: VaultOverrides,
}

/// What the annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// No `inject: "true"`: leave the pod alone.
    NotRequested,
    /// Already injected: leave it as it is.
    Injected,
    /// Inject this.
    Inject(Box<PodRequest>),
}

/// Every annotation a pod may set (after the prefix; `NAME` is the secret's name), with
/// what it means: the parser's vocabulary, and the book's annotation reference, which
/// `tests/reference.rs` generates from this table.
pub const ANNOTATIONS: &[(&str, &str)] = &[
    ("inject", "`\"true\"` injects this pod; `\"false\"` or absent leaves it alone"),
    (
        "secret.NAME",
        "one secret: `kv:MOUNT/PATH`, `read:PATH`, `pki:MOUNT/ROLE?common_name=…&ttl=…&alt_names=a,b&ip_sans=…`, `aws:SECRET_ID`, `ssm:NAME` or `ssm-path:PATH`",
    ),
    ("file.NAME", "that secret's `file`, as in `secrets[]`"),
    ("format.NAME", "that secret's `format`, as in `secrets[]`"),
    ("key.NAME", "that secret's `key`, as in `secrets[]`"),
    ("template.NAME", "that secret's `template`, as in `secrets[]`"),
    ("mode.NAME", "that secret's file `mode`, as in `secrets[]`"),
    (
        "previous.NAME",
        "`\"true\"`: (AWS) also write `AWSPREVIOUS` to `<file>.previous`, as `previous: true` in `secrets[]`",
    ),
    (
        "on-change.NAME",
        "how the app hears that the file changed: `http://127.0.0.1:PORT/PATH` (a POST over the pod's loopback), or `signal:HUP:CONTAINER` (the base name of the container's command; `signal:HUP:CONTAINER:PROCESS` names the process), which sets the pod's `shareProcessNamespace: true` and needs ramsecrets to run as the process's uid (`run-as-user`)",
    ),
    ("role", "the Vault role (default: the source's)"),
    (
        "source",
        "the source every secret uses (needed when the injector has several of a kind)",
    ),
    (
        "mode",
        "`sidecar` (default) or `init-only` (Jobs and CronJobs: one init container, so the pod completes; before Kubernetes 1.29 a pod that runs to completion is refused in `sidecar` mode)",
    ),
    (
        "containers",
        "comma-separated app containers (or init containers) that get the files (default: all)",
    ),
    (
        "after",
        "comma-separated init containers (e.g. a mesh's) that run before ramsecrets; one that a later webhook adds is moved before ramsecrets when the API server calls the injector again (`reinvocationPolicy: IfNeeded`, as the chart registers it)",
    ),
    (
        "run-as-user",
        "the uid the injected containers run as (default: the injector's `defaults.run_as_user`, or the platform's when that is null); not 0",
    ),
    (
        "run-as-group",
        "the gid the injected containers run as (default: their uid)",
    ),
    (
        "requests-cpu",
        "the CPU request of the injected containers, a Kubernetes quantity such as `10m` (default: the injector's `defaults.resources`)",
    ),
    (
        "requests-memory",
        "their memory request, e.g. `32Mi` (default: the injector's)",
    ),
    (
        "requests-ephemeral-storage",
        "their ephemeral-storage request, e.g. `1Mi` (default: the injector's, none unless set)",
    ),
    (
        "limits-cpu",
        "their CPU limit, e.g. `500m` (default: the injector's, 250m unless set, so a namespace with a `limits.cpu` quota admits the pod); not below the request",
    ),
    (
        "limits-memory",
        "their memory limit, e.g. `128Mi` (default: the injector's, 64Mi unless set); not below the request",
    ),
    (
        "limits-ephemeral-storage",
        "their ephemeral-storage limit (default: the injector's, none unless set)",
    ),
    (
        "health-port",
        "the port of the sidecar's `/readyz`, `/healthz` and `/metrics` on the pod's IP, which no container of the pod may declare (default: the injector's `defaults.health_port`, or the next port above it that no container declares)",
    ),
    (
        "mount-path",
        "where the app sees the files (default: the injector's `defaults.mount_path`); not `/`, `/etc`, under `/proc`, `/dev` or `/sys`, nor over `/run/ramsecrets`, where ramsecrets mounts its own volumes",
    ),
    (
        "proxy",
        "`\"true\"`: the sidecar also serves the local proxy on 127.0.0.1:2773; its token is `MOUNT/.proxy-token`, which the app reads through the pod's `fsGroup` (required); not with `mode: init-only`",
    ),
    (
        "config-map",
        "take the whole config from this ConfigMap (key `config.yaml`) instead of `secret.*` annotations; it writes to the mount path, keeps state in `/run/ramsecrets/state` and logs in with `/run/ramsecrets/token/token`",
    ),
];

const PER_SECRET: &[&str] = &[
    "file",
    "format",
    "key",
    "template",
    "mode",
    "previous",
    "on-change",
];

/// "a, b, … or z": the annotations [`ANNOTATIONS`] lists.
fn known() -> String {
    let keys: Vec<&str> = ANNOTATIONS.iter().map(|(k, _)| *k).collect();
    match keys.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn boolean(key: &str, v: &str) -> Result<bool, Denial> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(deny(key, format!("`{v}` is not \"true\" or \"false\""))),
    }
}

/// A name as Kubernetes objects and ramsecrets secrets take it.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Reads the `ramsecrets.io/` annotations.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Parsed, Denial> {
    let ours: Vec<(&str, &str)> = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.as_str())))
        .collect();
    if ours.is_empty() {
        return Ok(Parsed::NotRequested);
    }
    if annotations.contains_key(INJECTED) {
        return Ok(Parsed::Injected);
    }
    let get = |k: &str| ours.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    match get("inject") {
        None => {
            return Err(deny(
                "inject",
                "missing, while other ramsecrets.io/ annotations are set: set it to \"true\" (or remove them)",
            ))
        }
        Some(v) if !boolean("inject", v)? => return Ok(Parsed::NotRequested),
        Some(_) => {}
    }
    let mut request = PodRequest::default();
    let mut per_secret: Vec<(&str, &str, &str)> = Vec::new();
    let mut problems = Vec::new();
    for &(key, value) in &ours {
        let mut read = || -> Result<(), Denial> {
            let non_empty = |v: &str| match v.trim().is_empty() {
                true => Err(deny(key, "must not be empty")),
                false => Ok(v.to_owned()),
            };
            match key {
                "inject" => {}
                "role" => request.role = Some(non_empty(value)?),
                "source" => request.source = Some(non_empty(value)?),
                "mode" => {
                    request.mode = match value {
                        "sidecar" => Mode::Sidecar,
                        "init-only" => Mode::InitOnly,
                        _ => {
                            return Err(deny(
                                key,
                                format!("`{value}` is not `sidecar` or `init-only`"),
                            ))
                        }
                    }
                }
                "containers" => request.containers = Some(list(key, value)?),
                "after" => request.after = list(key, value)?,
                "run-as-user" => request.run_as_user = Some(id(key, value, 1)?),
                "run-as-group" => request.run_as_group = Some(id(key, value, 0)?),
                "health-port" => {
                    let port = value.parse::<u16>().ok().filter(|p| *p > 0);
                    let why = format!("`{value}` is not a port from 1 to 65535");
                    request.health_port = Some(port.ok_or_else(|| deny(key, why))?);
                }
                "mount-path" => {
                    let p = non_empty(value)?;
                    if !p.starts_with('/') || p.split('/').any(|s| s == "..") || p.contains(':') {
                        return Err(deny(
                            key,
                            format!("`{p}` is not an absolute path without `..`"),
                        ));
                    }
                    let p = p.trim_end_matches('/');
                    if let Some(why) = reserved(p) {
                        return Err(deny(key, format!("`{value}` {why}")));
                    }
                    request.mount_path = Some(p.to_owned());
                }
                "proxy" => request.proxy = boolean(key, value)?,
                "config-map" => {
                    if !is_name(value) {
                        return Err(deny(key, format!("`{value}` is not a ConfigMap name")));
                    }
                    request.config_map = Some(value.to_owned());
                }
                _ if key == "injected" || key.starts_with("rendered-") => {
                    return Err(deny(key, "is set by the injector, not by pods"));
                }
                _ => match containers::read(key, value, &mut request.resources) {
                    Some(read) => read?,
                    None => match key.split_once('.') {
                        Some(("secret", name)) => {
                            if !is_name(name) {
                                return Err(deny(key, format!("`{name}` is not a secret name (lowercase letters, digits, `-`, `_`, `.`)")));
                            }
                            request.secrets.push(SecretSpec {
                                name: name.to_owned(),
                                address: address(key, value)?,
                                file: None,
                                format: None,
                                key: None,
                                template: None,
                                mode: None,
                                previous: false,
                                on_change: None,
                            });
                        }
                        Some((field, name)) if PER_SECRET.contains(&field) => {
                            per_secret.push((field, name, value))
                        }
                        _ => return Err(deny(key, format!("unknown: expected {}", known()))),
                    },
                },
            }
            Ok(())
        };
        if let Err(d) = read() {
            problems.push(d);
        }
    }
    for (field, name, value) in per_secret {
        let key = format!("{field}.{name}");
        let Some(s) = request.secrets.iter_mut().find(|s| s.name == name) else {
            problems.push(deny(
                &key,
                format!("there is no ramsecrets.io/secret.{name}"),
            ));
            continue;
        };
        let value = Some(value.to_owned());
        match field {
            "file" => s.file = value,
            "format" => s.format = value,
            "key" => s.key = value,
            "template" => s.template = value,
            "mode" => s.mode = value,
            "on-change" => match onchange::parse(&key, value.as_deref().unwrap_or_default()) {
                Ok(a) => s.on_change = Some(a),
                Err(d) => problems.push(d),
            },
            _ => match boolean(&key, value.as_deref().unwrap_or_default()) {
                Ok(b) => s.previous = b,
                Err(d) => problems.push(d),
            },
        }
    }
    match (&request.config_map, request.secrets.is_empty()) {
        (Some(_), false) => problems.push(deny(
            "config-map",
            "takes the whole config, so it cannot be combined with secret.NAME annotations",
        )),
        (None, true) if problems.is_empty() => problems.push(deny(
            "inject",
            "no secrets: add ramsecrets.io/secret.NAME annotations or ramsecrets.io/config-map",
        )),
        _ => {}
    }
    if request.proxy && request.mode == Mode::InitOnly {
        problems.push(deny(
            "proxy",
            "\"true\" needs the sidecar, which ramsecrets.io/mode: init-only does not run",
        ));
    }
    match Denial::all(problems) {
        Some(all) => Err(all),
        None => Ok(Parsed::Inject(Box::new(request))),
    }
}

/// Why the secrets cannot be mounted at `path` (without a trailing `/`): the
/// root or `/etc` would hide the container's own files, the kernel's
/// filesystems cannot be covered, and ramsecrets' own volumes live under
/// [`OWN_DIR`].
fn reserved(path: &str) -> Option<&'static str> {
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    if path.is_empty() || path == "/etc" {
        Some("would hide the container's own files")
    } else if ["/proc", "/dev", "/sys"].into_iter().any(under) {
        Some("is a kernel filesystem")
    } else if under(OWN_DIR) || OWN_DIR.starts_with(&format!("{path}/")) {
        Some("is where ramsecrets mounts its own volumes (/run/ramsecrets)")
    } else {
        None
    }
}

/// A uid or gid of at least `min` (the containers run as non-root: a uid is not 0).
pub(super) fn id(key: &str, value: &str, min: i64) -> Result<i64, Denial> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=i64::from(u32::MAX)).contains(n))
        .ok_or_else(|| {
            deny(
                key,
                format!("`{value}` is not a number from {min} to {}", u32::MAX),
            )
        })
}

/// A comma-separated list of names.
pub(super) fn list(key: &str, value: &str) -> Result<Vec<String>, Denial> {
    let names: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    match names.iter().find(|n| n.is_empty()) {
        Some(_) => Err(deny(
            key,
            format!("`{value}` is not a comma-separated list of container names"),
        )),
        None => Ok(names),
    }
}

/// `kv:…`, `read:…`, `pki:…`, `aws:…`.
fn address(key: &str, value: &str) -> Result<PodAddress, Denial> {
    PodAddress::parse(value).map_err(|why| deny(key, format!("`{value}`: {why}")))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;

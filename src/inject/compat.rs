//! `inject.compat: vault-k8s`: pods annotated for HashiCorp's vault-k8s
//! injector (`vault.hashicorp.com/`) read as the [`PodRequest`] a
//! `ramsecrets.io/` pod would make, with vault-k8s's meaning: each
//! `agent-inject-secret-NAME` is a Vault path rendered by its agent template
//! (Vault Agent's Go template; vault-k8s's default when none is given) into `/vault/secrets/NAME`.
//! [`ANNOTATIONS`] says what becomes of every vault-k8s annotation; one that
//! ramsecrets does not do, or a template outside the subset, refuses the pod
//! naming each annotation at fault.

use std::collections::BTreeMap;

use super::spec::{id, is_name, Denial, Mode, Parsed, PodRequest, SecretSpec, VaultOverrides};
use crate::render::agent_template;
use crate::source::logical_read;

/// The annotation prefix of vault-k8s.
pub const PREFIX: &str = "vault.hashicorp.com/";
/// Where vault-k8s writes secrets, and so the app reads them.
pub const MOUNT_PATH: &str = "/vault/secrets";

/// What ramsecrets does with one vault-k8s annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Done, with vault-k8s's meaning.
    Yes,
    /// Accepted and without effect (said why).
    NoOp,
    /// Refused: the pod is denied, naming it.
    No,
    /// Done where the injector's settings allow it, else refused.
    IfAllowed,
}

/// Every vault-k8s annotation (after the prefix; `NAME` is the secret's
/// name), what ramsecrets does with it, and how: the parser's vocabulary and
/// the table of the book's "Switching from vault-k8s".
pub const ANNOTATIONS: &[(&str, Support, &str)] = &[
    ("agent-inject", Support::Yes, "`\"true\"` injects the pod (ramsecrets' native sidecar)"),
    ("agent-inject-status", Support::Yes, "`injected` (set by vault-k8s): the pod is left alone"),
    ("role", Support::Yes, "the Vault role of the kubernetes login (default: the source's)"),
    ("auth-path", Support::Yes, "the kubernetes auth mount, e.g. `auth/kubernetes` (default: the source's)"),
    ("namespace", Support::Yes, "the Vault namespace (default: the source's)"),
    ("agent-inject-secret-NAME", Support::Yes, "a Vault path read as Vault Agent reads it (KV v2 `secret/data/x`, or `secret/x` on a KV v2 mount, found as `vault kv` does; `database/creds/app`); written to `/vault/secrets/NAME`"),
    ("agent-inject-template-file-NAME", Support::No, "a template from a file of the agent's image: put it in `agent-inject-template-NAME`"),
    ("agent-inject-template-NAME", Support::Yes, "the agent template of NAME (Vault Agent's Go template, the consul-template subset; `format: go-template`); default: vault-k8s's, `key: value` lines of `.Data`"),
    ("agent-inject-default-template", Support::Yes, "`map` (default) or `json` (`{{ .Data | toJSON }}`)"),
    ("agent-inject-file-NAME", Support::Yes, "the file of NAME under `/vault/secrets` (a leading `/` is dropped, as vault-k8s joins it)"),
    ("agent-inject-perms-NAME", Support::Yes, "the file mode of NAME, octal"),
    ("agent-pre-populate-only", Support::Yes, "`\"true\"`: one init container, no sidecar (Jobs)"),
    ("agent-pre-populate", Support::NoOp, "the native sidecar always renders before the app starts"),
    ("agent-init-first", Support::NoOp, "ramsecrets' container always runs before the app's init containers"),
    ("agent-inject-containers", Support::Yes, "comma-separated containers that get `/vault/secrets` (default: all)"),
    ("agent-revoke-on-shutdown", Support::Yes, "`\"true\"`: the sidecar revokes its leases when the pod stops"),
    ("agent-cache-enable", Support::NoOp, "ramsecrets keeps no Vault Agent cache; the app reads files"),
    ("tls-skip-verify", Support::IfAllowed, "`\"true\"`: the pod's sidecar does not verify Vault's certificate (and warns so at start), only if the injector's `inject.compat_allow_tls_skip_verify` is true; else the pod is refused. Better: give the injector's source a `ca_cert`"),
    ("agent-inject-command-NAME", Support::No, "the ramsecrets image has no shell to run it in: annotate the pod for ramsecrets with `ramsecrets.io/on-change.NAME`, a POST over the pod's loopback or a signal to a container's process"),
    ("agent-limits-cpu", Support::Yes, "the CPU limit of ramsecrets' containers, as `ramsecrets.io/limits-cpu` (empty: the injector's default)"),
    ("agent-limits-mem", Support::Yes, "their memory limit, as `ramsecrets.io/limits-memory` (empty: the injector's default)"),
    ("agent-limits-ephemeral", Support::Yes, "their ephemeral-storage limit, as `ramsecrets.io/limits-ephemeral-storage` (empty: the injector's default)"),
    ("agent-requests-cpu", Support::Yes, "their CPU request, as `ramsecrets.io/requests-cpu` (empty: the injector's default)"),
    ("agent-requests-mem", Support::Yes, "their memory request, as `ramsecrets.io/requests-memory` (empty: the injector's default)"),
    ("agent-requests-ephemeral", Support::Yes, "their ephemeral-storage request, as `ramsecrets.io/requests-ephemeral-storage` (empty: the injector's default)"),
    ("agent-run-as-user", Support::Yes, "the uid of ramsecrets' containers, as `ramsecrets.io/run-as-user` (not 0)"),
    ("agent-run-as-group", Support::Yes, "their gid, as `ramsecrets.io/run-as-group`"),
    ("agent-run-as-same-user", Support::Yes, "`\"true\"`: they run as the uid of the first app container (its `securityContext.runAsUser`, else the pod's; not root)"),
    ("agent-inject-token", Support::No, "the Vault token never reaches the app's volume"),
    ("agent-configmap", Support::No, "a Vault Agent config file: use `ramsecrets.io/config-map` with a ramsecrets config"),
    ("agent-extra-secret", Support::No, "ramsecrets' CA comes from the injector's source"),
    ("agent-copy-volume-mounts", Support::No, "ramsecrets' containers mount only their own volumes"),
    ("agent-json-patch", Support::No, "the injected containers are fixed by the injector"),
    ("agent-init-json-patch", Support::No, "the injected containers are fixed by the injector"),
    ("agent-image", Support::No, "the image is the injector's `image`"),
    ("agent-set-security-context", Support::No, "the injected containers always run restricted"),
    ("agent-share-process-namespace", Support::No, "ramsecrets needs no shared process namespace"),
    ("agent-service-account-token-volume-name", Support::No, "ramsecrets mounts its own projected token"),
    ("error-on-missing-key", Support::No, "not supported: a missing key renders `<no value>`, as vault-k8s's default"),
    ("preserve-secret-case", Support::No, "secret names are lowercase"),
    ("ca-cert", Support::No, "the CA is the injector's source's `ca_cert`"),
    ("ca-key", Support::No, "the CA is the injector's source's `ca_cert`"),
    ("client-cert", Support::No, "TLS client certificates are not supported"),
    ("client-key", Support::No, "TLS client certificates are not supported"),
    ("tls-secret", Support::No, "the CA is the injector's source's `ca_cert`"),
    ("tls-server-name", Support::No, "the server name is the source's address"),
    ("service", Support::No, "Vault's address is the injector's source's"),
    ("proxy-address", Support::No, "not supported"),
    ("auth-type", Support::No, "pods log in with kubernetes auth"),
    ("auth-config-*", Support::No, "pods log in with kubernetes auth"),
    ("agent-cache-*", Support::No, "ramsecrets keeps no Vault Agent cache"),
    ("agent-telemetry-*", Support::No, "the sidecar's metrics are on its health port"),
    ("template-config-*", Support::No, "ramsecrets' refresh interval is the injector's `defaults.refresh`"),
    ("agent-*", Support::No, "a Vault Agent setting that has no counterpart"),
];

/// vault-k8s' resource annotations and the `ramsecrets.io/` ones they become.
const RESOURCES: &[(&str, &str)] = &[
    ("agent-limits-cpu", "limits-cpu"),
    ("agent-limits-mem", "limits-memory"),
    ("agent-limits-ephemeral", "limits-ephemeral-storage"),
    ("agent-requests-cpu", "requests-cpu"),
    ("agent-requests-mem", "requests-memory"),
    ("agent-requests-ephemeral", "requests-ephemeral-storage"),
];

/// What `key` (after the prefix) is in [`ANNOTATIONS`]: its row, matching
/// `NAME` and `*` patterns.
fn row(key: &str) -> Option<&'static (&'static str, Support, &'static str)> {
    ANNOTATIONS.iter().find(|(pattern, _, _)| {
        if let Some(prefix) = pattern.strip_suffix("NAME") {
            key.strip_prefix(prefix)
                .is_some_and(|name| !name.is_empty())
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            key.starts_with(prefix)
        } else {
            key == *pattern
        }
    })
}

fn deny(key: &str, why: impl Into<String>) -> Denial {
    Denial {
        key: format!("{PREFIX}{key}"),
        why: why.into(),
        more: Vec::new(),
    }
}

fn boolean(key: &str, v: &str) -> Result<bool, Denial> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "0" => Ok(false),
        _ => Err(deny(key, format!("`{v}` is not \"true\" or \"false\""))),
    }
}

/// Reads the `vault.hashicorp.com/` annotations of a pod (whose
/// `ramsecrets.io/` annotations are none); `tls-skip-verify` is admitted
/// only with `allow_tls_skip_verify` (the injector's
/// `inject.compat_allow_tls_skip_verify`).
pub fn parse(
    annotations: &BTreeMap<String, String>,
    allow_tls_skip_verify: bool,
) -> Result<Parsed, Denial> {
    let ours: BTreeMap<&str, &str> = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.as_str())))
        .collect();
    match ours.get("agent-inject") {
        None => return Ok(Parsed::NotRequested),
        Some(v) if !boolean("agent-inject", v)? => return Ok(Parsed::NotRequested),
        Some(_) => {}
    }
    if ours.get("agent-inject-status") == Some(&"injected") {
        return Ok(Parsed::NotRequested);
    }
    let refused: Vec<Denial> = ours
        .keys()
        .filter_map(|k| match row(k) {
            Some((_, Support::No, why)) => Some(deny(k, format!("is not supported: {why}"))),
            None => Some(deny(k, "is not a vault-k8s annotation")),
            _ => None,
        })
        .collect();
    if let Some(first) = refused.first() {
        return Err(Denial {
            key: refused
                .iter()
                .map(|d| d.key.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            why: match refused.len() {
                1 => first.why.clone(),
                _ => refused
                    .iter()
                    .map(|d| format!("{} {}", d.key, d.why))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            more: Vec::new(),
        });
    }
    let default_json = match ours.get("agent-inject-default-template").copied() {
        None | Some("map") => false,
        Some("json") => true,
        Some(v) => {
            return Err(deny(
                "agent-inject-default-template",
                format!("`{v}` is not `map` or `json`"),
            ))
        }
    };
    let mut request = PodRequest {
        role: ours.get("role").map(|r| r.to_string()),
        mount_path: Some(MOUNT_PATH.into()),
        vault: VaultOverrides {
            auth_mount: ours
                .get("auth-path")
                .map(|p| p.trim_matches('/').trim_start_matches("auth/").to_owned()),
            namespace: ours.get("namespace").map(|n| n.to_string()),
            revoke_on_exit: match ours.get("agent-revoke-on-shutdown") {
                Some(v) => boolean("agent-revoke-on-shutdown", v)?,
                None => false,
            },
            tls_skip_verify: skip_verify(&ours, allow_tls_skip_verify)?,
        },
        ..PodRequest::default()
    };
    containers(&ours, &mut request)?;
    if let Some(v) = ours.get("agent-pre-populate-only") {
        if boolean("agent-pre-populate-only", v)? {
            request.mode = Mode::InitOnly;
        }
    }
    if let Some(v) = ours.get("agent-inject-containers") {
        let names: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            return Err(deny(
                "agent-inject-containers",
                format!("`{v}` is not a comma-separated list of container names"),
            ));
        }
        request.containers = Some(names);
    }
    for (key, path) in &ours {
        let Some(name) = key.strip_prefix("agent-inject-secret-") else {
            continue;
        };
        if !is_name(name) {
            return Err(deny(
                key,
                format!("`{name}` is not a secret name (lowercase letters, digits, `-`, `_`, `.`)"),
            ));
        }
        let path = path.trim().trim_matches('/');
        if path.is_empty() {
            return Err(deny(key, "must be a Vault path"));
        }
        let template_key = format!("agent-inject-template-{name}");
        let template = match ours.get(template_key.as_str()) {
            Some(t) => t.to_string(),
            None if default_json => {
                format!("{{{{ with secret \"{path}\" }}}}{{{{ .Data | toJSON }}}}\n{{{{ end }}}}")
            }
            None => agent_template::default_template(path),
        };
        if let Err(e) = agent_template::check(&template, path) {
            return Err(deny(&template_key, e.to_string()));
        }
        let file_key = format!("agent-inject-file-{name}");
        let file = ours
            .get(file_key.as_str())
            .map(|f| f.trim_start_matches('/').to_owned());
        let mode_key = format!("agent-inject-perms-{name}");
        let mode = ours.get(mode_key.as_str()).map(|m| m.to_string());
        if let Some(m) = &mode {
            if u32::from_str_radix(m, 8).map_or(true, |m| m > 0o777) {
                return Err(deny(&mode_key, format!("`{m}` is not an octal file mode")));
            }
        }
        request.secrets.push(SecretSpec {
            name: name.to_owned(),
            address: logical_read(path),
            file,
            format: Some("go-template".into()),
            key: None,
            template: Some(template),
            mode,
            previous: false,
            on_change: None,
        });
    }
    for key in ours.keys() {
        for field in ["template", "file", "perms"] {
            let Some(name) = key.strip_prefix(&format!("agent-inject-{field}-")) else {
                continue;
            };
            if !request.secrets.iter().any(|s| s.name == name) {
                return Err(deny(
                    key,
                    format!("there is no {PREFIX}agent-inject-secret-{name}"),
                ));
            }
        }
    }
    if request.secrets.is_empty() {
        return Err(deny(
            "agent-inject",
            "no secrets: add vault.hashicorp.com/agent-inject-secret-NAME annotations",
        ));
    }
    Ok(Parsed::Inject(Box::new(request)))
}

/// Whether the pod asks not to verify Vault's certificate, refused unless
/// the injector allows it.
fn skip_verify(ours: &BTreeMap<&str, &str>, allowed: bool) -> Result<bool, Denial> {
    const KEY: &str = "tls-skip-verify";
    let Some(v) = ours.get(KEY) else {
        return Ok(false);
    };
    match boolean(KEY, v)? {
        true if !allowed => Err(deny(
            KEY,
            "is refused by this injector: its sidecar would not verify Vault's certificate. The injector's inject.compat_allow_tls_skip_verify: true allows it; better, give the injector's source a ca_cert and drop the annotation",
        )),
        skip => Ok(skip),
    }
}

/// The resources and the user of ramsecrets' containers, every bad
/// annotation reported at once.
fn containers(ours: &BTreeMap<&str, &str>, request: &mut PodRequest) -> Result<(), Denial> {
    let mut problems = Vec::new();
    for (theirs, key) in RESOURCES {
        let Some(v) = ours.get(theirs).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(Err(d)) = super::containers::read(key, v, &mut request.resources) {
            problems.push(deny(theirs, d.why));
        }
    }
    for (theirs, min, into) in [
        ("agent-run-as-user", 1, &mut request.run_as_user),
        ("agent-run-as-group", 0, &mut request.run_as_group),
    ] {
        if let Some(v) = ours.get(theirs) {
            match id(theirs, v.trim(), min) {
                Ok(n) => *into = Some(n),
                Err(d) => problems.push(deny(theirs, d.why)),
            }
        }
    }
    if let Some(v) = ours.get("agent-run-as-same-user") {
        match boolean("agent-run-as-same-user", v) {
            Ok(same) => request.run_as_same_user = same,
            Err(d) => problems.push(d),
        }
    }
    Denial::all(problems).map_or(Ok(()), Err)
}

/// A denial about a `ramsecrets.io/` annotation made from this pod's
/// vault-k8s ones, blamed on the vault-k8s annotation it came from.
pub fn blame(d: Denial) -> Denial {
    let more = d.more.into_iter().map(blame).collect();
    let Some(key) = d.key.strip_prefix(super::spec::PREFIX) else {
        return Denial { more, ..d };
    };
    let theirs = match key.split_once('.') {
        Some(("secret" | "format", name)) => format!("agent-inject-secret-{name}"),
        Some(("template", name)) => format!("agent-inject-template-{name}"),
        Some(("file", name)) => format!("agent-inject-file-{name}"),
        Some(("mode", name)) => format!("agent-inject-perms-{name}"),
        _ => match key {
            "containers" => "agent-inject-containers".into(),
            "role" => "role".into(),
            "run-as-user" | "run-as-group" | "run-as-same-user" => format!("agent-{key}"),
            _ => match RESOURCES.iter().find(|(_, ours)| *ours == key) {
                Some((theirs, _)) => theirs.to_string(),
                None => "agent-inject".into(),
            },
        },
    };
    Denial {
        more,
        ..deny(&theirs, d.why)
    }
}

#[cfg(test)]
#[path = "compat_tests.rs"]
mod tests;

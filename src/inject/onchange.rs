//! `ramsecrets.io/on-change.NAME`: how the sidecar tells the app in its pod
//! that a secret's file changed, as vault-k8s users do with
//! `agent-inject-command`: a POST over the pod's loopback
//! (`http://127.0.0.1:PORT/PATH`), or a signal to a container's process
//! (`signal:HUP:CONTAINER`, or `signal:HUP:CONTAINER:PROCESS`), which needs
//! the pod to share its process namespace and ramsecrets to run as the
//! process's uid.

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{json, Value};

use super::spec::{deny, Denial, PodRequest};

/// One `on-change.NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnChange {
    /// POST to this URL on the pod's loopback.
    Http(String),
    /// A signal to a process of a container.
    Signal {
        /// Its name, e.g. `HUP`.
        signal: String,
        /// The container.
        container: String,
        /// Its process name as `/proc/PID/comm` shows it: given, or found
        /// by [`resolve`] from the container's command.
        process: Option<String>,
    },
}

/// The longest process name the kernel keeps in `/proc/PID/comm`.
const COMM_LEN: usize = 15;

/// Reads the value of annotation `key`.
pub fn parse(key: &str, value: &str) -> Result<OnChange, Denial> {
    if let Some(rest) = value.strip_prefix("signal:") {
        let parts: Vec<&str> = rest.split(':').collect();
        return match parts[..] {
            [signal, container] | [signal, container, _]
                if !signal.is_empty() && !container.is_empty() =>
            {
                Ok(OnChange::Signal {
                    signal: signal.to_owned(),
                    container: container.to_owned(),
                    process: parts.get(2).filter(|p| !p.is_empty()).map(|p| comm(p)),
                })
            }
            _ => Err(deny(
                key,
                format!(
                    "`{value}` is not signal:SIGNAL:CONTAINER or signal:SIGNAL:CONTAINER:PROCESS"
                ),
            )),
        };
    }
    let url = reqwest::Url::parse(value).ok().filter(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
    });
    match url {
        Some(_) => Ok(OnChange::Http(value.to_owned())),
        None => Err(deny(
            key,
            format!("`{value}` is not an http:// URL on the pod's loopback (127.0.0.1, [::1] or localhost), nor signal:SIGNAL:CONTAINER"),
        )),
    }
}

/// `name` as `/proc/PID/comm` shows it: its first 15 bytes.
fn comm(name: &str) -> String {
    let mut end = name.len().min(COMM_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Finds the process of each signal's container (the base name of its
/// command unless given) and checks ramsecrets (uid `uid`) may signal it;
/// returns whether the pod must share its process namespace. Every problem
/// goes to `problems`.
pub fn resolve(
    request: &mut PodRequest,
    spec: &PodSpec,
    uid: Option<i64>,
    problems: &mut Vec<Denial>,
) -> bool {
    let mut signals = false;
    let pod_uid = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    for s in &mut request.secrets {
        let Some(OnChange::Signal {
            container, process, ..
        }) = &mut s.on_change
        else {
            continue;
        };
        signals = true;
        let key = format!("on-change.{}", s.name);
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        let Some(c) = containers.into_iter().find(|c| c.name == *container) else {
            problems.push(deny(
                &key,
                format!("the pod has no container `{container}`"),
            ));
            continue;
        };
        if process.is_none() {
            let command = c.command.iter().flatten().next();
            match command.and_then(|c| c.rsplit('/').next()).filter(|n| !n.is_empty()) {
                Some(name) => *process = Some(comm(name)),
                None => problems.push(deny(
                    &key,
                    format!("container {container} sets no command, so its process name is not known here: name it, signal:SIGNAL:{container}:PROCESS"),
                )),
            }
        }
        let theirs = c.security_context.as_ref().and_then(|s| s.run_as_user);
        if let (Some(ours), Some(theirs)) = (uid, theirs.or(pod_uid)) {
            if ours != theirs {
                problems.push(deny(
                    &key,
                    format!("container {container} runs as uid {theirs} and ramsecrets as {ours}, which may not signal it: set ramsecrets.io/run-as-user: \"{theirs}\""),
                ));
            }
        }
    }
    if signals && spec.share_process_namespace == Some(false) {
        problems.push(deny(
            "inject",
            "a signal on-change.NAME needs the pod to share its process namespace, which it sets to false",
        ));
    }
    signals
}

/// The `on_change` list of the secret's config.
pub fn config(on_change: &OnChange) -> Value {
    match on_change {
        OnChange::Http(url) => json!([{ "http": { "url": url } }]),
        OnChange::Signal {
            signal, process, ..
        } => json!([{ "signal": { "process": process, "signal": signal } }]),
    }
}

#[cfg(test)]
#[path = "onchange_tests.rs"]
mod tests;

//! The ramsecrets config an injected pod runs, made from its annotations and
//! the injector's sources, and checked by the same validation as any config
//! file: a problem is reported against the annotation it came from. The
//! config holds addresses, roles and file names, never a credential; it
//! travels in the pod's `ramsecrets.io/rendered-config` annotation, which a
//! downward-API volume shows to the injected containers as a file.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::onchange;
use super::spec::{deny, Denial, PodRequest};
use super::Injector;
use crate::config::Config;
use crate::source::PodAsks;

/// The directory of ramsecrets' own volumes in its containers (config,
/// token, state), which the secrets may not be mounted over.
pub const OWN_DIR: &str = "/run/ramsecrets";
/// Where the injected containers see their config.
pub const CONFIG_DIR: &str = "/run/ramsecrets/config";
/// The config file in it.
pub const CONFIG_FILE: &str = "/run/ramsecrets/config/config.yaml";
/// Where the projected service-account token for Vault is mounted.
pub const TOKEN_DIR: &str = "/run/ramsecrets/token";
/// The hand-off state of init for the sidecar.
pub const STATE_DIR: &str = "/run/ramsecrets/state";

/// The CA file of source `name` in the config volume.
pub fn ca_file(name: &str) -> String {
    format!("ca-{name}.pem")
}

/// The source of `kind` ([`crate::source::PodAddress::kind`]) a secret
/// uses, by index into `injector.sources`.
fn pick_source(injector: &Injector, request: &PodRequest, kind: &str) -> Result<usize, Denial> {
    if let Some(name) = &request.source {
        let (i, s) = injector
            .sources
            .iter()
            .enumerate()
            .find(|(_, s)| s.name() == name)
            .ok_or_else(|| deny("source", format!("the injector has no source `{name}`")))?;
        return match s.kind() == kind {
            true => Ok(i),
            false => Err(deny(
                "source",
                format!("`{name}` is not a {kind} source, which a secret here needs"),
            )),
        };
    }
    let mut matching = injector
        .sources
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind() == kind);
    match (matching.next(), matching.next()) {
        (Some((i, _)), None) => Ok(i),
        (None, _) => Err(deny(
            "inject",
            format!("a secret needs a {kind} source and the injector has none"),
        )),
        (Some(_), Some(_)) => Err(deny(
            "source",
            format!("missing: the injector has several {kind} sources; name one"),
        )),
    }
}

/// The config YAML of an annotated pod (`mount_path`: where ramsecrets writes;
/// `file_mode`: the default file mode; `health_port`: where the kubelet
/// probes it).
pub fn render(
    injector: &Injector,
    request: &PodRequest,
    mount_path: &str,
    file_mode: &str,
    health_port: u16,
) -> Result<String, Denial> {
    let defaults = &injector.settings.defaults;
    let mut used: Vec<usize> = Vec::new();
    let mut secrets = Vec::new();
    for s in &request.secrets {
        let source = pick_source(injector, request, s.address.kind())?;
        if !used.contains(&source) {
            used.push(source);
        }
        let mut out = Map::new();
        out.insert("name".into(), json!(s.name));
        out.insert("source".into(), json!(injector.sources[source].name()));
        let (key, address) = s.address.config();
        out.insert(key.into(), address.clone());
        let optional = [
            ("file", &s.file),
            ("format", &s.format),
            ("key", &s.key),
            ("template", &s.template),
            ("mode", &s.mode),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                out.insert(k.into(), json!(v));
            }
        }
        if s.previous {
            out.insert("previous".into(), json!(true));
        }
        if let Some(a) = &s.on_change {
            out.insert("on_change".into(), onchange::config(a));
        }
        secrets.push(Value::Object(out));
    }
    used.sort_unstable();
    let token_file = format!("{TOKEN_DIR}/token");
    let sources: Vec<Value> = used
        .iter()
        .map(|&i| {
            let source = &injector.sources[i];
            source.config(&PodAsks {
                role: request.role.as_deref(),
                vault: &request.vault,
                token_file: &token_file,
                ca_file: &format!("{CONFIG_DIR}/{}", ca_file(source.name())),
            })
        })
        .collect();
    let mut config = json!({
        "sources": sources,
        // A directory ramsecrets makes (0700, its own uid) inside the volume,
        // whose root the kubelet leaves world-writable.
        "output": { "dir": mount_path, "mode": file_mode, "state_dir": format!("{STATE_DIR}/hand-off") },
        "refresh": { "interval": crate::config::duration::format(defaults.refresh) },
        "health": { "listen": format!("0.0.0.0:{health_port}") },
        "secrets": secrets,
    });
    if request.proxy {
        config["proxy"] = json!({ "token_file": format!("{mount_path}/.proxy-token") });
    }
    let text = crate::config::yaml::text(&config)
        .map_err(|e| deny("inject", format!("cannot write the config: {e}")))?;
    check(&text, request)?;
    Ok(text)
}

/// Validates `text` as ramsecrets would at start in the pod; every problem
/// is reported against the annotation that caused it.
fn check(text: &str, request: &PodRequest) -> Result<(), Denial> {
    let Err(problems) = Config::parse(text, Path::new("/")) else {
        return Ok(());
    };
    let blamed = problems.iter().map(|p| {
        // `secrets[i].field…` → `field.NAME` (or `secret.NAME` for the address).
        let key = p
            .path
            .strip_prefix("secrets[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, field)| {
                let name = &request.secrets.get(i.parse::<usize>().ok()?)?.name;
                let field = field.trim_start_matches('.');
                let field = field.split(['.', '[']).next().unwrap_or_default();
                Some(match field {
                    "file" | "format" | "key" | "template" | "mode" | "previous" => {
                        format!("{field}.{name}")
                    }
                    "on_change" => format!("on-change.{name}"),
                    _ => format!("secret.{name}"),
                })
            })
            .unwrap_or_else(|| "inject".to_owned());
        deny(&key, p.message.clone())
    });
    Denial::all(blamed.collect()).map_or(Ok(()), Err)
}

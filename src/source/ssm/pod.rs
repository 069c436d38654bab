//! How the injector names Parameter Store: a pod's annotation gives
//! `ssm:NAME` (one parameter, by name or ARN) or `ssm-path:PATH` (every
//! parameter under the path) ([`POD`]), and injected pods read with their own
//! AWS identity, in the source's region and at its endpoint, as Secrets
//! Manager's do.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::address::bad_name;
use super::SsmSettings;
use crate::source::pod::{Pod, PodSettings, Scheme};

/// Parameter Store as the injector names it.
pub(crate) static POD: Pod = Pod {
    kind: "Parameter Store",
    token: false,
    schemes: &[
        Scheme {
            name: "ssm",
            form: "ssm:NAME",
            parse: parameter,
        },
        Scheme {
            name: "ssm-path",
            form: "ssm-path:PATH",
            parse: by_path,
        },
    ],
};

/// `ssm:NAME`, after `ssm:`.
fn parameter(rest: &str) -> Result<(&'static str, Value), String> {
    if rest.is_empty() {
        return Err("expected ssm:NAME".into());
    }
    match bad_name(rest) {
        Some(why) => Err(format!("ssm:NAME: {why}")),
        None => Ok(("parameter", json!(rest))),
    }
}

/// `ssm-path:PATH`, after `ssm-path:`.
fn by_path(rest: &str) -> Result<(&'static str, Value), String> {
    if rest.is_empty() {
        return Err("expected ssm-path:PATH".into());
    }
    if !rest.starts_with('/') || bad_name(rest).is_some() {
        return Err(format!(
            "ssm-path:PATH: `{}` is not a path: it starts with `/` and holds no spaces or `:`",
            rest.escape_debug()
        ));
    }
    Ok(("parameters_by_path", json!(rest)))
}

/// How injected pods configure a source of `ssm`: as an AWS source.
pub(super) fn pod(
    ssm: &SsmSettings,
) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
    crate::source::aws::pod_settings(&ssm.0)
}

#[cfg(test)]
mod tests;

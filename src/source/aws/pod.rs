//! How the injector names AWS Secrets Manager: a pod's annotation gives
//! `aws:SECRET_ID` ([`POD`]), and injected pods read with their own AWS
//! identity, in the source's region and at its endpoint.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::Aws;
use crate::source::pod::{Pod, PodAsks, PodSettings, Scheme};

/// Secrets Manager as the injector names it.
pub(crate) static POD: Pod = Pod {
    kind: "AWS",
    token: false,
    schemes: &[Scheme {
        name: "aws",
        form: "aws:SECRET_ID",
        parse: secret_id,
    }],
};

/// `aws:SECRET_ID`, after `aws:`.
fn secret_id(rest: &str) -> Result<(&'static str, Value), String> {
    match rest {
        "" => Err("expected aws:SECRET_ID".into()),
        id => Ok(("secret_id", json!(id))),
    }
}

/// A Secrets Manager source as injected pods see it.
#[derive(Debug)]
struct AwsPod {
    /// Region.
    region: Option<String>,
    /// Endpoint override.
    endpoint: Option<String>,
}

/// How injected pods configure a source of `aws`.
pub(crate) fn pod(aws: &Aws) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
    Ok(Some(Arc::new(AwsPod {
        region: aws.region.clone(),
        endpoint: aws.endpoint.as_ref().map(|e| e.to_string()),
    })))
}

impl PodSettings for AwsPod {
    fn config(&self, _: &PodAsks<'_>) -> Value {
        let mut aws = json!({});
        if let Some(r) = &self.region {
            aws["region"] = json!(r);
        }
        if let Some(e) = &self.endpoint {
            aws["endpoint"] = json!(e);
        }
        aws
    }
}

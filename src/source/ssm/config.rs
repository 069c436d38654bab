//! What the config says about Parameter Store: the `ssm_parameter_store:`
//! source (the settings of an AWS source, as Secrets Manager's) and the
//! `parameter`, `parameters_by_path`, `version` and `label` secret keys, which
//! [`Parameter::from_keys`] turns into an address.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Parameter, SsmAddress, SsmSource};
use crate::config::{Aws, Mapping, Source, Validator, Value};
use crate::source::aws::{read_settings, settings, RawAws, REQUEST_BUDGET};
use crate::source::backend::Settings;
use crate::source::backend::{described, reads, Backend, Names, Parse, SourceKind, Unread};
use crate::source::pod::PodSettings;
use crate::source::{Address, Result};

/// The secret keys Parameter Store reads.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// An AWS Systems Manager Parameter Store parameter, by name or ARN (a
    /// `SecureString` is decrypted); one field, `value`.
    pub parameter: Option<String>,
    /// Every Parameter Store parameter under this path, recursively, as fields
    /// keyed by the last segment of each name.
    pub parameters_by_path: Option<String>,
    /// Parameter Store: one version of the `parameter` (default: the latest).
    pub version: Option<u64>,
    /// Parameter Store: the version of the `parameter` that carries this label.
    pub label: Option<String>,
}

/// How `ramsecrets check` names the batch call.
const PER_CALL: &str = "GetParameters, 10 per call";

/// Settings of a Parameter Store source: an AWS source's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsmSettings(pub Aws);

impl Settings for SsmSettings {
    fn summary(&self) -> String {
        self.0.summary_as(BACKEND.names.key, PER_CALL)
    }

    fn request_budget(&self) -> Duration {
        REQUEST_BUDGET
    }

    fn source(&self, name: &str) -> Result<Arc<dyn crate::source::Source>> {
        Ok(Arc::new(SsmSource::new(name, &self.0)))
    }

    fn pod(&self) -> std::result::Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
        super::pod::pod(self)
    }
}

/// The Parameter Store backend.
pub(crate) struct ParameterStore;

/// Parameter Store in the registry.
pub(crate) static BACKEND: Backend = Backend {
    names: Names {
        key: "ssm_parameter_store",
        default_name: "ssm",
        describe: "AWS Systems Manager Parameter Store",
        address_keys: &["parameter", "parameters_by_path"],
        options: &["version", "label"],
    },
    parse: &ParameterStore,
    proxy: Some(&super::proxy::PROXY_API),
    pod: Some(&super::pod::POD),
};

impl Parse for ParameterStore {
    fn settings_schema(&self, g: &mut SchemaGenerator) -> Schema {
        described::<RawAws>(
            g,
            "AWS Systems Manager Parameter Store, with the same keys as `aws_secrets_manager`.",
        )
    }
    fn read_settings(&self, value: &Value) -> Result<(), Unread> {
        read_settings(value)
    }
    fn settings(&self, v: &mut Validator<'_>, at: &str, value: Value) -> Option<SourceKind> {
        settings(v, at, value).map(|a| SourceKind::SsmParameterStore(SsmSettings(a)))
    }
    fn read_keys(&self, keys: &Mapping) -> Result<(), Unread> {
        reads::<RawKeys>(Value::Object(keys.clone()))
    }
    fn keys_schema(&self, g: &mut SchemaGenerator) -> Schema {
        RawKeys::json_schema(g)
    }
    fn address(&self, v: &mut Validator<'_>, at: &str, keys: Mapping) -> Option<Address> {
        let keys = v.read::<RawKeys>(at, Value::Object(keys))?;
        match Parameter::from_keys(&keys) {
            Ok(p) => Some(Address::SsmParameterStore(SsmAddress::Parameter(p))),
            Err(problems) => {
                for (key, why) in problems {
                    v.problem(format!("{at}.{key}"), why);
                }
                None
            }
        }
    }
    /// `version` and `label` pin a `parameter`.
    fn check_options(&self, v: &mut Validator<'_>, at: &str, given: &Mapping, _: Option<&Source>) {
        if given.contains_key("parameter") || given.contains_key("parameters_by_path") {
            return;
        }
        for key in ["version", "label"] {
            if given.contains_key(key) {
                v.problem(
                    format!("{at}.{key}"),
                    "pins a `parameter`: there is none here",
                );
            }
        }
    }
}

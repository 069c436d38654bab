//! The backends, registered once. What is specific to a backend lives in its
//! folder: its source settings (the key of a `sources:` entry, e.g.
//! `ssm_parameter_store`), its secret keys (`parameter`, `version`, …) and how
//! they become an [`Address`]: its [`Names`] as data, and how the config reads
//! its keys behind the [`Parse`] trait. This file lists them: [`BACKENDS`] (what the
//! config parses), [`SourceKind`] (a validated source, one variant each),
//! [`Address`] (what a secret reads, one variant each) and their dispatch to
//! each backend's [`Settings`] and [`Form`] of address, all made by one
//! `backends!` list; [`PROXY_APIS`], the APIs the proxy speaks, follows its
//! order.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::address::Form;
use super::pod::{Pod, PodSettings};
use super::proxy_api::ProxyApi;
use crate::config::{Mapping, Source, Validator, Value};

/// What names a backend: the same for every source of its kind.
pub(crate) struct Names {
    /// The key of a source of this kind, e.g. `ssm_parameter_store`.
    pub key: &'static str,
    /// The name of such a source when it gives none, e.g. `ssm`.
    pub default_name: &'static str,
    /// What kind of backend it is, for messages: `AWS Secrets Manager`.
    pub describe: &'static str,
    /// Its secret keys that give an address of this backend (a secret gives
    /// exactly one among all backends').
    pub address_keys: &'static [&'static str],
    /// Its secret keys that qualify an address (`version_stage`, `label`).
    pub options: &'static [&'static str],
}

impl Names {
    /// Whether `key` is one of its secret keys.
    fn declares(&self, key: &str) -> bool {
        self.address_keys.contains(&key) || self.options.contains(&key)
    }
}

/// A backend in the registry: its names, how the config reads its keys,
/// the API the local proxy answers for its secrets, and how the injector
/// names it.
pub(crate) struct Backend {
    /// Its names.
    pub names: Names,
    /// How the config reads it.
    pub parse: &'static dyn Parse,
    /// The API its clients call, which the proxy speaks (the `file` source
    /// has none: its secrets are served in the other backends' APIs).
    pub proxy: Option<&'static dyn ProxyApi>,
    /// How the injector names it, when pods may be injected with it.
    pub pod: Option<&'static Pod>,
}

/// How the config reads a backend's source settings and secret keys.
pub(crate) trait Parse: Sync {
    /// The schema of the value under its source key.
    fn settings_schema(&self, g: &mut SchemaGenerator) -> Schema;
    /// Whether the value under the key reads as its settings' type: serde's
    /// problem, with its path inside the value, if not.
    fn read_settings(&self, value: &Value) -> Result<(), Unread>;
    /// The validated settings from the value under the key (`at` is its
    /// path); problems go to `v`.
    fn settings(&self, v: &mut Validator<'_>, at: &str, value: Value) -> Option<SourceKind>;
    /// Whether its keys that a secret gives read as their types: serde's
    /// problem, with its path inside the secret, if not.
    fn read_keys(&self, keys: &Mapping) -> Result<(), Unread>;
    /// The schema of its secret keys: an object whose properties they are.
    fn keys_schema(&self, g: &mut SchemaGenerator) -> Schema;
    /// The address from its keys that the secret at `at` gives.
    fn address(&self, v: &mut Validator<'_>, at: &str, keys: Mapping) -> Option<Address>;
    /// Checks its qualifying keys that a secret gives (`given`: all of this
    /// backend's keys it gives) against the rest: the secret's source, when
    /// known, and whether its address is this backend's.
    fn check_options(
        &self,
        _v: &mut Validator<'_>,
        _at: &str,
        _given: &Mapping,
        _source: Option<&Source>,
    ) {
    }
}

/// What a backend's validated settings do for the rest of the crate.
pub(crate) trait Settings {
    /// How `ramsecrets check` shows them, after the source's name.
    fn summary(&self) -> String;
    /// How long the sidecar gives one refresh of one secret, retries included.
    fn request_budget(&self) -> Duration;
    /// The source they configure, named `name`; nothing is read yet.
    fn source(&self, name: &str) -> super::Result<Arc<dyn super::Source>>;
    /// The local file the source reads, which a watch follows.
    fn local_file(&self) -> Option<&Path> {
        None
    }
    /// Whether the source's leases are revoked when the sidecar stops.
    fn revoke_on_exit(&self) -> bool {
        false
    }
    /// Whether pods may be injected with the source: else the key at fault
    /// under the source's entry (`vault.auth`) and why, which makes an
    /// `inject:` config with it invalid.
    fn injectable(&self) -> Result<(), (&'static str, &'static str)> {
        Ok(())
    }
    /// How injected pods configure the source, if they use it; what they
    /// are shipped (a CA bundle) is read now, and the error names the file.
    fn pod(&self) -> Result<Option<Arc<dyn PodSettings>>, (PathBuf, std::io::Error)> {
        Ok(None)
    }
}

/// Lists the backends once, each as `Variant in module: Settings, Address;`
/// (its settings and address types, both in its module; the `file` source
/// has no address of its own), and makes from the list
/// [`BACKENDS`], [`SourceKind`] and [`Address`] with one variant per backend,
/// and their dispatch to each backend's [`Settings`] and [`Form`].
macro_rules! backends {
    ($( $(#[$doc:meta])* $V:ident in $m:ident: $S:ident $(, $A:ident)?; )*) => {
        /// Every backend, in the order the config's messages and schema list
        /// them and the proxy routes a request ([`PROXY_APIS`]).
        pub(crate) static BACKENDS: &[&Backend] = &[$( &super::$m::BACKEND, )*];

        /// The kinds of backend, with their validated settings.
        #[derive(Debug, PartialEq, Eq)]
        pub enum SourceKind {
            $( $(#[$doc])* $V(super::$m::$S), )*
        }

        impl SourceKind {
            /// The backend this kind of source is.
            pub(super) fn backend(&self) -> &'static Backend {
                match self {
                    $( SourceKind::$V(_) => &super::$m::BACKEND, )*
                }
            }

            /// Its settings.
            pub(super) fn settings(&self) -> &dyn Settings {
                match self {
                    $( SourceKind::$V(s) => s, )*
                }
            }
        }

        /// What a secret reads from its source: one variant per backend,
        /// holding the backend's own form of address. The address is its
        /// own identity: two secrets read the same thing exactly when their
        /// addresses are equal, and the hand-off state stores it as data,
        /// each backend's form as it is (`{"read": "db/creds/app"}`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(untagged)]
        pub enum Address {
            $( $(
                #[doc = concat!("An address of the `", stringify!($m), "` backend.")]
                $V(super::$m::$A),
            )? )*
        }

        impl Address {
            /// The backend's own form of the address.
            pub(super) fn form(&self) -> &dyn Form {
                match self {
                    $( $( Address::$V(a) => form::<super::$m::$A>(a), )? )*
                }
            }
        }
    };
}

/// `a` as a form of address.
fn form<A: Form>(a: &A) -> &dyn Form {
    a
}

// The order is the proxy's routing order too: Vault's paths are routed
// before the AWS agent's `/v1/<secretId>`.
backends! {
    /// Vault or OpenBao.
    Vault in vault: Vault, VaultAddress;
    /// AWS Secrets Manager.
    AwsSecretsManager in aws: Aws, AwsAddress;
    /// AWS Systems Manager Parameter Store.
    SsmParameterStore in ssm: SsmSettings, SsmAddress;
    /// A local YAML file, standing in for any backend: its secrets give the
    /// other backends' addresses.
    File in file: FileSettings;
}

/// The APIs the local proxy answers, each backend's own, in the order of
/// [`BACKENDS`], which is the order a request is routed.
pub(crate) static PROXY_APIS: LazyLock<Vec<&'static dyn ProxyApi>> =
    LazyLock::new(|| BACKENDS.iter().filter_map(|b| b.proxy).collect());

impl SourceKind {
    /// The local file a `file` source reads, which a watch follows.
    pub fn local_file(&self) -> Option<&Path> {
        self.settings().local_file()
    }

    /// The secret keys of the addresses this backend reads; `None` for the
    /// `file` source, which has none of its own and stands in for any.
    pub fn reads(&self) -> Option<&'static [&'static str]> {
        let keys = self.backend().names.address_keys;
        (!keys.is_empty()).then_some(keys)
    }

    /// What kind of backend this is, for messages.
    pub fn describe(&self) -> &'static str {
        self.backend().names.describe
    }

    /// How `ramsecrets check` shows the source's settings, after its name.
    pub fn summary(&self) -> String {
        self.settings().summary()
    }

    /// How long the sidecar gives one refresh of one secret, retries included.
    pub fn request_budget(&self) -> Duration {
        self.settings().request_budget()
    }

    /// Whether the source's leases are revoked when the sidecar stops.
    pub fn revoke_on_exit(&self) -> bool {
        self.settings().revoke_on_exit()
    }

    /// Whether pods may be injected with the source: else the key at fault
    /// under the source's entry (`vault.auth`) and why.
    pub fn injectable(&self) -> Result<(), (&'static str, &'static str)> {
        self.settings().injectable()
    }

    /// The source these settings configure, named `name`.
    pub(crate) fn source(&self, name: &str) -> super::Result<Arc<dyn super::Source>> {
        self.settings().source(name)
    }
}

/// What serde said about a value that does not read as its type: the path
/// inside the value (`.` for the value itself) and the message.
pub(crate) type Unread = (String, String);

/// Whether `value` reads as a `T`.
pub(crate) fn reads<T: serde::de::DeserializeOwned>(value: Value) -> Result<(), Unread> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(drop)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// The schema of `Option<T>`, described by `doc` (the value under a source
/// key, which may be empty).
pub(crate) fn described<T: JsonSchema>(g: &mut SchemaGenerator, doc: &str) -> Schema {
    let mut s = g.subschema_for::<Option<T>>();
    s.insert("description".into(), doc.into());
    s
}

/// The backend whose source key is `key`.
pub(crate) fn by_source_key(key: &str) -> Option<&'static Backend> {
    BACKENDS.iter().copied().find(|b| b.names.key == key)
}

/// The backend that declares the secret key `key`.
pub(crate) fn by_secret_key(key: &str) -> Option<&'static Backend> {
    BACKENDS.iter().copied().find(|b| b.names.declares(key))
}

/// Every backend's source key, in order.
pub(crate) fn source_keys() -> Vec<&'static str> {
    BACKENDS.iter().map(|b| b.names.key).collect()
}

/// Every backend's address keys, in order.
pub(crate) fn address_keys() -> Vec<&'static str> {
    BACKENDS
        .iter()
        .flat_map(|b| b.names.address_keys)
        .copied()
        .collect()
}

/// The keys of a `sources:` entry that name its backend, as written; the
/// config's `RawSource` holds them, and its schema has one property per
/// backend, exactly one of them required.
#[derive(Debug, Default)]
pub struct SourceKeys(pub Mapping);

/// The keys of a `secrets:` entry that belong to a backend, as written; the
/// config's `RawSecret` holds them, and its schema has every backend's keys,
/// exactly one address key required.
#[derive(Debug, Default)]
pub struct SecretKeys(pub Mapping);

impl SourceKeys {
    /// Whether the value of each backend key given reads as its settings.
    pub(crate) fn read(keys: &Mapping) -> Result<(), Unread> {
        for (k, v) in keys {
            if let Some(b) = by_source_key(k) {
                b.parse
                    .read_settings(v)
                    .map_err(|(path, why)| match path.as_str() {
                        "." => (b.names.key.to_owned(), why),
                        _ => (format!("{}.{path}", b.names.key), why),
                    })?;
            }
        }
        Ok(())
    }
}

impl SecretKeys {
    /// Whether the keys given read as the types their backends declare.
    pub(crate) fn read(keys: &Mapping) -> Result<(), Unread> {
        let keys = SecretKeys(keys.clone());
        BACKENDS
            .iter()
            .try_for_each(|b| b.parse.read_keys(&keys.of(b)))
    }

    /// The keys given that `backend` declares, as written.
    pub(crate) fn of(&self, backend: &Backend) -> Mapping {
        self.0
            .iter()
            .filter(|(k, _)| backend.names.declares(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl JsonSchema for SourceKeys {
    fn schema_name() -> Cow<'static, str> {
        "SourceKeys".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let properties: serde_json::Map<_, _> = BACKENDS
            .iter()
            .map(|b| {
                (
                    b.names.key.to_owned(),
                    b.parse.settings_schema(g).to_value(),
                )
            })
            .collect();
        object(properties, source_keys())
    }
}

impl JsonSchema for SecretKeys {
    fn schema_name() -> Cow<'static, str> {
        "SecretKeys".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let mut properties = serde_json::Map::new();
        for b in BACKENDS {
            if let Some(serde_json::Value::Object(p)) = b.parse.keys_schema(g).get("properties") {
                properties.extend(p.clone());
            }
        }
        object(properties, address_keys())
    }
}

/// An object schema with `properties`, exactly one of `choices` required.
fn object(properties: serde_json::Map<String, serde_json::Value>, choices: Vec<&str>) -> Schema {
    let one_of: Vec<_> = choices
        .iter()
        .map(|k| serde_json::json!({ "required": [k] }))
        .collect();
    let mut schema = Schema::default();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties.into());
    schema.insert("oneOf".into(), one_of.into());
    schema
}

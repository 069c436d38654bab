//! How the injector names the backends, and the sources injected pods use.
//! Each backend's folder says it (its `pod.rs`): the annotation schemes of
//! its addresses with the config keys they become (its [`Pod`], in its
//! registry entry), whether pods may be injected with a source of it
//! ([`Settings::injectable`]) and how they configure it ([`Settings::pod`]).
//! The injector handles [`PodAddress`] and [`PodSource`] without knowing a
//! backend.
//!
//! [`Settings::injectable`]: super::backend::Settings::injectable
//! [`Settings::pod`]: super::backend::Settings::pod

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::backend::BACKENDS;
use super::VaultOverrides;
use crate::config::Source;

/// How the injector names a backend.
pub(crate) struct Pod {
    /// What its sources are called in the injector's messages: `Vault`.
    pub kind: &'static str,
    /// Whether its pods log in with their projected service-account token.
    pub token: bool,
    /// The annotation schemes of its addresses, in the order messages list them.
    pub schemes: &'static [Scheme],
}

/// One scheme of a pod's annotation: `kv:MOUNT/PATH`.
pub(crate) struct Scheme {
    /// What comes before the `:`, e.g. `kv`.
    pub name: &'static str,
    /// The annotation's form, for messages: `kv:MOUNT/PATH`.
    pub form: &'static str,
    /// The secret's config key and its value, from what follows the `:`
    /// (trimmed); the error says what is wrong with it.
    pub parse: fn(&str) -> Result<(&'static str, Value), String>,
}

/// Every backend's annotation schemes, in the order messages list them.
fn schemes() -> impl Iterator<Item = (&'static Pod, &'static Scheme)> {
    BACKENDS
        .iter()
        .filter_map(|b| b.pod)
        .flat_map(|pod| pod.schemes.iter().map(move |s| (pod, s)))
}

/// `a, b or c`.
fn one_of(items: impl Iterator<Item = &'static str>) -> String {
    let items: Vec<_> = items.collect();
    match items.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// A secret's address as a pod's annotation gives it, already in the form of
/// the pod's config: its key (`kv`, `read`, `pki`, `secret_id`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddress {
    /// What the sources that serve it are called ([`Pod::kind`]).
    kind: &'static str,
    /// Whether its pod logs in with its service-account token.
    token: bool,
    /// The secret's config key that gives the address.
    key: &'static str,
    /// Its value.
    value: Value,
}

impl PodAddress {
    /// Reads an annotation's address; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<PodAddress, String> {
        let (scheme, rest) = value
            .split_once(':')
            .ok_or_else(|| format!("expected {}", one_of(schemes().map(|(_, s)| s.form))))?;
        let (pod, s) = schemes().find(|(_, s)| s.name == scheme).ok_or_else(|| {
            format!(
                "unknown kind `{scheme}`: expected {}",
                one_of(schemes().map(|(_, s)| s.name))
            )
        })?;
        let (key, value) = (s.parse)(rest.trim())?;
        Ok(PodAddress::new(pod, key, value))
    }

    /// The address of a backend named by `pod`, as its config `key` gives it.
    pub(crate) fn new(pod: &Pod, key: &'static str, value: Value) -> PodAddress {
        PodAddress {
            kind: pod.kind,
            token: pod.token,
            key,
            value,
        }
    }

    /// What the sources that serve it are called: `Vault`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether its pod logs in with its projected service-account token.
    pub fn needs_token(&self) -> bool {
        self.token
    }

    /// The secret's config key that gives the address, and its value.
    pub fn config(&self) -> (&'static str, &Value) {
        (self.key, &self.value)
    }
}

/// What a backend's settings give the pods that use its source.
pub(crate) trait PodSettings: Debug + Send + Sync {
    /// The CA bundle (PEM) the pods are shipped, when the source has one.
    fn ca_pem(&self) -> Option<&str> {
        None
    }

    /// The value under the source's key in the config of a pod that asks `asks`.
    fn config(&self, asks: &PodAsks<'_>) -> Value;
}

/// What a pod's annotations ask of its sources, and where its files are.
pub struct PodAsks<'a> {
    /// The Vault role (`role`), else the source's.
    pub role: Option<&'a str>,
    /// The Vault settings of a vault-k8s pod.
    pub vault: &'a VaultOverrides,
    /// The pod's projected service-account token.
    pub token_file: &'a str,
    /// Where the pod sees the source's CA bundle, when it has one.
    pub ca_file: &'a str,
}

/// A source as injected pods see it.
#[derive(Debug, Clone)]
pub struct PodSource {
    /// Its name.
    name: String,
    /// What such sources are called ([`Pod::kind`]).
    kind: &'static str,
    /// Its backend's source key in the pod's config: `vault`.
    key: &'static str,
    /// How pods configure it.
    settings: Arc<dyn PodSettings>,
}

impl PodSource {
    /// The source injected pods use for the configured source `s`, if they
    /// can use it (what they are shipped, a CA bundle, is read now). The
    /// error names the file that cannot be read.
    pub fn of(s: &Source) -> Result<Option<PodSource>, (PathBuf, std::io::Error)> {
        let backend = s.kind.backend();
        let Some(pod) = backend.pod else {
            return Ok(None);
        };
        Ok(s.kind.settings().pod()?.map(|settings| PodSource {
            name: s.name.clone(),
            kind: pod.kind,
            key: backend.names.key,
            settings,
        }))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What such sources are called: `Vault`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The CA bundle (PEM) the pods are shipped, when the source has one.
    pub fn ca_pem(&self) -> Option<&str> {
        self.settings.ca_pem()
    }

    /// Its entry in `sources:` of the config of a pod that asks `asks`.
    pub fn config(&self, asks: &PodAsks<'_>) -> Value {
        let mut entry = Map::new();
        entry.insert("name".into(), Value::from(self.name.as_str()));
        entry.insert(self.key.into(), self.settings.config(asks));
        Value::Object(entry)
    }
}

//! Configuration: the YAML file is parsed raw ([`raw`], whose types carry the
//! published schema's rules with the `blocks`), then validated into
//! [`Config`], one section per module: `sources` (a backend's key and name;
//! the backend's folder under `src/source/` reads its settings, and a Vault
//! login's keys are `auth`), `output`, `secrets` (each secret's files; the
//! backend keys that give its [`Address`] are read by their backend's folder),
//! `sidecar` (refresh, exec, proxy, on_change actions), `templates` and
//! `inject`. This module holds what they share: the top-level structure, the
//! `Validator` that collects problems, and the path and number helpers.
//! Every problem is collected and reported at once, each with its key path
//! and, where the text has one, its line and column.

mod blocks;
pub mod duration;
mod home;
pub mod inject;
mod marks;
mod output;
mod pin;
pub mod raw;
mod secrets;
mod sidecar;
mod sources;
mod summary;
mod templates;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::{Exit, ExitCode};
pub(crate) use blocks::DurationText;
use marks::Marks;

/// A config value before it is read into its type: the YAML text in JSON's
/// data model, which is all a config uses (string keys, no tags).
pub(crate) type Value = serde_json::Value;
/// A mapping in a config value, keyed by strings.
pub(crate) type Mapping = serde_json::Map<String, Value>;

pub use crate::source::{
    Address, Auth, Aws, AwsLogin, AwsVersion, CertLogin, KvVersion, SourceKind, Vault,
    VaultAddress, AWS_CURRENT, AWS_PREVIOUS,
};
use blocks::Item;
pub(crate) use blocks::{one_of, one_of_schema, OneOf};
use output::check_relative;
pub use output::Output;
pub use pin::Pin;
use raw::RawConfig;
pub use secrets::{previous_file, Format, Secret};
pub use sidecar::{signal_name, Action, ChildOnChange, Exec, Proxy, Refresh, SignalTarget};
pub use sources::{Source, MAX_ANSWER_BYTES};
pub use templates::Template;

/// Largest config file read, and largest `file` source.
pub(crate) const MAX_SIZE: u64 = 1 << 20;

/// The default service-account token of a Kubernetes pod.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Backends, in file order.
    pub sources: Vec<Source>,
    /// The output directory and its defaults; `None` when the secrets are
    /// held in memory and served only through the proxy.
    pub output: Option<Output>,
    /// Secrets, in file order.
    pub secrets: Vec<Secret>,
    /// Lock memory.
    pub mlock: bool,
    /// Sidecar refresh schedule.
    pub refresh: Refresh,
    /// Health endpoint address, when enabled.
    pub health: Option<std::net::SocketAddr>,
    /// `exec` mode settings.
    pub exec: Exec,
    /// The local credential proxy, when enabled.
    pub proxy: Option<Proxy>,
    /// Files rendered from several secrets, in file order.
    pub templates: Vec<Template>,
    /// The template files the config read, which the sidecar watches.
    pub template_files: Vec<PathBuf>,
    /// The admission webhook (`ramsecrets inject`), when configured.
    pub inject: Option<inject::Inject>,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `secrets[2].file`.
    pub path: String,
    /// `line:column` in the file, when known.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.as_str(), self.at) {
            ("", Some((l, c))) => write!(f, "line {l}, column {c}: {}", self.message),
            ("", None) => write!(f, "{}", self.message),
            (path, Some((l, c))) => write!(f, "{path} (line {l}, column {c}): {}", self.message),
            (path, None) => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Errors loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the one pinned by `--config-sha256`.
    #[error("config {path} is not the config this process was started for: its SHA-256 is {found}, --config-sha256 says {pinned}")]
    Unpinned {
        /// The config path.
        path: PathBuf,
        /// The digest asked for.
        pinned: Pin,
        /// The file's.
        found: Pin,
    },
    /// The file has problems.
    #[error("config {path} is invalid:\n{}", list(.problems))]
    Invalid {
        /// The config path.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        Exit::Config
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        Config::load_pinned(path, None)
    }

    /// Reads the file at `path`, refuses it unless its bytes have the SHA-256
    /// `pin` (when given), and validates it.
    pub fn load_pinned(path: &Path, pin: Option<Pin>) -> Result<Config> {
        // Never more than the cap (and one byte to tell it was over) is read.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_SIZE + 1), &mut text)
            })
            .map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
        if let Some(pinned) = pin {
            let found = Pin::of(text.as_bytes());
            if found != pinned {
                return Err(Error::Unpinned {
                    path: path.to_owned(),
                    pinned,
                    found,
                });
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|problems| Error::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Parses and validates `text`; relative source paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Config, Vec<Problem>> {
        let refuse = |message: String| {
            vec![Problem {
                path: String::new(),
                at: None,
                message,
            }]
        };
        if text.len() as u64 > MAX_SIZE {
            return Err(refuse(format!(
                "the config is larger than {} KiB; a config needs far less",
                MAX_SIZE / 1024
            )));
        }
        let value: Value = yaml::read(text).map_err(|e| {
            vec![Problem {
                path: String::new(),
                at: e.at,
                message: e.message,
            }]
        })?;
        let marks = Marks::index(text);
        let mut v = Validator {
            marks: &marks,
            problems: Vec::new(),
            base,
            template_files: Vec::new(),
            home: std::env::var_os("HOME"),
            given: Vec::new(),
        };
        let config = v.structure(value).map(|raw| v.validate(raw));
        match config {
            Some(config) if v.problems.is_empty() => Ok(config),
            _ => Err(v.problems),
        }
    }
}

/// Publishes the JSON Schema of the configuration file.
pub fn schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or_default();
    plain_names(&mut schema);
    schema
}

/// The definitions under their names without Rust's `Raw` prefix, which is
/// no help in an editor.
fn plain_names(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(defs)) = map.get_mut("$defs") {
                *defs = std::mem::take(defs)
                    .into_iter()
                    .map(|(k, d)| (k.strip_prefix("Raw").map_or(k.clone(), str::to_owned), d))
                    .collect();
            }
            for (k, val) in map.iter_mut() {
                match (k.as_str(), val) {
                    ("$ref", Value::String(r)) => *r = r.replace("/$defs/Raw", "/$defs/"),
                    (_, val) => plain_names(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_names),
        _ => {}
    }
}

/// Checks a config's raw sections, collecting every problem with its key
/// path; the backends' folders read their keys with it.
pub(crate) struct Validator<'a> {
    marks: &'a Marks,
    problems: Vec<Problem>,
    /// The config file's directory: relative paths in the config start here.
    base: &'a Path,
    /// Template files read so far.
    template_files: Vec<PathBuf>,
    /// `$HOME`, which a leading `~` in a path stands for.
    home: Option<std::ffi::OsString>,
    /// The top-level keys of the file.
    given: Vec<String>,
}

impl Validator<'_> {
    /// Records a problem at the key path `path`.
    pub(crate) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let at = self.marks.find(&path).map(|m| (m.line, m.column));
        self.problems.push(Problem {
            path,
            at,
            message: message.into(),
        });
    }

    /// Records what serde said about the value at `at` (the key of a
    /// section or list entry) and `inner` (the path inside it, `.` for the
    /// value itself).
    fn serde_problem(&mut self, at: &str, inner: &str, mut message: String) {
        let full = match (at.is_empty(), inner == ".") {
            (_, true) => at.to_owned(),
            (true, false) => inner.to_owned(),
            (false, false) if inner.starts_with('[') => format!("{at}{inner}"),
            (false, false) => format!("{at}.{inner}"),
        };
        if full.ends_with(".mode") && message.starts_with("invalid type: integer") {
            message.push_str(": quote the mode, as in mode: \"0440\"");
        }
        self.problem(full, message);
    }

    /// How many problems were found so far.
    pub(crate) fn problems(&self) -> usize {
        self.problems.len()
    }

    /// `value`, the value at `at`, as a `T`; what serde says is a problem
    /// at the key path inside it.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        at: &str,
        value: Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                self.serde_problem(at, &inner, e.into_inner().to_string());
                None
            }
        }
    }

    /// Deserializes the raw config. A section that fails is a problem at its
    /// key and is left out; a list entry that fails is kept as
    /// [`Item::Bad`], so one mistake does not hide the next. The top-level
    /// keys are [`RawConfig`]'s fields, listed nowhere else. Serde meets the
    /// sections in the order of their names; their problems are told in the
    /// order of the text (those with no position, a missing section, last).
    fn structure(&mut self, value: Value) -> Option<RawConfig> {
        let from = self.problems.len();
        let raw = self.sections(value);
        self.problems[from..].sort_by_key(|p| (p.at.is_none(), p.at));
        raw
    }

    fn sections(&mut self, value: Value) -> Option<RawConfig> {
        let Value::Object(mut top) = value else {
            self.problem(
                "",
                "the config must be a mapping with `sources`, `output` and `secrets`",
            );
            return None;
        };
        let top_keys = raw::fields::<RawConfig>();
        top.retain(|k, _| match top_keys.contains(&k.as_str()) {
            true => true,
            false => {
                self.problem(
                    k,
                    format!("unknown key `{k}`, expected one of {}", top_keys.join(", ")),
                );
                false
            }
        });
        self.given = top.keys().cloned().collect();
        // A key with no value (`output:`) is a section with nothing in it, to
        // be checked as such, not a section that is not there.
        for value in top.values_mut().filter(|v| v.is_null()) {
            *value = Value::Object(Mapping::new());
        }
        // Each round drops the section serde stopped at, or stands an empty
        // list in for a missing required one (`sources`), until the rest reads.
        let mut filled: Vec<&str> = Vec::new();
        loop {
            let e = match serde_path_to_error::deserialize(Value::Object(top.clone())) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let key = match e.path().iter().next() {
                Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
                _ => None,
            };
            let inner = e.path().to_string();
            let message = e.into_inner().to_string();
            match key {
                Some(key) if top.remove(key.as_str()).is_some() => {
                    let message = match message.contains("expected a sequence") && inner == key {
                        true => "must be a list".to_owned(),
                        false => message,
                    };
                    self.serde_problem("", &inner, message);
                }
                _ => {
                    let missing = top_keys.iter().find(|k| {
                        !top.contains_key(**k)
                            && !filled.contains(k)
                            && message.contains(&format!("`{k}`"))
                    });
                    let Some(&k) = missing else {
                        self.serde_problem("", &inner, message);
                        return None;
                    };
                    if !self.given(k) {
                        self.problem(k, "missing: at least one entry is required");
                    }
                    filled.push(k);
                    top.insert(k.into(), Value::Array(Vec::new()));
                }
            }
        }
    }

    /// Whether the file has the top-level key `key` (even one that did not deserialize).
    fn given(&self, key: &str) -> bool {
        self.given.iter().any(|k| k == key)
    }

    /// The entries of the top-level list `key`, each `None` where it did not
    /// deserialize (a problem at its index).
    fn items<T>(&mut self, key: &str, items: Vec<Item<T>>) -> Vec<Option<T>> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Item::Ok(t) => Some(t),
                Item::Bad { path, message, .. } => {
                    self.serde_problem(&format!("{key}[{i}]"), &path, message);
                    None
                }
            })
            .collect()
    }

    fn validate(&mut self, raw: RawConfig) -> Config {
        let injector = self.given("inject");
        let sources = self.items("sources", raw.sources);
        // The injector's file needs only `sources:` besides `inject:`.
        if !self.given("secrets") && !injector {
            self.problem("secrets", "missing: at least one entry is required");
        }
        // Names first, from every entry, valid or not: a duplicate shows in
        // the same pass as the entries' other problems.
        let secret_names: Vec<Option<String>> = raw
            .secrets
            .iter()
            .map(|item| match item {
                Item::Ok(s) => Some(s.name.clone()),
                Item::Bad { name, .. } => name.clone(),
            })
            .collect();
        let raw_secrets = self.items("secrets", raw.secrets);
        let raw_templates = self.items("templates", raw.templates);
        let sources: Vec<Source> = sources
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| self.source(i, s?))
            .collect();
        let mut names = HashSet::new();
        for (i, s) in sources.iter().enumerate() {
            if !names.insert(s.name.clone()) {
                self.problem(
                    format!("sources[{i}].name"),
                    format!("duplicate source name `{}`", s.name),
                );
            }
        }
        if sources.is_empty() && self.problems.is_empty() {
            self.problem("sources", "at least one source is required");
        }
        if !self.given("output") && raw.proxy.is_none() && !injector {
            self.problem(
                "output",
                "missing: an `output` section with `dir` is required, unless a `proxy` section serves the secrets from memory only",
            );
        } else if !self.given("output") && !raw_templates.is_empty() {
            self.problem(
                "templates",
                "templates write files to `output.dir`: a config without an `output` section cannot have them",
            );
        }
        let output = raw.output.and_then(|o| self.output(o));
        let default_mode = output.as_ref().map_or(0o400, |o| o.mode);
        let mut seen_names: HashMap<&str, usize> = HashMap::new();
        for (i, name) in secret_names.iter().enumerate() {
            let Some(name) = name else { continue };
            if let Some(first) = seen_names.insert(name, i) {
                self.problem(
                    format!("secrets[{i}].name"),
                    format!("duplicate secret name `{name}` (also secrets[{first}])"),
                );
            }
        }
        let mut secrets = Vec::new();
        let mut seen_files: HashMap<String, String> = HashMap::new();
        for (i, s) in raw_secrets.into_iter().enumerate() {
            let Some(secret) = s.and_then(|s| self.secret(i, s, &sources, default_mode)) else {
                continue;
            };
            for f in secret.files() {
                if let Some(other) = seen_files.insert(f.clone(), secret.name.clone()) {
                    self.problem(
                        format!("secrets[{i}].file"),
                        format!("file `{f}` is also written by secret `{other}`"),
                    );
                }
            }
            secrets.push(secret);
        }
        if secrets.is_empty() && self.problems.is_empty() && !injector {
            self.problem("secrets", "at least one secret is required");
        }
        let templates = self.templates(raw_templates, &secrets, default_mode, &seen_files);
        self.no_file_over_a_directory(&secrets, &templates);
        let refresh = self.refresh(raw.refresh);
        let health = raw.health.and_then(|h| match h.listen.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "health.listen",
                    format!("`{}` is not an address like 127.0.0.1:8099", h.listen),
                );
                None
            }
        });
        let exec = self.exec(raw.exec);
        let proxy = raw.proxy.and_then(|p| self.proxy(p));
        let inject = raw.inject.and_then(|i| self.inject(i, &sources));
        Config {
            sources,
            output,
            secrets,
            mlock: raw.mlock,
            refresh,
            health,
            exec,
            proxy,
            templates,
            template_files: std::mem::take(&mut self.template_files),
            inject,
        }
    }

    /// `p` at key `at`, with a leading `~` expanded, relative to the config
    /// file's directory (an absolute path stays as it is).
    pub(crate) fn path(&mut self, at: &str, p: PathBuf) -> PathBuf {
        match home::expand(&p, self.home.as_deref()) {
            Ok(p) => self.base.join(p),
            Err(why) => {
                self.problem(at, why);
                p
            }
        }
    }

    /// A duration at `at` as written (`default` when absent); zero is a problem.
    pub(crate) fn duration(
        &mut self,
        at: &str,
        s: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        match s {
            None => Some(default),
            Some(s) => match duration::parse(s) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.problem(at, "must be longer than zero");
                    None
                }
                Err(e) => {
                    self.problem(at, e);
                    None
                }
            },
        }
    }

    fn mode(&mut self, at: &str, s: Option<&str>, default: u32) -> Option<u32> {
        let Some(s) = s else { return Some(default) };
        match u32::from_str_radix(s, 8) {
            Ok(m) if m <= 0o777 && (3..=4).contains(&s.len()) => Some(m),
            _ => {
                self.problem(
                    at,
                    format!("`{s}` is not an octal file mode from \"0000\" to \"0777\""),
                );
                None
            }
        }
    }

    /// Whether `raw` gives exactly one of its choices; records a problem
    /// at `at` naming them all when not.
    pub(crate) fn exactly_one<T: OneOf>(&mut self, at: &str, raw: &T) -> bool {
        if raw.given().into_iter().filter(|given| *given).count() == 1 {
            return true;
        }
        self.problem(at, needs_one_of(T::KEYS));
        false
    }
}

/// The problem of a mapping that needs exactly one of `keys`:
/// "needs exactly one of `a`, `b` or `c`".
fn needs_one_of(keys: &[&str]) -> String {
    format!("needs exactly one of {}", either(keys))
}

/// `` `a`, `b` or `c` ``
fn either(keys: &[&str]) -> String {
    let mut text = String::new();
    for (i, k) in keys.iter().enumerate() {
        let sep = match i {
            0 => "",
            _ if i + 1 == keys.len() => " or ",
            _ => ", ",
        };
        text.push_str(&format!("{sep}`{k}`"));
    }
    text
}

/// A mount as written, without slashes at either end.
pub(crate) fn clean_mount(m: &str) -> String {
    m.trim_matches('/').to_owned()
}

#[cfg(test)]
mod tests;

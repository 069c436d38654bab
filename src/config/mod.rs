//! Configuration: the YAML file is parsed raw ([`raw`]), then validated into
//! [`Config`], one section per module: `sources` (backends and their logins,
//! with `auth`), `output`, `secrets` (each secret's [`Address`] and files),
//! `sidecar` (refresh, exec, proxy, on_change actions), `templates` and
//! `inject`. This module holds what they share: the top-level structure, the
//! `Validator` that collects problems, and the path and number helpers.
//! Every problem is collected and reported at once, each with its key path
//! and, where the text has one, its line and column.

mod auth;
pub mod duration;
mod home;
pub mod inject;
mod marks;
mod output;
mod plan;
pub mod raw;
mod secrets;
mod sidecar;
mod sources;
pub mod syntax;
mod templates;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::exit::{Exit, ExitCode};
pub use auth::{AwsLogin, CertLogin};
use marks::Marks;

pub use output::Output;
pub use raw::Format;
use raw::{RawConfig, RawOutput, RawSecret, RawSource, RawTemplate};
pub use secrets::{previous_file, Address, KvVersion, Secret};
pub use sidecar::{
    parse_signal, signal_name, Action, ChildOnChange, Exec, Proxy, Refresh, Signal, SignalTarget,
};
pub use sources::{
    Auth, Aws, AwsVersion, RoleLogin, Source, SourceKind, Vault, AWS_CURRENT, AWS_PREVIOUS,
};
pub use templates::Template;

/// Largest config file read.
const MAX_SIZE: u64 = 1 << 20;

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
        let marks = Marks::index(text).map_err(|e| refuse(format!("not accepted: {e}")))?;
        let mut v = Validator {
            marks: &marks,
            problems: Vec::new(),
            base,
            template_files: Vec::new(),
            home: std::env::var_os("HOME"),
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let at = e.location().map(|l| (l.line(), l.column()));
                return Err(vec![Problem {
                    path: String::new(),
                    at,
                    message: format!("not valid YAML: {}", syntax::explain(&e)),
                }]);
            }
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

struct Validator<'a> {
    marks: &'a Marks,
    problems: Vec<Problem>,
    /// The config file's directory: relative paths in the config start here.
    base: &'a Path,
    /// Template files read so far.
    template_files: Vec<PathBuf>,
    /// `$HOME`, which a leading `~` in a path stands for.
    home: Option<std::ffi::OsString>,
}

/// A [`RawConfig`] as far as it deserialized: what failed is `None`.
struct Parts {
    sources: Vec<Option<RawSource>>,
    /// `None`: no `output` key; `Some(None)`: one that failed to deserialize.
    output: Option<Option<RawOutput>>,
    mlock: bool,
    refresh: Option<raw::RawRefresh>,
    health: Option<raw::RawHealth>,
    exec: Option<raw::RawExec>,
    proxy: Option<raw::RawProxy>,
    secrets: Vec<Option<RawSecret>>,
    templates: Vec<Option<RawTemplate>>,
    inject: Option<inject::RawInject>,
    /// The file has an `inject:` key (even one that did not deserialize).
    injector: bool,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let at = self.marks.find(&path).map(|m| (m.line, m.column));
        self.problems.push(Problem {
            path,
            at,
            message: message.into(),
        });
    }

    /// Deserializes `value` at `path`, recording a problem on failure.
    fn de<T: DeserializeOwned>(&mut self, path: &str, value: serde_yaml::Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                let full = match (path.is_empty(), inner == ".") {
                    (_, true) => path.to_owned(),
                    (true, false) => inner,
                    (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                    (false, false) => format!("{path}.{inner}"),
                };
                let mut message = e.into_inner().to_string();
                if full.ends_with(".mode") && message.starts_with("invalid type: integer") {
                    message.push_str(": quote the mode, as in mode: \"0440\"");
                }
                self.problem(full, message);
                None
            }
        }
    }

    /// Deserializes the raw config section by section and item by item, so
    /// that one bad secret does not hide the problems of the next; items that
    /// fail stay as `None` so later problems keep their indices.
    fn structure(&mut self, value: serde_yaml::Value) -> Option<Parts> {
        let serde_yaml::Value::Mapping(mut top) = value else {
            self.problem(
                "",
                "the config must be a mapping with `sources`, `output` and `secrets`",
            );
            return None;
        };
        let top_keys = raw::fields::<RawConfig>();
        for key in top.keys() {
            match key.as_str() {
                Some(k) if top_keys.contains(&k) => {}
                Some(k) => self.problem(
                    k,
                    format!("unknown key `{k}`, expected one of {}", top_keys.join(", ")),
                ),
                None => self.problem("", "keys must be strings"),
            }
        }
        // The injector's file needs only `sources:` besides `inject:`.
        let injector = top.contains_key("inject");
        let inject = top.remove("inject").and_then(|v| self.de("inject", v));
        let sources = self.list::<RawSource>(&mut top, "sources");
        let secrets = match top.contains_key("secrets") || !injector {
            true => self.list::<RawSecret>(&mut top, "secrets"),
            false => Vec::new(),
        };
        let templates = self.optional_list::<RawTemplate>(&mut top, "templates");
        let output = top
            .remove("output")
            .map(|v| self.de::<RawOutput>("output", v));
        let mlock = match top.remove("mlock") {
            Some(v) => self.de::<bool>("mlock", v).unwrap_or_default(),
            None => false,
        };
        let refresh = top.remove("refresh").and_then(|v| self.de("refresh", v));
        let health = top.remove("health").and_then(|v| self.de("health", v));
        let exec = top.remove("exec").and_then(|v| self.de("exec", v));
        let proxy = top.remove("proxy").and_then(|v| self.de("proxy", v));
        Some(Parts {
            sources,
            output,
            mlock,
            refresh,
            health,
            exec,
            proxy,
            secrets,
            templates,
            inject,
            injector,
        })
    }

    fn list<T: DeserializeOwned>(
        &mut self,
        top: &mut serde_yaml::Mapping,
        key: &str,
    ) -> Vec<Option<T>> {
        let Some(value) = top.remove(key) else {
            self.problem(key, "missing: at least one entry is required");
            return Vec::new();
        };
        let serde_yaml::Value::Sequence(items) = value else {
            self.problem(key, "must be a list");
            return Vec::new();
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.de::<T>(&format!("{key}[{i}]"), item))
            .collect()
    }

    fn validate(&mut self, raw: Parts) -> Config {
        let sources: Vec<Source> = raw
            .sources
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
        if raw.output.is_none() && raw.proxy.is_none() && !raw.injector {
            self.problem(
                "output",
                "missing: an `output` section with `dir` is required, unless a `proxy` section serves the secrets from memory only",
            );
        } else if raw.output.is_none() && !raw.templates.is_empty() {
            self.problem(
                "templates",
                "templates write files to `output.dir`: a config without an `output` section cannot have them",
            );
        }
        let output = raw.output.flatten().and_then(|o| self.output(o));
        let default_mode = output.as_ref().map_or(0o400, |o| o.mode);
        let mut secrets = Vec::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        let mut seen_files: HashMap<String, String> = HashMap::new();
        for (i, s) in raw.secrets.into_iter().enumerate() {
            let Some(secret) = s.and_then(|s| self.secret(i, s, &sources, default_mode)) else {
                continue;
            };
            if let Some(first) = seen_names.insert(secret.name.clone(), i) {
                self.problem(
                    format!("secrets[{i}].name"),
                    format!(
                        "duplicate secret name `{}` (also secrets[{first}])",
                        secret.name
                    ),
                );
            }
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
        if secrets.is_empty() && self.problems.is_empty() && !raw.injector {
            self.problem("secrets", "at least one secret is required");
        }
        let templates = self.templates(raw.templates, &secrets, default_mode, &seen_files);
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
    fn path(&mut self, at: &str, p: PathBuf) -> PathBuf {
        match home::expand(&p, self.home.as_deref()) {
            Ok(p) => self.base.join(p),
            Err(why) => {
                self.problem(at, why);
                p
            }
        }
    }

    fn duration(&mut self, at: &str, s: Option<&str>, default: Duration) -> Option<Duration> {
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

    /// Whether exactly one of `keys` (each with whether it is given) is
    /// given; records a problem at `at` naming them all when not.
    fn exactly_one(&mut self, at: &str, keys: &[(&str, bool)]) -> bool {
        if keys.iter().filter(|(_, given)| *given).count() == 1 {
            return true;
        }
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        self.problem(at, one_of(&names));
        false
    }
}

/// The problem of a mapping that needs exactly one of `keys`:
/// "needs exactly one of `a`, `b` or `c`".
fn one_of(keys: &[&str]) -> String {
    let mut text = "needs exactly one of ".to_owned();
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

fn clean_mount(m: &str) -> String {
    m.trim_matches('/').to_owned()
}

/// A file name relative to the output directory: no absolute path, no `..`,
/// no `.` segments, no NUL, no empty segments.
fn check_relative(file: &str) -> std::result::Result<(), &'static str> {
    if file.is_empty() {
        return Err("must not be empty");
    }
    if file.contains('\0') {
        return Err("must not contain NUL");
    }
    let p = Path::new(file);
    if p.is_absolute() {
        return Err("must be relative to output.dir, not absolute");
    }
    if file.ends_with('/') || file.contains("//") {
        return Err("must name a file, with no empty segment");
    }
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("must not contain `..`"),
            _ => return Err("must not contain `.` segments"),
        }
    }
    if file.split('/').any(|seg| seg == ".") {
        return Err("must not contain `.` segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests;

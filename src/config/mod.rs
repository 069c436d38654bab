//! Configuration: the YAML file is parsed raw ([`raw`]), then validated into the
//! types below. Every problem is collected and reported at once, each with its
//! key path and, where the text has one, its line and column.

mod auth;
pub mod duration;
mod home;
pub mod inject;
mod marks;
mod plan;
pub mod raw;
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

/// Largest config file read.
const MAX_SIZE: u64 = 1 << 20;
pub use raw::Format;
use raw::{RawAuth, RawAws, RawConfig, RawOutput, RawSecret, RawSource, RawTemplate, RawVault};
pub use templates::Template;

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

/// The local credential proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// The token file.
    pub token_file: PathBuf,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Sidecar refresh schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refresh {
    /// Poll interval of static secrets.
    pub interval: Duration,
    /// Fraction of a lease or certificate lifetime at which to renew, in (0, 1).
    pub renew_at: f64,
}

/// What `exec` mode does on a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildOnChange {
    /// TERM, KILL after the grace period, start again.
    Restart,
    /// Send this signal.
    Signal(Signal),
}

/// `exec` mode settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    /// What to do on a change.
    pub on_change: ChildOnChange,
    /// Time between TERM and KILL.
    pub grace: Duration,
}

/// A signal, by its number.
pub type Signal = rustix::process::Signal;

/// An `on_change` action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Signal a process.
    Signal {
        /// Which process.
        target: SignalTarget,
        /// Which signal.
        signal: Signal,
    },
    /// Run a command.
    Exec {
        /// argv.
        argv: Vec<String>,
        /// Time limit.
        timeout: Duration,
    },
    /// POST to a URL.
    Http {
        /// URL.
        url: reqwest::Url,
        /// Time limit.
        timeout: Duration,
    },
}

/// How a signal finds its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalTarget {
    /// The pid in this file.
    PidFile(PathBuf),
    /// Every process with this name.
    Process(String),
}

/// A named backend.
#[derive(Debug)]
pub struct Source {
    /// Name that secrets refer to.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// The kinds of backend.
#[derive(Debug)]
pub enum SourceKind {
    /// Vault or OpenBao.
    Vault(Box<Vault>),
    /// AWS Secrets Manager.
    AwsSecretsManager(Aws),
    /// A local YAML file.
    File {
        /// Absolute or relative to the working directory (resolved from the config's directory).
        path: PathBuf,
    },
}

/// Settings of a Vault source.
#[derive(Clone, Debug)]
pub struct Vault {
    /// Server URL.
    pub address: reqwest::Url,
    /// Extra CA bundle.
    pub ca_cert: Option<PathBuf>,
    /// Namespace header.
    pub namespace: Option<String>,
    /// Login method.
    pub auth: Auth,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Revoke leases on shutdown.
    pub revoke_on_exit: bool,
}

/// Settings of an AWS Secrets Manager source; what is absent comes from the
/// SDK's default chain (environment, profile, web identity, container, IMDS).
#[derive(Clone, Debug, Default)]
pub struct Aws {
    /// Region.
    pub region: Option<String>,
    /// Named profile.
    pub profile: Option<String>,
    /// Secrets Manager endpoint override.
    pub endpoint: Option<reqwest::Url>,
}

/// The staging label of the current version of an AWS secret.
pub const AWS_CURRENT: &str = "AWSCURRENT";
/// The staging label of the version before the current one.
pub const AWS_PREVIOUS: &str = "AWSPREVIOUS";

/// Which version of an AWS secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsVersion {
    /// The version carrying a staging label (`AWSCURRENT`, `AWSPENDING`, …).
    Stage(String),
    /// One exact version id.
    Id(String),
}

impl AwsVersion {
    /// True for `AWSCURRENT`, the version BatchGetSecretValue returns.
    pub fn is_current(&self) -> bool {
        matches!(self, AwsVersion::Stage(s) if s == AWS_CURRENT)
    }
}

/// Vault login methods.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A token read from a file.
    TokenFile(PathBuf),
    /// AppRole.
    AppRole {
        /// Auth mount.
        mount: String,
        /// File with the role id.
        role_id_file: PathBuf,
        /// File with the secret id.
        secret_id_file: PathBuf,
    },
    /// Kubernetes service-account JWT.
    Kubernetes(RoleLogin),
    /// Any JWT.
    Jwt(RoleLogin),
    /// AWS IAM: a signed sts:GetCallerIdentity.
    Aws(AwsLogin),
    /// A TLS client certificate.
    Cert(CertLogin),
}

/// A role-based JWT login.
#[derive(Clone, Debug)]
pub struct RoleLogin {
    /// Auth mount.
    pub mount: String,
    /// Role.
    pub role: String,
    /// File holding the JWT.
    pub token_file: PathBuf,
}

/// The output directory.
#[derive(Debug)]
pub struct Output {
    /// Directory path.
    pub dir: PathBuf,
    /// Default mode.
    pub mode: u32,
    /// Owner `(uid, gid)`.
    pub owner: Option<(u32, u32)>,
    /// Allow a disk-backed directory.
    pub allow_disk: bool,
    /// Hand-off state of `init` for the sidecar; `None`: no hand-off.
    pub state_dir: Option<PathBuf>,
    /// Remove written files when the sidecar stops.
    pub wipe_on_exit: bool,
}

/// A validated secret.
#[derive(Debug)]
pub struct Secret {
    /// Unique name.
    pub name: String,
    /// Index into [`Config::sources`].
    pub source: usize,
    /// What to read.
    pub address: Address,
    /// File name relative to the output directory (the base name for PKI files).
    pub file: String,
    /// How to render it.
    pub format: Format,
    /// One field to write raw.
    pub key: Option<String>,
    /// Template text (format `template`).
    pub template: Option<String>,
    /// File mode.
    pub mode: u32,
    /// Poll interval override.
    pub refresh: Option<Duration>,
    /// Actions after a change.
    pub on_change: Vec<Action>,
    /// Whether it writes files of its own (`write: false`: for templates only).
    pub write: bool,
}

/// KV engine versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvVersion {
    /// KV v1.
    V1,
    /// KV v2.
    V2,
}

/// What a secret reads from its source. The address is its own identity:
/// two secrets read the same thing exactly when their addresses are equal,
/// and the hand-off state stores it as data (`{"read": "db/creds/app"}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    /// A KV secret.
    Kv {
        /// Mount, without slashes at either end.
        mount: String,
        /// Path under the mount.
        path: String,
        /// Forced engine version.
        kv_version: Option<KvVersion>,
        /// Pinned v2 version.
        version: Option<u64>,
    },
    /// Any logical read.
    Read(String),
    /// A PKI certificate.
    Pki {
        /// Mount.
        mount: String,
        /// Role.
        role: String,
        /// Common name.
        common_name: String,
        /// Requested TTL.
        ttl: Option<Duration>,
        /// DNS SANs.
        alt_names: Vec<String>,
        /// IP SANs.
        ip_sans: Vec<String>,
    },
    /// An AWS Secrets Manager secret (name or ARN).
    SecretId {
        /// Name or ARN.
        id: String,
        /// Which version (default: stage `AWSCURRENT`).
        version: AwsVersion,
        /// Also write `AWSPREVIOUS` to `<file>.previous`.
        previous: bool,
    },
}

impl Address {
    /// The address as the `file` source keys it, and as logs name it.
    pub fn key(&self) -> String {
        match self {
            Address::Kv { mount, path, .. } => format!("{mount}/{path}"),
            Address::Read(path) => path.clone(),
            Address::Pki { mount, role, .. } => format!("{mount}/issue/{role}"),
            Address::SecretId { id, .. } => id.clone(),
        }
    }
}

impl SourceKind {
    /// What kind of backend this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            SourceKind::Vault(_) => "Vault",
            SourceKind::AwsSecretsManager(_) => "AWS Secrets Manager",
            SourceKind::File { .. } => "a file",
        }
    }
}

impl Source {
    /// How long the sidecar gives one refresh of one secret, retries included.
    pub fn request_budget(&self) -> Duration {
        match &self.kind {
            SourceKind::Vault(v) => v.connect_timeout + v.request_timeout * 2,
            SourceKind::AwsSecretsManager(_) => Duration::from_secs(65),
            SourceKind::File { .. } => Duration::from_secs(10),
        }
    }

    /// Whether leases from this source are revoked when the sidecar stops.
    pub fn revoke_on_exit(&self) -> bool {
        matches!(&self.kind, SourceKind::Vault(v) if v.revoke_on_exit)
    }
}

impl Secret {
    /// The files this secret writes, relative to the output directory.
    pub fn files(&self) -> Vec<String> {
        if !self.write {
            return Vec::new();
        }
        match self.address {
            Address::Pki { .. } => ["crt", "key", "ca.crt"]
                .iter()
                .map(|ext| format!("{}.{ext}", self.file))
                .collect(),
            Address::SecretId { previous: true, .. } => {
                vec![self.file.clone(), previous_file(&self.file)]
            }
            _ => vec![self.file.clone()],
        }
    }
}

/// Where the `AWSPREVIOUS` version of a secret written to `file` goes.
pub fn previous_file(file: &str) -> String {
    format!("{file}.previous")
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

/// Top-level keys of [`RawConfig`], for reporting unknown ones alongside other problems.
const TOP_KEYS: &[&str] = &[
    "sources",
    "output",
    "mlock",
    "refresh",
    "health",
    "exec",
    "proxy",
    "secrets",
    "templates",
    "inject",
];

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
        for key in top.keys() {
            match key.as_str() {
                Some(k) if TOP_KEYS.contains(&k) => {}
                Some(k) => self.problem(
                    k,
                    format!("unknown key `{k}`, expected one of {}", TOP_KEYS.join(", ")),
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

    fn source(&mut self, i: usize, s: RawSource) -> Option<Source> {
        let at = format!("sources[{i}]");
        let name = match s.name {
            Some(n) if n.trim().is_empty() => {
                self.problem(format!("{at}.name"), "must not be empty");
                return None;
            }
            Some(n) => n,
            None if s.vault.is_some() => "vault".into(),
            None if s.aws_secrets_manager.is_some() => "aws".into(),
            None => "file".into(),
        };
        let kind = match (s.vault, s.aws_secrets_manager, s.file) {
            (Some(v), None, None) => {
                SourceKind::Vault(Box::new(self.vault(&format!("{at}.vault"), v)?))
            }
            (None, Some(a), None) => {
                SourceKind::AwsSecretsManager(self.aws(&format!("{at}.aws_secrets_manager"), a)?)
            }
            (None, None, Some(f)) => SourceKind::File {
                path: self.path(&format!("{at}.file.path"), f.path),
            },
            _ => {
                self.problem(
                    at,
                    "needs exactly one of `vault`, `aws_secrets_manager` or `file`",
                );
                return None;
            }
        };
        Some(Source { name, kind })
    }

    fn vault(&mut self, at: &str, v: RawVault) -> Option<Vault> {
        let address = match reqwest::Url::parse(&v.address) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problem(
                    format!("{at}.address"),
                    "must be an http:// or https:// URL with a host",
                );
                None
            }
            Err(e) => {
                self.problem(format!("{at}.address"), format!("not a URL: {e}"));
                None
            }
        };
        let connect_timeout = self.duration(
            &format!("{at}.connect_timeout"),
            v.connect_timeout.as_deref(),
            Duration::from_secs(5),
        );
        let request_timeout = self.duration(
            &format!("{at}.request_timeout"),
            v.request_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let auth = self.auth(&format!("{at}.auth"), v.auth);
        if let (Some(Auth::Cert(_)), Some(a)) = (&auth, &address) {
            if a.scheme() != "https" {
                self.problem(
                    format!("{at}.auth.cert"),
                    "needs an https:// address: the client certificate is sent in the TLS handshake",
                );
            }
        }
        if let Some(ns) = &v.namespace {
            if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_graphic()) {
                self.problem(
                    format!("{at}.namespace"),
                    "must be non-empty printable ASCII",
                );
            }
        }
        Some(Vault {
            address: address?,
            ca_cert: v.ca_cert.map(|p| self.path(&format!("{at}.ca_cert"), p)),
            namespace: v.namespace,
            auth: auth?,
            connect_timeout: connect_timeout?,
            request_timeout: request_timeout?,
            revoke_on_exit: v.revoke_on_exit,
        })
    }

    fn aws(&mut self, at: &str, a: RawAws) -> Option<Aws> {
        let before = self.problems.len();
        if let Some(r) = &a.region {
            self.region(&format!("{at}.region"), r);
        }
        if let Some(p) = &a.profile {
            if p.trim().is_empty() {
                self.problem(format!("{at}.profile"), "must not be empty");
            }
        }
        let endpoint = match a.endpoint.as_deref().map(reqwest::Url::parse) {
            None => None,
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Some(Ok(_)) => {
                self.problem(
                    format!("{at}.endpoint"),
                    "must be an http:// or https:// URL with a host",
                );
                None
            }
            Some(Err(e)) => {
                self.problem(format!("{at}.endpoint"), format!("not a URL: {e}"));
                None
            }
        };
        if self.problems.len() != before {
            return None;
        }
        Some(Aws {
            region: a.region,
            profile: a.profile,
            endpoint,
        })
    }

    fn auth(&mut self, at: &str, a: RawAuth) -> Option<Auth> {
        let given = [
            a.token_file.is_some(),
            a.approle.is_some(),
            a.kubernetes.is_some(),
            a.jwt.is_some(),
            a.aws.is_some(),
            a.cert.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            self.problem(
                at,
                "needs exactly one of `token_file`, `approle`, `kubernetes`, `jwt`, `aws` or `cert`",
            );
            return None;
        }
        let login = |this: &mut Self, r: raw::RawRoleLogin, mount: &str, token: Option<&str>| {
            let file = r
                .token_file
                .or(token.map(PathBuf::from))
                .unwrap_or_default();
            RoleLogin {
                mount: clean_mount(r.mount.as_deref().unwrap_or(mount)),
                role: r.role,
                token_file: this.path(&format!("{at}.{mount}.token_file"), file),
            }
        };
        if let Some(f) = a.token_file {
            Some(Auth::TokenFile(self.path(&format!("{at}.token_file"), f)))
        } else if let Some(r) = a.approle {
            Some(Auth::AppRole {
                mount: clean_mount(r.mount.as_deref().unwrap_or("approle")),
                role_id_file: self.path(&format!("{at}.approle.role_id_file"), r.role_id_file),
                secret_id_file: self
                    .path(&format!("{at}.approle.secret_id_file"), r.secret_id_file),
            })
        } else if let Some(k) = a.kubernetes {
            Some(Auth::Kubernetes(login(
                self,
                k,
                "kubernetes",
                Some(SERVICE_ACCOUNT_TOKEN),
            )))
        } else if let Some(j) = a.jwt {
            if j.token_file.is_none() {
                self.problem(format!("{at}.jwt.token_file"), "missing: the JWT file");
                return None;
            }
            Some(Auth::Jwt(login(self, j, "jwt", None)))
        } else if let Some(l) = a.aws {
            self.aws_login(&format!("{at}.aws"), l)
        } else {
            a.cert.map(|l| self.cert_login(&format!("{at}.cert"), l))
        }
    }

    fn output(&mut self, o: RawOutput) -> Option<Output> {
        let mode = self.mode("output.mode", o.mode.as_deref(), 0o400);
        let owner = match o.owner.as_deref() {
            None => Some(None),
            Some(s) => match s.split_once(':').map(|(u, g)| (u.parse(), g.parse())) {
                Some((Ok(u), Ok(g))) => Some(Some((u, g))),
                _ => {
                    self.problem("output.owner", format!("`{s}` is not numeric `uid:gid`"));
                    None
                }
            },
        };
        if o.dir.as_os_str().is_empty() {
            self.problem("output.dir", "must not be empty");
        }
        if owner == Some(Some((u32::MAX, u32::MAX))) {
            self.problem("output.owner", "-1 is not an owner");
        }
        let dir = self.path("output.dir", o.dir);
        let state_dir = o.state_dir.map(|p| self.path("output.state_dir", p));
        if let Some(state) = &state_dir {
            if within(state, &dir) {
                self.problem(
                    "output.state_dir",
                    format!(
                        "{} is inside output.dir {}, which the app reads: the token and leases kept there would be the app's to take; give output.state_dir its own volume",
                        state.display(),
                        dir.display()
                    ),
                );
            }
        }
        Some(Output {
            dir,
            mode: mode?,
            owner: owner?,
            allow_disk: o.allow_disk,
            state_dir,
            wipe_on_exit: o.wipe_on_exit,
        })
    }

    fn secret(
        &mut self,
        i: usize,
        s: RawSecret,
        sources: &[Source],
        default_mode: u32,
    ) -> Option<Secret> {
        let at = format!("secrets[{i}]");
        let before = self.problems.len();
        if s.name.is_empty() || s.name.contains(['/', '\0']) {
            self.problem(
                format!("{at}.name"),
                "must be non-empty, without `/` or NUL",
            );
        }
        let source = match s.source.as_deref() {
            Some(name) => sources.iter().position(|x| x.name == name).or_else(|| {
                let known: Vec<_> = sources.iter().map(|x| x.name.as_str()).collect();
                self.problem(
                    format!("{at}.source"),
                    format!("undefined source `{name}` (sources: {})", known.join(", ")),
                );
                None
            }),
            None if sources.len() == 1 => Some(0),
            None => {
                self.problem(
                    format!("{at}.source"),
                    "missing: required when there is more than one source",
                );
                None
            }
        };
        let address = self.address(&at, &s);
        let write = s.write.unwrap_or(true);
        if !write {
            self.unwritten(&at, &s);
        }
        let template_key = if s.template_file.is_some() {
            "template_file"
        } else {
            "template"
        };
        let template = self.template_text(&at, s.template.clone(), s.template_file.clone());
        let format = match (s.format, &s.key, &template) {
            (Some(f), _, _) => f,
            (None, Some(_), _) => Format::Raw,
            (None, None, Some(_)) => Format::Template,
            // An AWS secret is one stored value: written as it is by default.
            (None, None, None)
                if source.is_some_and(|i| {
                    matches!(sources[i].kind, SourceKind::AwsSecretsManager(_))
                }) =>
            {
                Format::Raw
            }
            (None, None, None) => Format::Json,
        };
        if s.key.is_some() && format != Format::Raw {
            self.problem(
                format!("{at}.key"),
                format!(
                    "`key` writes one field raw; it cannot be used with format {}",
                    format.name()
                ),
            );
        }
        match (&template, format) {
            (Some(t), Format::Template) => {
                if let Err(e) = crate::render::check_template(t) {
                    self.problem(format!("{at}.{template_key}"), e.to_string());
                }
            }
            (None, Format::Template) => self.problem(
                format!("{at}.template"),
                "missing: format template needs one",
            ),
            (Some(_), _) => self.problem(
                format!("{at}.{template_key}"),
                "only used with `format: template`",
            ),
            (None, _) => {}
        }
        if matches!(address, Some(Address::Pki { .. }))
            && (s.format.is_some() || s.key.is_some() || template.is_some())
        {
            self.problem(
                at.clone(),
                "a `pki` secret writes <file>.crt, <file>.key and <file>.ca.crt: `format`, `key` and `template` do not apply",
            );
        }
        if let Some(src) = source {
            self.fits_source(&at, &s, &sources[src]);
        }
        let file = s.file.unwrap_or_else(|| s.name.clone());
        if let Err(why) = check_relative(&file) {
            self.problem(
                format!("{at}.file"),
                format!("`{}`: {why}", file.escape_debug()),
            );
        }
        let mode = self.mode(&format!("{at}.mode"), s.mode.as_deref(), default_mode);
        let refresh = match &s.refresh {
            Some(r) => self.duration(&format!("{at}.refresh"), Some(r), Duration::ZERO),
            None => None,
        };
        let on_change: Vec<Action> = s
            .on_change
            .into_iter()
            .enumerate()
            .filter_map(|(j, a)| self.action(&format!("{at}.on_change[{j}]"), a))
            .collect();
        if self.problems.len() != before {
            return None;
        }
        Some(Secret {
            name: s.name,
            source: source?,
            address: address?,
            file,
            format,
            key: s.key,
            template,
            mode: mode?,
            refresh,
            on_change,
            write,
        })
    }

    /// Keys a secret may only use with some kinds of source: `secret_id` not
    /// with Vault; the AWS version keys only with AWS; AWS only with `secret_id`.
    /// The `file` source stands in for any backend, except for AWS versions.
    fn fits_source(&mut self, at: &str, s: &RawSecret, source: &Source) {
        let name = &source.name;
        let aws_keys = [
            ("version_stage", s.version_stage.is_some()),
            ("version_id", s.version_id.is_some()),
            ("previous", s.previous.is_some()),
        ];
        match &source.kind {
            SourceKind::Vault(_) => {
                if s.secret_id.is_some() {
                    self.problem(
                        format!("{at}.secret_id"),
                        format!("source `{name}` is Vault: use `kv`, `read` or `pki`"),
                    );
                }
            }
            SourceKind::AwsSecretsManager(_) => {
                for (key, given) in [
                    ("kv", s.kv.is_some()),
                    ("read", s.read.is_some()),
                    ("pki", s.pki.is_some()),
                ] {
                    if given {
                        self.problem(
                            format!("{at}.{key}"),
                            format!("source `{name}` is AWS Secrets Manager: use `secret_id`"),
                        );
                    }
                }
                return;
            }
            SourceKind::File { .. } => {}
        }
        for (key, given) in aws_keys {
            if given {
                self.problem(
                    format!("{at}.{key}"),
                    format!(
                        "only an `aws_secrets_manager` source has versions; source `{name}` is {}",
                        source.kind.describe()
                    ),
                );
            }
        }
    }

    fn address(&mut self, at: &str, s: &RawSecret) -> Option<Address> {
        let given = [
            s.kv.is_some(),
            s.read.is_some(),
            s.pki.is_some(),
            s.secret_id.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            self.problem(
                at,
                "needs exactly one of `kv`, `read`, `pki` or `secret_id`",
            );
            return None;
        }
        if let Some(kv) = &s.kv {
            let kv_version = match kv.kv_version {
                None => None,
                Some(1) => Some(KvVersion::V1),
                Some(2) => Some(KvVersion::V2),
                Some(n) => {
                    self.problem(format!("{at}.kv.kv_version"), format!("{n} is not 1 or 2"));
                    return None;
                }
            };
            if kv.version.is_some() && kv_version == Some(KvVersion::V1) {
                self.problem(format!("{at}.kv.version"), "KV v1 has no versions");
            }
            let mount = clean_mount(&kv.mount);
            let path = kv.path.trim_matches('/').to_owned();
            self.vault_path(&format!("{at}.kv.mount"), &mount);
            self.vault_path(&format!("{at}.kv.path"), &path);
            return Some(Address::Kv {
                mount,
                path,
                kv_version,
                version: kv.version,
            });
        }
        if let Some(read) = &s.read {
            let path = read.trim_matches('/').to_owned();
            self.vault_path(&format!("{at}.read"), &path);
            return Some(Address::Read(path));
        }
        if let Some(p) = &s.pki {
            let ttl = match &p.ttl {
                Some(t) => {
                    Some(self.duration(&format!("{at}.pki.ttl"), Some(t), Duration::ZERO)?)
                }
                None => None,
            };
            let mount = clean_mount(&p.mount);
            self.vault_path(&format!("{at}.pki.mount"), &mount);
            self.vault_path(&format!("{at}.pki.role"), &p.role);
            return Some(Address::Pki {
                mount,
                role: p.role.clone(),
                common_name: p.common_name.clone(),
                ttl,
                alt_names: p.alt_names.clone(),
                ip_sans: p.ip_sans.clone(),
            });
        }
        let id = s.secret_id.clone().unwrap_or_default();
        if id.is_empty() {
            self.problem(format!("{at}.secret_id"), "must not be empty");
        }
        let version = match (&s.version_stage, &s.version_id) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{at}.version_id"),
                    "cannot be used with `version_stage`: give one or the other",
                );
                return None;
            }
            (Some(stage), None) => AwsVersion::Stage(stage.clone()),
            (None, Some(id)) => AwsVersion::Id(id.clone()),
            (None, None) => AwsVersion::Stage(AWS_CURRENT.into()),
        };
        let (key, value) = match &version {
            AwsVersion::Stage(v) => ("version_stage", v),
            AwsVersion::Id(v) => ("version_id", v),
        };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            self.problem(format!("{at}.{key}"), "must be non-empty printable ASCII");
        }
        let previous = s.previous.unwrap_or(false);
        if previous && !version.is_current() {
            self.problem(
                format!("{at}.previous"),
                format!("writes {AWS_PREVIOUS} beside {AWS_CURRENT}: it cannot be used with `{key}: {value}`"),
            );
        }
        Some(Address::SecretId {
            id,
            version,
            previous,
        })
    }

    fn refresh(&mut self, r: Option<raw::RawRefresh>) -> Refresh {
        let r = r.unwrap_or(raw::RawRefresh {
            interval: None,
            renew_at: None,
        });
        let interval = self
            .duration(
                "refresh.interval",
                r.interval.as_deref(),
                Duration::from_secs(300),
            )
            .unwrap_or(Duration::from_secs(300));
        let renew_at = r.renew_at.unwrap_or(0.67);
        if !(renew_at > 0.0 && renew_at < 1.0) {
            self.problem(
                "refresh.renew_at",
                format!("{renew_at} is not a fraction between 0 and 1"),
            );
        }
        Refresh { interval, renew_at }
    }

    fn proxy(&mut self, p: raw::RawProxy) -> Option<Proxy> {
        let text = p.listen.as_deref().unwrap_or("127.0.0.1:2773");
        let Ok(listen) = text.parse::<std::net::SocketAddr>() else {
            self.problem(
                "proxy.listen",
                format!("`{text}` is not an address like 127.0.0.1:2773"),
            );
            return None;
        };
        if !listen.ip().is_loopback() && !p.allow_remote {
            self.problem(
                "proxy.listen",
                format!("{listen} is not a loopback address: other hosts could read secrets; set proxy.allow_remote: true to allow it"),
            );
            return None;
        }
        let max_connections = p.max_connections.unwrap_or(800);
        if max_connections == 0 {
            self.problem("proxy.max_connections", "must be at least 1");
            return None;
        }
        Some(Proxy {
            listen,
            token_file: self.path("proxy.token_file", p.token_file),
            max_connections,
        })
    }

    fn exec(&mut self, e: Option<raw::RawExec>) -> Exec {
        let e = e.unwrap_or(raw::RawExec {
            on_change: None,
            grace: None,
        });
        let grace = self
            .duration("exec.grace", e.grace.as_deref(), Duration::from_secs(10))
            .unwrap_or(Duration::from_secs(10));
        let on_change = match e.on_change.as_deref() {
            None | Some("restart") => ChildOnChange::Restart,
            Some(name) => match parse_signal(name) {
                Some(sig) => ChildOnChange::Signal(sig),
                None => {
                    self.problem(
                        "exec.on_change",
                        format!("`{name}` is neither `restart` nor a signal name such as HUP"),
                    );
                    ChildOnChange::Restart
                }
            },
        };
        Exec { on_change, grace }
    }

    fn action(&mut self, at: &str, a: raw::RawAction) -> Option<Action> {
        let timeout = self.duration(
            &format!("{at}.timeout"),
            a.timeout.as_deref(),
            Duration::from_secs(30),
        )?;
        match (a.signal, a.exec, a.http) {
            (Some(s), None, None) => {
                let Some(signal) = parse_signal(&s.signal) else {
                    self.problem(
                        format!("{at}.signal.signal"),
                        format!("`{}` is not a signal name such as HUP", s.signal),
                    );
                    return None;
                };
                let target = match (s.pid_file, s.process) {
                    (Some(p), None) => {
                        SignalTarget::PidFile(self.path(&format!("{at}.signal.pid_file"), p))
                    }
                    (None, Some(n)) if !n.is_empty() => SignalTarget::Process(n),
                    _ => {
                        self.problem(
                            format!("{at}.signal"),
                            "needs exactly one of `pid_file` or `process`",
                        );
                        return None;
                    }
                };
                Some(Action::Signal { target, signal })
            }
            (None, Some(argv), None) => {
                if argv.is_empty() || argv[0].is_empty() {
                    self.problem(
                        format!("{at}.exec"),
                        "needs a command: [\"/bin/cmd\", \"arg\", …]",
                    );
                    return None;
                }
                Some(Action::Exec { argv, timeout })
            }
            (None, None, Some(h)) => match reqwest::Url::parse(&h.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    Some(Action::Http { url, timeout })
                }
                _ => {
                    self.problem(
                        format!("{at}.http.url"),
                        format!("`{}` is not an http(s) URL", h.url),
                    );
                    None
                }
            },
            _ => {
                self.problem(at, "needs exactly one of `signal`, `exec` or `http`");
                None
            }
        }
    }

    /// A Vault path must be non-empty and made of plain segments.
    fn vault_path(&mut self, at: &str, p: &str) {
        let bad = p.is_empty()
            || p.split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
            || p.chars().any(|c| c.is_control() || c == '?' || c == '#');
        if bad {
            self.problem(
                at,
                format!("`{}` is not a plain Vault path", p.escape_debug()),
            );
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
}

/// The signals a config may name, by their names without `SIG`.
const SIGNALS: [(&str, Signal); 9] = [
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("TERM", Signal::TERM),
    ("KILL", Signal::KILL),
    ("WINCH", Signal::WINCH),
    ("ALRM", Signal::ALARM),
];

/// A signal by name, with or without `SIG`: HUP, INT, QUIT, USR1, USR2, TERM, KILL, WINCH, ALRM.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A signal's name as a user writes it, e.g. `HUP`.
pub fn signal_name(signal: Signal) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, s)| *s == signal)
        .map_or("a signal", |(n, _)| n)
}

/// Whether `inner` is `outer` or lies under it: by the paths as written
/// (`.` and `..` resolved), and by the real paths when both exist.
fn within(inner: &Path, outer: &Path) -> bool {
    fn lexical(p: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }
    if lexical(inner).starts_with(lexical(outer)) {
        return true;
    }
    matches!(
        (inner.canonicalize(), outer.canonicalize()),
        (Ok(i), Ok(o)) if i.starts_with(&o)
    )
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

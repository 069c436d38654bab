//! The `secrets:` section, as written and validated: what each secret reads
//! (its [`Address`]), from which source, and the files it writes, in which
//! [`Format`].

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::{one_of, one_of_schema, DurationText, ModeText, OneOf};
use super::sidecar::RawAction;
use super::{
    check_relative, clean_mount, either, Action, AwsVersion, Source, SourceKind, Validator,
    AWS_CURRENT, AWS_PREVIOUS,
};
use crate::source::{Parameter, ParameterKeys};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One field's bytes, unchanged; for an AWS secret without `key`, its
    /// SecretString or SecretBinary exactly as stored.
    Raw,
    /// A JSON object of all fields.
    Json,
    /// `KEY='value'` lines (double-quoted with escapes when the value needs it).
    Dotenv,
    /// `export KEY='value'` lines, safe to `source`.
    Env,
    /// A YAML mapping of all fields.
    Yaml,
    /// A minijinja template over the fields.
    Template,
    /// A Vault Agent template (Go `text/template`, the consul-template subset
    /// vault-k8s pods use) over a `read:`, whose path is read as Vault Agent
    /// reads it: on a KV v2 mount (found as `vault kv` finds it) `data/` is
    /// put after the mount unless the path has it.
    #[serde(rename = "go-template")]
    GoTemplate,
}

impl Format {
    /// The name the config uses, e.g. `json`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Env => "env",
            Format::Yaml => "yaml",
            Format::Template => "template",
            Format::GoTemplate => "go-template",
        }
    }
}

/// One secret. Exactly one of `kv`, `read`, `pki`, `secret_id`, `parameter`
/// or `parameters_by_path`; not both
/// `template` and `template_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
#[schemars(extend("not" = {"required": ["template", "template_file"]}))]
pub struct RawSecret {
    /// Unique name, without `/` or NUL; the default file name.
    pub name: String,
    /// The source to read from; optional when there is one source.
    pub source: Option<String>,
    /// A KV v1 or v2 secret.
    pub kv: Option<RawKv>,
    /// Any logical read, e.g. `database/creds/app`.
    pub read: Option<String>,
    /// A certificate issued by a PKI role: writes `<file>.crt`, `<file>.key` and
    /// `<file>.ca.crt`, and takes no `format`, `key` or `template`.
    pub pki: Option<RawPki>,
    /// An AWS Secrets Manager secret id (served by the `file` source locally).
    pub secret_id: Option<String>,
    /// AWS: the staging label to read (default `AWSCURRENT`).
    pub version_stage: Option<String>,
    /// AWS: one exact version to read (instead of `version_stage`).
    pub version_id: Option<String>,
    /// AWS: also write the `AWSPREVIOUS` version to `<file>.previous`, so apps that rotate
    /// between two users can fall back during the window.
    pub previous: Option<bool>,
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
    /// File name relative to `output.dir` (default: the secret's name): not absolute, no
    /// `..`, `.` or empty segments, no NUL. Subdirectories are created as needed without
    /// following symlinks. No two secrets may write the same file.
    pub file: Option<String>,
    /// Output format (default: `raw` with `key`, `template` with `template`,
    /// `raw` for an AWS secret (its value as stored), else `json`).
    pub format: Option<Format>,
    /// Write only this field, raw (implies `format: raw`).
    pub key: Option<String>,
    /// minijinja template over the fields; a missing field is an error.
    pub template: Option<String>,
    /// A file holding the template, relative to the config file (instead of `template`);
    /// the sidecar watches it like the config.
    pub template_file: Option<PathBuf>,
    /// `false`: fetched and kept fresh for templates (and the proxy), never written on its
    /// own; it then takes no `file`, `format`, `key`, `template`, `template_file`, `mode` or
    /// `on_change`.
    pub write: Option<bool>,
    /// File mode, an octal string (default: `output.mode`).
    pub mode: Option<ModeText>,
    /// `env` and `dotenv`: also write fields whose names set a variable that changes what
    /// a program loads or runs (`PATH`, `LD_PRELOAD`, `BASH_ENV`, `NODE_OPTIONS`, …),
    /// which are refused otherwise, naming the field.
    #[serde(default)]
    pub allow_exec_variables: bool,
    /// Poll interval of this secret, overriding `refresh.interval`.
    pub refresh: Option<DurationText>,
    /// What to do after this secret's files changed, once per change, after all files of
    /// the round are written. Failures are logged and counted, never retried.
    #[serde(default)]
    pub on_change: Vec<RawAction>,
}

one_of!(RawSecret: kv, read, pki, secret_id, parameter, parameters_by_path);

/// A KV secret.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKv {
    /// The KV mount, e.g. `secret`.
    pub mount: String,
    /// Path under the mount.
    pub path: String,
    /// 1 or 2; detected from the mount when absent.
    pub kv_version: Option<u8>,
    /// Pin a KV v2 version.
    pub version: Option<u64>,
}

/// A PKI certificate request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPki {
    /// The PKI mount, e.g. `pki`.
    pub mount: String,
    /// The role to issue from.
    pub role: String,
    /// Certificate common name.
    pub common_name: String,
    /// Requested lifetime, e.g. `24h`.
    pub ttl: Option<DurationText>,
    /// Subject alternative DNS names.
    #[serde(default)]
    pub alt_names: Vec<String>,
    /// Subject alternative IP addresses.
    #[serde(default)]
    pub ip_sans: Vec<String>,
}

/// A validated secret.
#[derive(Debug)]
pub struct Secret {
    /// Unique name.
    pub name: String,
    /// Index into [`Config::sources`](super::Config::sources).
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
    /// `env` and `dotenv` write fields named like `PATH` or `LD_PRELOAD` too.
    pub allow_exec_variables: bool,
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
    /// AWS Systems Manager Parameter Store: one parameter, or a path.
    Parameter(Parameter),
}

/// The fields a certificate must have, and the file suffix each goes to.
const CERTIFICATE_FILES: [(&str, &str); 3] = [
    ("certificate", "crt"),
    ("private_key", "key"),
    ("ca_chain", "ca.crt"),
];

impl Address {
    /// The config key that gives this kind of address: `kv`, `read`, `pki`,
    /// `secret_id`, `parameter` or `parameters_by_path`.
    pub fn kind(&self) -> &'static str {
        match self {
            Address::Kv { .. } => "kv",
            Address::Read(_) => "read",
            Address::Pki { .. } => "pki",
            Address::SecretId { .. } => "secret_id",
            Address::Parameter(p) => p.kind(),
        }
    }

    /// Whether each read mints new credentials (a lease or a certificate): a
    /// held value is kept until it runs out, never read again on demand.
    pub fn mints(&self) -> bool {
        matches!(self, Address::Read(_) | Address::Pki { .. })
    }

    /// The path of a logical read: what its lease ids start with, and what
    /// Vault Agent templates (`go-template`) render the answer of.
    pub fn read_path(&self) -> Option<&str> {
        match self {
            Address::Read(path) => Some(path),
            _ => None,
        }
    }

    /// For an address that writes one file per field (a certificate's PEM
    /// files), each field with the suffix of its file; `None` for one file.
    pub fn field_files(&self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Address::Pki { .. } => Some(&CERTIFICATE_FILES),
            _ => None,
        }
    }

    /// `` kind `key` ``, as messages name an address.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.kind(), self.key())
    }

    /// The address as the `file` source keys it, and as logs name it.
    pub fn key(&self) -> String {
        match self {
            Address::Kv { mount, path, .. } => format!("{mount}/{path}"),
            Address::Read(path) => path.clone(),
            Address::Pki { mount, role, .. } => format!("{mount}/issue/{role}"),
            Address::SecretId { id, .. } => id.clone(),
            Address::Parameter(p) => p.key().to_owned(),
        }
    }
}

impl Secret {
    /// The files this secret writes, relative to the output directory.
    pub fn files(&self) -> Vec<String> {
        if !self.write {
            return Vec::new();
        }
        if let Some(files) = self.address.field_files() {
            return files
                .iter()
                .map(|(_, ext)| format!("{}.{ext}", self.file))
                .collect();
        }
        match self.address {
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

impl Validator<'_> {
    pub(super) fn secret(
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
            // An AWS secret or parameter is one stored value: written as it is by default.
            (None, None, None)
                if source.is_some_and(|i| match (&sources[i].kind, &address) {
                    (SourceKind::AwsSecretsManager(_), _) => true,
                    (SourceKind::SsmParameterStore(_), Some(Address::Parameter(p))) => {
                        p.one_value()
                    }
                    _ => false,
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
                if let Err(e) = crate::render::jinja::check(t) {
                    self.problem(format!("{at}.{template_key}"), e.to_string());
                }
            }
            (Some(t), Format::GoTemplate) => match &s.read {
                Some(path) => {
                    if let Err(e) = crate::render::gotemplate::check(t, path) {
                        self.problem(format!("{at}.{template_key}"), e.to_string());
                    }
                }
                None => self.problem(
                    format!("{at}.format"),
                    "go-template renders a Vault `read:` path",
                ),
            },
            (None, Format::Template | Format::GoTemplate) => self.problem(
                format!("{at}.template"),
                format!("missing: format {} needs one", format.name()),
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
        let refresh = match s.refresh.as_deref() {
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
            allow_exec_variables: s.allow_exec_variables,
        })
    }

    /// Keys a secret may only use with some kinds of source: each backend
    /// reads its own address keys (the `file` source stands in for any); the
    /// AWS version keys only with AWS Secrets Manager.
    pub(super) fn fits_source(&mut self, at: &str, s: &RawSecret, source: &Source) {
        let name = &source.name;
        let reads = source.kind.reads().unwrap_or(RawSecret::KEYS);
        for (key, given) in RawSecret::KEYS.iter().zip(s.given()) {
            if given && !reads.contains(key) {
                self.problem(
                    format!("{at}.{key}"),
                    format!(
                        "source `{name}` is {}: use {}",
                        source.kind.describe(),
                        either(reads)
                    ),
                );
            }
        }
        if matches!(source.kind, SourceKind::AwsSecretsManager(_)) {
            return;
        }
        let aws_keys = [
            ("version_stage", s.version_stage.is_some()),
            ("version_id", s.version_id.is_some()),
            ("previous", s.previous.is_some()),
        ];
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

    pub(super) fn address(&mut self, at: &str, s: &RawSecret) -> Option<Address> {
        for (key, given) in [
            ("version", s.version.is_some()),
            ("label", s.label.is_some()),
        ] {
            if given && s.parameter.is_none() {
                self.problem(
                    format!("{at}.{key}"),
                    "pins a `parameter`: there is none here",
                );
            }
        }
        if !self.exactly_one(at, s) {
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
            let ttl = match p.ttl.as_deref() {
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
        if s.parameter.is_some() || s.parameters_by_path.is_some() {
            let keys = ParameterKeys {
                parameter: s.parameter.as_deref(),
                by_path: s.parameters_by_path.as_deref(),
                version: s.version,
                label: s.label.as_deref(),
            };
            return match Parameter::from_keys(&keys) {
                Ok(p) => Some(Address::Parameter(p)),
                Err(problems) => {
                    for (key, why) in problems {
                        self.problem(format!("{at}.{key}"), why);
                    }
                    None
                }
            };
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

    /// A Vault path must be non-empty and made of plain segments.
    pub(super) fn vault_path(&mut self, at: &str, p: &str) {
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
}

//! The `secrets:` section, as written and validated: from which source a
//! secret reads, and the files it writes, in which [`Format`]. What it reads
//! (its [`Address`]) is given by the keys of one backend (`kv`, `secret_id`,
//! `parameter`, …), which the backend's folder under `src/source/` declares
//! and reads; here they are handled generically.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::{closed, DurationText, Entry, ModeText};
use super::sidecar::RawAction;
use super::{check_relative, either, needs_one_of, Action, Mapping, Source, Validator};
use crate::source::{Address, SecretKeys};

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
    /// An agent template: Vault Agent's (Go `text/template`, the consul-template subset
    /// vault-k8s pods use) over a `read:`, whose path is read as Vault Agent
    /// reads it: on a KV v2 mount (found as `vault kv` finds it) `data/` is
    /// put after the mount unless the path has it.
    #[serde(rename = "go-template")]
    AgentTemplate,
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
            Format::AgentTemplate => "go-template",
        }
    }
}

/// One secret. Exactly one of `kv`, `read`, `pki`, `secret_id`, `parameter`
/// or `parameters_by_path`; not both
/// `template` and `template_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = closed)]
#[schemars(extend("not" = {"required": ["template", "template_file"]}))]
pub struct RawSecret {
    /// Unique name, without `/` or NUL; the default file name.
    pub name: String,
    /// The source to read from; optional when there is one source.
    pub source: Option<String>,
    /// The keys of the secret's backend, which its folder under `src/source/`
    /// declares: exactly one of `kv`, `read`, `pki`, `secret_id`, `parameter`
    /// or `parameters_by_path`, and what qualifies it.
    #[serde(skip)]
    #[schemars(!skip, flatten)]
    pub keys: SecretKeys,
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

impl Entry for RawSecret {
    fn takes(key: &str) -> bool {
        crate::source::by_secret_key(key).is_some()
    }
    fn read(keys: &Mapping) -> Result<(), (String, String)> {
        SecretKeys::read(keys)
    }
    fn keep(&mut self, keys: Mapping) {
        self.keys = SecretKeys(keys);
    }
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
    /// Template text: a minijinja template (format `template`) or an agent
    /// template (`go-template`).
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
        if self.address.writes_previous() {
            return vec![self.file.clone(), previous_file(&self.file)];
        }
        vec![self.file.clone()]
    }
}

/// `a, b and c`
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
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
                if source.is_some_and(|i| sources[i].kind.local_file().is_none())
                    && address.as_ref().is_some_and(Address::one_stored_value) =>
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
            (Some(t), Format::AgentTemplate) => match address.as_ref().map(Address::read_path) {
                Some(Some(path)) => {
                    if let Err(e) = crate::render::agent_template::check(t, path) {
                        self.problem(format!("{at}.{template_key}"), e.to_string());
                    }
                }
                Some(None) => self.problem(
                    format!("{at}.format"),
                    "go-template renders a Vault `read:` path",
                ),
                None => {}
            },
            (None, Format::Template | Format::AgentTemplate) => self.problem(
                format!("{at}.template"),
                format!("missing: format {} needs one", format.name()),
            ),
            (Some(_), _) => self.problem(
                format!("{at}.{template_key}"),
                "only used with `format: template`",
            ),
            (None, _) => {}
        }
        if let Some((a, files)) = address.as_ref().and_then(|a| Some((a, a.field_files()?))) {
            if s.format.is_some() || s.key.is_some() || template.is_some() {
                let files: Vec<_> = files
                    .iter()
                    .map(|(_, ext)| format!("<file>.{ext}"))
                    .collect();
                self.problem(
                    at.clone(),
                    format!(
                        "a `{}` secret writes {}: `format`, `key` and `template` do not apply",
                        a.kind(),
                        and_list(&files)
                    ),
                );
            }
        }
        let source_ref = source.map(|i| &sources[i]);
        for backend in crate::source::BACKENDS {
            let given = s.keys.of(backend);
            if !given.is_empty() {
                backend.parse.check_options(self, &at, &given, source_ref);
            }
        }
        if let Some(src) = source_ref {
            self.fits_source(&at, &s, src);
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

    /// Address keys a secret may only use with some kinds of source: each
    /// backend reads its own (the `file` source stands in for any).
    fn fits_source(&mut self, at: &str, s: &RawSecret, source: &Source) {
        let Some(reads) = source.kind.reads() else {
            return;
        };
        for key in crate::source::address_keys() {
            if s.keys.0.contains_key(key) && !reads.contains(&key) {
                self.problem(
                    format!("{at}.{key}"),
                    format!(
                        "source `{}` is {}: use {}",
                        source.name,
                        source.kind.describe(),
                        either(reads)
                    ),
                );
            }
        }
    }

    /// The address from the backend keys the secret gives: exactly one
    /// address key, read by the backend that declares it.
    fn address(&mut self, at: &str, s: &RawSecret) -> Option<Address> {
        let all = crate::source::address_keys();
        let given: Vec<_> = all.iter().filter(|k| s.keys.0.contains_key(**k)).collect();
        let [key] = given[..] else {
            self.problem(at, needs_one_of(&all));
            return None;
        };
        let backend = crate::source::by_secret_key(key)?;
        backend.parse.address(self, at, s.keys.of(backend))
    }
}

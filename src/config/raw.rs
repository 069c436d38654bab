//! The configuration file as written: serde types with `deny_unknown_fields`,
//! strings where the user writes durations and modes. These types are also
//! the source of the published JSON Schema, and carry its rules themselves
//! (with the blocks of [`super::shape`]): a duration's or a mode's pattern is
//! in its type, a choice of keys is declared once for the schema and the
//! validator. Validation turns them into [`super::Config`].

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::shape::{one_of, one_of_schema, DurationText, Item, ModeText, OneOf};

/// A ramsecrets configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ramsecrets configuration")]
pub struct RawConfig {
    /// Where secrets come from.
    pub sources: Vec<Item<RawSource>>,
    /// Where files are written; optional when `proxy` serves the secrets from memory only,
    /// and beside `inject:`.
    pub output: Option<RawOutput>,
    /// Lock all memory so secrets are never swapped out.
    #[serde(default)]
    pub mlock: bool,
    /// How often the sidecar refreshes.
    pub refresh: Option<RawRefresh>,
    /// Health and metrics endpoint of the sidecar.
    pub health: Option<RawHealth>,
    /// What `exec` mode does to its child when a secret changes.
    pub exec: Option<RawExec>,
    /// The local credential proxy (AWS Secrets Manager Agent and Vault KV APIs).
    pub proxy: Option<RawProxy>,
    /// The secrets to fetch and the files to write them to (not needed beside `inject:`).
    #[serde(default)]
    pub secrets: Vec<Item<RawSecret>>,
    /// Files rendered from several secrets.
    #[serde(default)]
    pub templates: Vec<Item<RawTemplate>>,
    /// The admission webhook, read by `ramsecrets inject` only (a file with
    /// `inject:` needs no `output:` or `secrets:`).
    pub inject: Option<super::inject::RawInject>,
}

/// One file rendered from several secrets. Exactly one of `template` or `template_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawTemplate {
    /// File name relative to `output.dir`.
    pub file: String,
    /// minijinja template over `secrets["<name>"].<field>`; a missing secret or field is an error.
    pub template: Option<String>,
    /// A file holding the template, relative to the config file; the sidecar watches it.
    pub template_file: Option<PathBuf>,
    /// File mode, an octal string (default: `output.mode`).
    pub mode: Option<ModeText>,
    /// What to do after the file changed (once per change).
    #[serde(default)]
    pub on_change: Vec<RawAction>,
}

one_of!(RawTemplate: template, template_file);

/// Refresh schedule of the sidecar.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRefresh {
    /// Poll interval of static secrets (default 5m), ±10% jitter.
    pub interval: Option<DurationText>,
    /// Fraction of a lease or certificate lifetime at which to renew (default 0.67).
    pub renew_at: Option<f64>,
}

/// Health endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Address to serve /healthz, /readyz and /metrics on, e.g. 127.0.0.1:8099.
    pub listen: String,
}

/// The local credential proxy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Address to listen on (default 127.0.0.1:2773).
    pub listen: Option<String>,
    /// File holding the token every request must carry; created (32 random bytes, hex) if missing.
    pub token_file: PathBuf,
    /// Allow a non-loopback `listen` address.
    #[serde(default)]
    pub allow_remote: bool,
    /// Connections served at once; more get 429 (default 800).
    pub max_connections: Option<usize>,
}

/// `exec` mode settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    /// `restart` (default), or a signal name such as `HUP` to send instead.
    pub on_change: Option<String>,
    /// Time between TERM and KILL on restart and shutdown (default 10s).
    pub grace: Option<DurationText>,
}

/// One backend. Exactly one of `vault`, `aws_secrets_manager` or `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawSource {
    /// Name that `secrets[].source` refers to; optional when there is one source.
    pub name: Option<String>,
    /// HashiCorp Vault or OpenBao.
    pub vault: Option<RawVault>,
    /// AWS Secrets Manager (`aws_secrets_manager: {}` or with no value: all defaults).
    #[serde(default, deserialize_with = "null_is_empty")]
    pub aws_secrets_manager: Option<RawAws>,
    /// A local YAML file standing in for any backend (development).
    pub file: Option<RawFileSource>,
}

one_of!(RawSource: vault, aws_secrets_manager, file);

/// A Vault or OpenBao server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// `https://vault.example:8200`
    pub address: String,
    /// PEM bundle of CA certificates to trust for this server.
    pub ca_cert: Option<PathBuf>,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// How to log in: exactly one method.
    pub auth: RawAuth,
    /// Time allowed to open a connection (default 5s).
    pub connect_timeout: Option<DurationText>,
    /// Time allowed for one request (default 30s).
    pub request_timeout: Option<DurationText>,
    /// Revoke the sidecar's leases when it stops.
    #[serde(default)]
    pub revoke_on_exit: bool,
}

/// Vault auth methods: exactly one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawAuth {
    /// A file holding a Vault token.
    pub token_file: Option<PathBuf>,
    /// AppRole login.
    pub approle: Option<RawAppRole>,
    /// Kubernetes service-account login.
    pub kubernetes: Option<RawRoleLogin>,
    /// JWT login.
    pub jwt: Option<RawRoleLogin>,
    /// AWS IAM login: a signed sts:GetCallerIdentity, with the AWS SDK's default credential chain.
    pub aws: Option<RawAwsLogin>,
    /// TLS client certificate login.
    pub cert: Option<RawCertLogin>,
}

one_of!(RawAuth: token_file, approle, kubernetes, jwt, aws, cert);

/// AWS IAM login (EKS IRSA or Pod Identity, instance profiles, any credential of the chain).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAwsLogin {
    /// Auth mount (default `aws`).
    pub mount: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// Region of the STS endpoint the request is signed for (default `us-east-1`, the global
    /// endpoint); must match the server's `sts_region`.
    pub region: Option<String>,
    /// Value of the `X-Vault-AWS-IAM-Server-ID` header, when the server requires one.
    pub header_value: Option<String>,
}

/// TLS client certificate login; the files are read at each login.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCertLogin {
    /// Auth mount (default `cert`).
    pub mount: Option<String>,
    /// The certificate role to log in as (default: any role the certificate matches).
    pub name: Option<String>,
    /// PEM file of the client certificate (and its chain).
    pub client_cert: PathBuf,
    /// PEM file of the client certificate's private key.
    pub client_key: PathBuf,
}

/// AWS Secrets Manager. Credentials come from the SDK's default chain:
/// environment, profile, web identity (IRSA), EKS Pod Identity or ECS, IMDS.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Region, e.g. `eu-west-1` (default: `AWS_REGION` or the profile's region).
    pub region: Option<String>,
    /// Named profile of the shared config files (default: `AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// Secrets Manager endpoint URL, e.g. a VPC endpoint or a local emulator.
    pub endpoint: Option<String>,
}

/// A key present with no value (`aws_secrets_manager:`) means "all defaults".
fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RawAws>, D::Error> {
    Option::<RawAws>::deserialize(d).map(|a| Some(a.unwrap_or_default()))
}

/// AppRole credentials, each read from a file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAppRole {
    /// Auth mount (default `approle`).
    pub mount: Option<String>,
    /// File holding the role id.
    pub role_id_file: PathBuf,
    /// File holding the secret id.
    pub secret_id_file: PathBuf,
}

/// A role-based JWT login (kubernetes or jwt).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoleLogin {
    /// Auth mount (default `kubernetes` or `jwt`).
    pub mount: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// File holding the JWT (default for kubernetes: the service-account token).
    pub token_file: Option<PathBuf>,
}

/// The `file` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    /// YAML file of `address: { field: value }`; relative to the config file.
    pub path: PathBuf,
}

/// The output directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Directory to write to; must be tmpfs or ramfs.
    pub dir: PathBuf,
    /// Default file mode, an octal string (default "0400").
    pub mode: Option<ModeText>,
    /// `uid:gid` to own the files (needs privileges).
    pub owner: Option<String>,
    /// Allow a directory that is not in memory (development only).
    #[serde(default)]
    pub allow_disk: bool,
    /// Where `init` leaves leases and the token for the sidecar: its own
    /// volume, mounted only in ramsecrets' containers, never under `dir`.
    /// Absent: no hand-off (the sidecar fetches afresh).
    pub state_dir: Option<PathBuf>,
    /// Remove the written files when the sidecar stops.
    #[serde(default)]
    pub wipe_on_exit: bool,
}

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
        }
    }
}

/// One secret. Exactly one of `kv`, `read`, `pki` or `secret_id`; not both
/// `template` and `template_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
#[schemars(extend("not" = {"required": ["template", "template_file"]}))]
pub struct RawSecret {
    /// Unique name; the default file name.
    pub name: String,
    /// The source to read from; optional when there is one source.
    pub source: Option<String>,
    /// A KV v1 or v2 secret.
    pub kv: Option<RawKv>,
    /// Any logical read, e.g. `database/creds/app`.
    pub read: Option<String>,
    /// A certificate issued by a PKI role.
    pub pki: Option<RawPki>,
    /// An AWS Secrets Manager secret id (served by the `file` source locally).
    pub secret_id: Option<String>,
    /// AWS: the staging label to read (default `AWSCURRENT`).
    pub version_stage: Option<String>,
    /// AWS: one exact version to read (instead of `version_stage`).
    pub version_id: Option<String>,
    /// AWS: also write the `AWSPREVIOUS` version to `<file>.previous`.
    pub previous: Option<bool>,
    /// File name relative to `output.dir` (default: the secret's name).
    pub file: Option<String>,
    /// Output format (default: `raw` with `key`, `template` with `template`,
    /// `raw` for an AWS secret (its value as stored), else `json`).
    pub format: Option<Format>,
    /// Write only this field, raw.
    pub key: Option<String>,
    /// minijinja template over the fields; a missing field is an error.
    pub template: Option<String>,
    /// A file holding the template, relative to the config file (instead of `template`).
    pub template_file: Option<PathBuf>,
    /// `false`: fetched and kept fresh for templates (and the proxy), never written on its own.
    pub write: Option<bool>,
    /// File mode, an octal string (default: `output.mode`).
    pub mode: Option<ModeText>,
    /// Poll interval of this secret, overriding `refresh.interval`.
    pub refresh: Option<DurationText>,
    /// What to do after this secret's files changed.
    #[serde(default)]
    pub on_change: Vec<RawAction>,
}

one_of!(RawSecret: kv, read, pki, secret_id);

/// One action after a change. Exactly one of `signal`, `exec` or `http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawAction {
    /// Send a signal to a process.
    pub signal: Option<RawSignal>,
    /// Run a command (argv, no shell).
    pub exec: Option<Vec<String>>,
    /// POST to a URL.
    pub http: Option<RawHttp>,
    /// Time limit of `exec` and `http` (default 30s).
    pub timeout: Option<DurationText>,
}

one_of!(RawAction: signal, exec, http);

/// A signal to a process found by pid file or by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawSignal {
    /// File holding the process id.
    pub pid_file: Option<PathBuf>,
    /// Process name (`/proc/*/comm`), in a shared PID namespace.
    pub process: Option<String>,
    /// Signal name, e.g. `HUP`.
    pub signal: String,
}

one_of!(RawSignal: pid_file, process);

/// An HTTP POST.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// URL to POST to.
    pub url: String,
}

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

/// The field names of the struct `T` deserializes as, in declaration order,
/// as serde's derive lists them: the keys of a section are written once, in
/// its `Raw` type.
pub(super) fn fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{value::Error, Error as _, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("only its fields are read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod top_keys {
    use std::path::Path;

    use super::super::Config;

    #[test]
    fn an_unknown_top_level_key_lists_the_keys_of_raw_config_in_order() {
        let e = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets: [ { name: a, read: a/b } ]\nsecret: 1\n",
            Path::new("/cfg"),
        )
        .unwrap_err();
        assert_eq!(e[0].path, "secret", "{e:?}");
        assert_eq!(
            e[0].message,
            "unknown key `secret`, expected one of sources, output, mlock, refresh, health, exec, proxy, secrets, templates, inject"
        );
    }
}

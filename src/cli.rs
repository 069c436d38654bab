//! Command-line definitions (clap) and nothing else: `main.rs` hands each
//! command to the module that owns it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::duration;

const EXAMPLE: &str = "\
Example:
  ramsecrets check --config examples/dev.yaml
  ramsecrets check --config examples/vault.yaml --online
  ramsecrets init  --config examples/dev.yaml --timeout 30s
  ramsecrets run   --config examples/dev.yaml
  ramsecrets exec  --config examples/dev.yaml -- /usr/bin/app --flag
  ramsecrets proxy --config examples/dev.yaml
  eval \"$(ramsecrets proxy --config examples/dev.yaml --print-env)\"

Exit codes (sysexits): 0 ok, 64 usage, 65 missing secret/field, 69 backend
unavailable, 70 internal error, 71 OS error (mlock, listen), 73 cannot write
output, 77 permission denied, 78 bad config; `exec` exits with the child's code
(127/126 when it cannot start). Each command's --help says more.";

/// Fetches secrets from Vault/OpenBao or AWS Secrets Manager into an in-memory tmpfs, atomically.
#[derive(Debug, Parser)]
#[command(name = "ramsecrets", version, about, after_help = EXAMPLE)]
pub struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: tracing::Level,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Help after `init --help`.
const INIT_HELP: &str = "\
Example:
  ramsecrets init --config examples/dev.yaml --timeout 30s

Every secret is fetched and rendered and every file staged before the first is
renamed into place: a failure writes nothing. With output.state_dir set, the
tokens and leases are left there for `run`.

Exit codes: 0 every file written; 65 a missing secret, field or template
error; 69 backend unavailable, or --timeout passed; 73 the output dir is
missing, not in memory, or cannot be written; 77 permission denied by the
backend; 78 bad config, token or credential file.";

/// Help after `run --help`.
const RUN_HELP: &str = "\
Example:
  ramsecrets run --config examples/dev.yaml

The first cycle is `init`'s. Then static secrets are polled every
refresh.interval, leases renewed and certificates re-issued at
refresh.renew_at, `file` source edits read at once, and each changed secret's
on_change actions run once after its files are written. SIGHUP or an edit of
the config file reloads it. /healthz, /readyz and /metrics on health.listen.

Exit codes: 0 after SIGTERM or SIGINT; the first cycle fails as `init` does
(65, 69, 73, 77, 78); 71 when health.listen cannot be bound or the files
cannot be watched.";

/// Help after `exec --help`.
const EXEC_HELP: &str = "\
Example:
  ramsecrets exec --config examples/dev.yaml -- /usr/bin/app --flag

COMMAND starts once every file is written. TERM, INT, HUP, QUIT, USR1 and USR2
are forwarded to it (TERM, INT and QUIT to its whole process group when there
is no terminal). When secrets change, exec.on_change restarts it (TERM, KILL
after exec.grace, start again: the default) or sends it a signal such as HUP,
once per change, after all files are written. As PID 1, ramsecrets reaps
orphans.

Exit codes: COMMAND's own, or 128+N when signal N ended it; 127 when COMMAND
does not exist, 126 when it cannot be executed; before it starts, as `run`.";

/// Help after `proxy --help`.
const PROXY_HELP: &str = "\
Example:
  ramsecrets proxy --config examples/dev.yaml
  eval \"$(ramsecrets proxy --config examples/dev.yaml --print-env)\"

Serves the configured secrets on proxy.listen (loopback) in the AWS Secrets
Manager Agent's shape (GET /secretsmanager/get?secretId=ID) and Vault's
(GET /v1/<mount>/data/<path>), from memory, with the token of
proxy.token_file in X-Aws-Parameters-Secrets-Token or X-Vault-Token.

Exit codes: as `run`; 78 when the config has no `proxy:` section.";

/// Help after `check --help`.
const CHECK_HELP: &str = "\
Example:
  ramsecrets check --config examples/dev.yaml
  ramsecrets check --config-only --config examples/vault.yaml

Without --online no server is contacted. Beyond the file, check verifies what
`init` would refuse locally: the output dir exists and is in memory, CA bundles
load, and every secret of a `file` source is there and renders. With --online it
also logs in with each source and checks that every secret may be read (no file
is written, no credential minted).

Exit codes: 0 valid (and ready, without --config-only); 78 an invalid config;
otherwise the code `init` would exit with (65, 73, 78).";

/// Help after `schema --help`.
const SCHEMA_HELP: &str = "\
Example, for editors with the YAML language server (VS Code, Neovim, Helix…):
  ramsecrets schema > ramsecrets.schema.json
and as the first line of the config file:
  # yaml-language-server: $schema=ramsecrets.schema.json";

const INJECT_HELP: &str = "\
Example:
  ramsecrets inject --config examples/inject.yaml

The Kubernetes admission webhook, over HTTPS (inject.tls): POST /mutate answers
an AdmissionReview of a Pod CREATE with a JSONPatch that adds ramsecrets to pods
annotated ramsecrets.io/inject: \"true\", or a denial that names the bad
ramsecrets.io/ annotation; /healthz, /readyz and /metrics beside it. It asks the
API server's /version at start unless inject.kubernetes_version is set.
Exit codes: 78 bad config or certificate, 69 API server unreachable, 77 refused
by it, 71 cannot listen.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch every secret once, write them all to the output dir, exit (init container).
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Init, then keep every file fresh until SIGTERM (sidecar).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Run, and start COMMAND once the files are written; signal or restart it on change.
    #[command(after_help = EXEC_HELP)]
    Exec(ExecArgs),
    /// Run with the local credential proxy (AWS agent and Vault KV APIs); needs a `proxy:` section.
    #[command(after_help = PROXY_HELP)]
    Proxy(ProxyArgs),
    /// Serve the Kubernetes admission webhook that injects ramsecrets into
    /// annotated pods; needs an `inject:` section.
    #[command(after_help = INJECT_HELP)]
    Inject(ConfigArg),
    /// Rotate one secret in the backend for real and measure whether and when the app follows.
    #[command(after_help = DRILL_HELP)]
    Drill(Box<DrillArgs>),
    /// Validate the config and print the plan (never values); --online also checks read access.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Print the JSON Schema of the config file, for editors.
    #[command(after_help = SCHEMA_HELP)]
    Schema,
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Run the config only while its bytes have this SHA-256 (hex): another
    /// is refused at start (exit 78) and at a reload (the running config is
    /// kept). The injector sets it to the config a pod was admitted with.
    #[arg(long, value_name = "HEX")]
    pub config_sha256: Option<crate::config::Pin>,
}

impl ConfigArg {
    /// Reads and validates the config (refused unless it has the pinned digest).
    pub fn load(&self) -> crate::config::Result<crate::config::Config> {
        crate::config::Config::load_pinned(&self.config, self.config_sha256)
    }
}

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Validate the file alone, not the directories and files it names (for
    /// CI, where the pod's volumes do not exist).
    #[arg(long)]
    pub config_only: bool,
    /// Also log in with each source and check that every secret may be read,
    /// without writing a file or minting credentials; prints a table.
    #[arg(long)]
    pub online: bool,
    /// With --online: give up on sources that have not answered by then (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "30s", requires = "online", value_parser = duration::at_least(Duration::from_secs(1)))]
    pub timeout: Duration,
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Give up (and write nothing) when all secrets are not fetched by then (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration::at_least(Duration::from_secs(1)))]
    pub timeout: Duration,
    /// Vault secrets fetched at once (AWS secrets are batched, 20 per call).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file (watched: valid changes are reloaded).
    #[command(flatten)]
    pub config: ConfigArg,
    /// Give up when the first render is not done by then (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration::at_least(Duration::from_secs(1)))]
    pub timeout: Duration,
}

/// Options of `proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Options shared with `run`.
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the environment an app needs (VAULT_ADDR, the token read from
    /// its file by the shell, the AWS agent URL) for `eval`, and exit.
    #[arg(long)]
    pub print_env: bool,
}

/// Options of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Options shared with `run`.
    #[command(flatten)]
    pub run: RunArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const DRILL_HELP: &str = "\
Example (the app checked and loaded; invented values are put back afterwards):
  ramsecrets drill --config app.yaml --secret db \\
      --check-url http://127.0.0.1:8080/healthz --load http://127.0.0.1:8080/ --rps 50

What is rotated: KV, a new version (credential-looking fields get new random
values of the same shape; --set FIELD=VALUE or FIELD=@FILE for others);
database/static-creds/ROLE, rotate-role; other reads, the sidecar's lease is
revoked; pki, the sidecar's certificate is revoked; AWS, AWSPENDING then
AWSCURRENT (or RotateSecret when the secret has a rotation function);
Parameter Store, a new version (PutParameter with Overwrite).

Without --check-url, --check or --load nothing tells whether the app works with
the new value: the result is NOT VERIFIED (exit 2), never PASSED. Values the
drill invented (KV, AWS and parameter fields without --set) are put back unless
--keep; --restore puts back values given with --set too.

Exit codes: 0 the app recovered within --deadline with at most --max-failures
failed requests; 1 it did not; 2 not verified (no app check); 130 interrupted
(the old value is put back); 64 usage, 65, 69, 77, 78 as for init.";

/// Options of `drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The config the sidecar runs with (the drill's identity needs write access where it rotates).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The secret to rotate, by its name in the config.
    #[arg(long, value_name = "NAME")]
    pub secret: String,
    /// An explicit new value for a field (KV, AWS; `value` of a parameter); `FIELD=@FILE` reads it from FILE.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// The app is healthy when a GET of URL answers 2xx.
    #[arg(long, value_name = "URL")]
    pub check_url: Option<reqwest::Url>,
    /// The app is healthy when `sh -c CMD` exits 0.
    #[arg(long, value_name = "CMD", conflicts_with = "check_url")]
    pub check: Option<String>,
    /// Time between health checks (at least 10ms).
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = duration::at_least(Duration::from_millis(10)))]
    pub check_interval: Duration,
    /// Drive steady GET requests at URL during the whole drill, counting failures and latency.
    #[arg(long, value_name = "URL")]
    pub load: Option<reqwest::Url>,
    /// Requests a second of --load.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "load", value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub rps: u32,
    /// Time the app has to recover, from the rotation (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration::at_least(Duration::from_secs(1)))]
    pub deadline: Duration,
    /// Time the app must then stay healthy to count as recovered (at least 100ms).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration::at_least(Duration::from_millis(100)))]
    pub settle: Duration,
    /// Failed --load requests allowed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_failures: u64,
    /// Put the old value back afterwards, also when --set gave the new one (KV: a new version with the old data; AWS: AWSCURRENT moved back; a parameter: a new version with the old value). The default for values the drill invented.
    #[arg(long, conflicts_with = "keep")]
    pub restore: bool,
    /// Keep the values the drill invented instead of putting the old ones back.
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The sidecar's metrics URL (default: /metrics on the config's health.listen).
    #[arg(long, value_name = "URL")]
    pub metrics: Option<reqwest::Url>,
}

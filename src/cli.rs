//! Command-line definitions (clap) and nothing else: `main.rs` turns them into work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLE: &str = "\
Example:
  ramsecrets check --config examples/dev.yaml
  ramsecrets init  --config examples/dev.yaml --timeout 30s
  ramsecrets run   --config examples/dev.yaml
  ramsecrets exec  --config examples/dev.yaml -- /usr/bin/app --flag
  ramsecrets proxy --config examples/dev.yaml
  eval \"$(ramsecrets proxy --config examples/dev.yaml --print-env)\"

Exit codes (sysexits): 0 ok, 64 usage, 65 missing secret/field, 69 backend
unavailable, 70 internal error, 71 OS error (mlock, listen), 73 cannot write
output, 77 permission denied, 78 bad config; `exec` exits with the child's code.";

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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch every secret once, write them all to the output dir, exit (init container).
    #[command(after_help = EXAMPLE)]
    Init(InitArgs),
    /// Init, then keep every file fresh until SIGTERM (sidecar).
    #[command(after_help = EXAMPLE)]
    Run(RunArgs),
    /// Run, and start COMMAND once the files are written; signal or restart it on change.
    #[command(after_help = EXAMPLE)]
    Exec(ExecArgs),
    /// Run with the local credential proxy (AWS agent and Vault KV APIs); needs a `proxy:` section.
    #[command(after_help = EXAMPLE)]
    Proxy(ProxyArgs),
    /// Validate the config and print the plan: sources, secrets, files, modes (never values).
    Check(CheckArgs),
    /// Print the JSON Schema of the config file, for editors.
    Schema,
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
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
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Give up (and write nothing) when all secrets are not fetched by then.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = crate::config::duration::parse)]
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
    /// Give up when the first render is not done by then.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = crate::config::duration::parse)]
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

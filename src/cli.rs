//! Command-line definitions (clap) and nothing else: `main.rs` turns them into work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLE: &str = "\
Example:
  ramsecrets check --config examples/dev.yaml
  ramsecrets init  --config examples/dev.yaml --timeout 30s

Exit codes (sysexits): 0 ok, 64 usage, 65 missing secret/field, 69 backend
unavailable, 73 cannot write output, 77 permission denied, 78 bad config.";

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
    /// Validate the config and print the plan: sources, secrets, files, modes (never values).
    Check(ConfigArg),
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

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Give up (and write nothing) when all secrets are not fetched by then.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Vault secrets fetched at once (AWS secrets are batched, 20 per call).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
}

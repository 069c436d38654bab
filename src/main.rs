//! The `ramsecrets` binary: parse the command line, set up logging and
//! hardening, run the command, and map its error to a sysexits code.

use std::process::ExitCode as ProcessExit;
use std::sync::Arc;

use clap::Parser;
use ramsecrets::cli::{Cli, Command, InitArgs, LogFormat};
use ramsecrets::config::{self, Config};
use ramsecrets::exit::{Exit, ExitCode};
use ramsecrets::output::OutputDir;
use ramsecrets::{cycle, harden, source, telemetry};

/// An error on its way out: the message and the exit code it stands for.
struct Failure {
    exit: Exit,
    error: anyhow::Error,
}

impl<E: ExitCode + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            exit: e.exit(),
            error: e.into(),
        }
    }
}

fn main() -> ProcessExit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ProcessExit::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    telemetry::init(cli.log_format, cli.log_level);
    match run(cli.command) {
        Ok(()) => ProcessExit::SUCCESS,
        Err(f) => {
            let code = f.exit.code();
            match cli.log_format {
                LogFormat::Text => eprintln!("ramsecrets: error: {:#}", f.error),
                LogFormat::Json => tracing::error!(exit_code = code, "{:#}", f.error),
            }
            ProcessExit::from(code)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Schema => {
            println!("{:#}", config::schema());
            Ok(())
        }
        Command::Check(args) => {
            let config = Config::load(&args.config)?;
            print!("{config}");
            println!("config {} is valid", args.config.display());
            Ok(())
        }
        Command::Init(args) => init(args),
    }
}

fn init(args: InitArgs) -> Result<(), Failure> {
    let config = Config::load(&args.config.config)?;
    harden::harden(config.mlock)?;
    let sources = source::build(&config)?;
    let dir = OutputDir::open(&config.output)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            exit: Exit::OsErr,
            error: anyhow::Error::new(e).context("cannot start the async runtime"),
        })?;
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + args.timeout;
        let sources: Vec<Arc<dyn source::Source>> = sources;
        cycle::run(
            &config,
            &sources,
            &dir,
            deadline,
            usize::from(args.concurrency),
        )
        .await
    })?;
    Ok(())
}

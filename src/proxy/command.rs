//! What `ramsecrets proxy` asks of its config before anything starts: a
//! `proxy:` section, and with `--print-env` the lines an app's shell
//! evaluates to reach the proxy.

use std::path::Path;

use crate::config::{self, Config};
use crate::exit::{Exit, Failure};
use crate::os::process::print;

/// The proxy section of `config` (read from `path`), which `ramsecrets proxy` needs.
pub fn section<'c>(config: &'c Config, path: &Path) -> Result<&'c config::Proxy, Failure> {
    config.proxy.as_ref().ok_or_else(|| Failure {
        exit: Exit::Config,
        error: anyhow::anyhow!(
            "config {} has no `proxy:` section, which `ramsecrets proxy` needs",
            path.display()
        ),
    })
}

/// `proxy --print-env`: prints the lines an app's shell evaluates to reach
/// the proxy; returns the exit code.
pub fn print_env(path: &Path) -> Result<u8, Failure> {
    let config = Config::load(path)?;
    let cfg = section(&config, path)?;
    print(&super::env::for_config(&config).unwrap_or_default())?;
    if !cfg.token_file.exists() {
        eprintln!(
            "ramsecrets: {} does not exist yet: the proxy creates it when it starts",
            cfg.token_file.display()
        );
    }
    Ok(Exit::Ok.code())
}

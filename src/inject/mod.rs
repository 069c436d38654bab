//! `ramsecrets inject`: the Kubernetes mutating admission webhook. [`spec`]
//! reads a pod's `ramsecrets.io/` annotations, [`podconfig`] makes the config
//! its injected containers run, [`mutate`] is the pure decision (pod →
//! JSONPatch or denial) with [`containers`] saying what the added containers
//! run with and [`onchange`] how the sidecar tells the app, [`tls`] the serving certificate (files reloaded on
//! change, or made at start with the CA patched into the webhook
//! configuration through [`apiserver`]), and [`server`] the HTTPS layer.
//! With `inject.compat: vault-k8s`, [`compat`] reads pods annotated for
//! vault-k8s into the same request.

pub mod apiserver;
pub mod compat;
pub mod containers;
pub mod mutate;
pub mod onchange;
pub mod podconfig;
pub mod server;
pub mod spec;
pub mod tls;

use crate::config::inject::{Inject, InjectTls};
use crate::config::Config;
use crate::exit::{Exit, ExitCode};
use crate::source::PodSource;

/// Why the injector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config has no `inject:` section.
    #[error("the config has no `inject:` section, which `ramsecrets inject` needs")]
    NoSection,
    /// A Vault source's CA bundle cannot be read.
    #[error("source {source_name}: ca_cert {path}: {source}")]
    Ca {
        /// The source.
        source_name: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The API server.
    #[error(transparent)]
    Api(#[from] apiserver::Error),
    /// The signal handlers.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The listener.
    #[error(transparent)]
    Listen(#[from] crate::http::CannotListen),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::NoSection | Error::Ca { .. } => Exit::Config,
            Error::Tls(e) => e.exit(),
            Error::Api(e) => e.exit(),
            Error::Listen(e) => e.exit(),
            Error::Signals(_) => Exit::OsErr,
        }
    }
}

/// Everything the decision needs, fixed at start.
#[derive(Debug, Clone)]
pub struct Injector {
    /// The `inject:` section.
    pub settings: Inject,
    /// The sources injected pods use.
    pub sources: Vec<PodSource>,
    /// Whether the API server runs native sidecars (1.29 or later).
    pub native_sidecar: bool,
}

/// What `ramsecrets check` can verify of `inject:` without a cluster: the
/// certificate files load.
pub fn check(settings: &Inject) -> Result<(), tls::Error> {
    match &settings.tls {
        InjectTls::Files {
            cert_file,
            key_file,
        } => tls::load(cert_file, key_file).map(drop),
        InjectTls::Auto { .. } => Ok(()),
    }
}

/// Native sidecars are on by default from Kubernetes 1.29.
pub fn has_native_sidecars(version: (u32, u32)) -> bool {
    version >= (1, 29)
}

impl Injector {
    /// The injector of `config` (which must have `inject:`), for an API server
    /// of `version`; reads the Vault sources' CA bundles.
    pub fn new(config: &Config, version: (u32, u32)) -> Result<Injector, Error> {
        let settings = config.inject.clone().ok_or(Error::NoSection)?;
        let mut sources = Vec::new();
        for s in &config.sources {
            let pod = PodSource::of(s).map_err(|(path, source)| Error::Ca {
                source_name: s.name.clone(),
                path,
                source,
            })?;
            sources.extend(pod);
        }
        Ok(Injector {
            settings,
            sources,
            native_sidecar: has_native_sidecars(version),
        })
    }
}

/// The settings of the injector in unit tests: one Vault source.
#[cfg(test)]
pub(crate) const TEST_SETTINGS: &str = r#"
sources:
  - name: vault
    vault:
      address: https://vault.vault.svc:8200
      auth: { kubernetes: { role: default } }
inject:
  tls: { cert_file: /tls/tls.crt, key_file: /tls/tls.key }
  image: ramsecrets:test
"#;

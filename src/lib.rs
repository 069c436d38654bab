//! ramsecrets fetches secrets from HashiCorp Vault / OpenBao or AWS Secrets
//! Manager into an in-memory tmpfs, atomically, and keeps them fresh, so that
//! images and environments never carry credentials.
//!
//! The crate shows its layers as folders: [`cmd`] (each command, and what
//! they share), [`config`] (the validated configuration), [`source`] (the
//! backends), [`engine`] (fetch, write all or none, keep fresh, snapshots and
//! the hand-off), [`render`] (formats and templates), [`output`] (the tmpfs
//! writer, its one write path), [`os`] (signals, hardening, memory, the `exec`
//! child, on_change actions, watching, trust), and the other modes: [`proxy`]
//! (the local credential proxy), [`inject`] (the Kubernetes injector) and
//! [`drill`] (a timed rotation drill); [`telemetry`] is logs, metrics and
//! health; [`clock`] bounds every span and time read from outside; [`backoff`]
//! paces every call to a source; [`tls`] is the one
//! crypto provider. `main.rs` only dispatches.

// One audited exception, in `memory`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
pub mod cli;
mod clock;
pub mod cmd;
pub mod config;
mod drill;
mod engine;
pub mod exit;
/// Entry points for the fuzz targets in `fuzz/`, built only with the `fuzzing`
/// feature that `fuzz/` turns on; not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod inject;
mod os;
mod output;
mod proxy;
mod render;
mod secret;
mod source;
pub mod telemetry;
mod tls;

/// The tables of otherwise private modules that the book's reference pages are
/// generated from (`tests/reference.rs`): the injector's annotations (its own, and
/// what it does with vault-k8s's) and metrics, and the drill's exit codes.
pub mod reference {
    pub use crate::drill::{
        FAILED as DRILL_FAILED, INTERRUPTED as DRILL_INTERRUPTED,
        NOT_VERIFIED as DRILL_NOT_VERIFIED,
    };
    pub use crate::inject::compat::{
        Support as VaultK8sSupport, ANNOTATIONS as VAULT_K8S_ANNOTATIONS,
        PREFIX as VAULT_K8S_PREFIX,
    };
    pub use crate::inject::spec::{ANNOTATIONS, INJECTED, PREFIX, RENDERED_CA, RENDERED_CONFIG};
    pub use crate::telemetry::admission::reference_text as injector_metrics;
}

//! ramsecrets fetches secrets from HashiCorp Vault / OpenBao or AWS Secrets
//! Manager into an in-memory tmpfs, atomically, so that images and
//! environments never carry credentials.
//!
//! The binary's modes are built from these modules: [`config`] (validated
//! configuration), [`source`] (backends), [`render`] (file formats), [`output`]
//! (the tmpfs writer) and [`cycle`] (fetch all, write all or none).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod exit;
pub mod harden;
pub mod output;
pub mod render;
pub mod secret;
pub mod source;
pub mod telemetry;

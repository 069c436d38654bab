//! ramsecrets fetches secrets from HashiCorp Vault / OpenBao or AWS Secrets
//! Manager into an in-memory tmpfs, atomically, and keeps them fresh, so that
//! images and environments never carry credentials.
//!
//! The binary's modes are built from these modules: [`config`] (validated
//! configuration), [`source`] (backends), [`render`] (file formats) and
//! [`template`] (files over several secrets) in the language of [`jinja`], [`output`]
//! (the tmpfs writer, its one write path), [`fetch`] (the one fetch path:
//! limiter, deadlines, render), [`cycle`] (fetch all, write all or none), [`init`]
//! (the `init` command and its hand-off), [`rotation`] and [`sidecar`]
//! (`run`, `exec`) with the pacing of backend calls in [`backoff`],
//! [`supervise`] (the `exec`
//! child), [`proxy`] (the local credential proxy) over the [`store`]
//! snapshots that [`rotation`] publishes, [`notify`]
//! (on_change actions), [`watch`], [`state`] (the hand-off state file, and
//! the sidecar's reading of it),
//! [`telemetry`] (logs, metrics, health) and [`drill`] (a timed rotation
//! drill); [`check`] is what `check` verifies beyond the file. Each
//! command starts in its own module (`init::command`, `sidecar::command`, …);
//! `main.rs` only dispatches, and what commands share is in [`command`].

// One audited exception, in `memory`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod check;
pub mod cli;
pub mod command;
pub mod config;
pub mod cycle;
pub mod drill;
pub mod exit;
pub mod fetch;
pub mod harden;
pub mod http;
pub mod init;
pub mod inject;
pub mod jinja;
pub mod memory;
pub mod notify;
pub mod online;
pub mod output;
pub mod proxy;
pub mod render;
pub mod rotation;
pub mod secret;
pub mod sidecar;
pub mod signals;
pub mod source;
pub mod state;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod template;
pub mod trust;
pub mod watch;

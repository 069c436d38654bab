//! What a rotation did, whatever the backend ([`super::rotate`] for Vault,
//! [`super::aws`] for AWS): the steps and times the report shows, and how to
//! put the old value back.

use std::time::Instant;

use super::kv::KvUndo;

/// A rotation done.
pub struct Rotated {
    /// What was done, e.g. `kv write` or `rotate-role`.
    pub action: &'static str,
    /// What the secret was before (a version, a lease id, a serial), when known.
    pub from: Option<String>,
    /// What it is now, when known.
    pub to: Option<String>,
    /// The fields given new values (KV, AWS).
    pub fields: Vec<String>,
    /// Whether the drill made up a new value (a field no `--set` gave):
    /// such values are put back unless `--keep`.
    pub invented: bool,
    /// Intermediate steps, e.g. the AWSPENDING version written.
    pub steps: Vec<(&'static str, Instant)>,
    /// When the backend held the new value.
    pub written: Instant,
    /// How to put the old value back, for kinds that can.
    pub undo: Option<Undo>,
}

/// How to put the old value back.
pub enum Undo {
    /// Write the old data as a new KV version, if the drill's is still the latest.
    Kv(KvUndo),
    /// Move AWSCURRENT back.
    Aws {
        /// The version that was current.
        old: String,
        /// The version made current.
        new: String,
    },
}

/// What putting the old value back came to.
pub enum Restored {
    /// Put back, as said.
    Done(String),
    /// Left as it is, and why: the secret moved on since the drill wrote it.
    Left(String),
}

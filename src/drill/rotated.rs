//! What a rotation did, whatever the backend (its [`super::rotate::Rotator`]):
//! the steps and times the report shows, and how to put the old value back.

use std::time::Instant;

use super::rotate::Undo;
use super::shape::Set;

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

impl Rotated {
    /// A rotation written just now from version `from` to `to`, of `fields`
    /// (invented unless `sets` gave them), with no intermediate step.
    pub fn now(
        action: &'static str,
        from: String,
        to: String,
        fields: Vec<String>,
        sets: &[Set],
    ) -> Self {
        Rotated {
            action,
            from: Some(from),
            to: Some(to),
            invented: super::shape::invented(&fields, sets),
            fields,
            steps: Vec::new(),
            written: Instant::now(),
            undo: None,
        }
    }
}

/// What putting the old value back came to.
pub enum Restored {
    /// Put back, as said.
    Done(String),
    /// Left as it is, and why: the secret moved on since the drill wrote it.
    Left(String),
}

//! Rendering fetched secrets into file contents: the per-secret
//! [`format`]s, and [`template`]s over several secrets in the language of
//! [`jinja`].

pub mod format;
pub mod jinja;
pub mod template;

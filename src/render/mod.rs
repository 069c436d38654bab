//! Rendering fetched secrets into file contents: the per-secret
//! [`format`]s, and [`template`]s over several secrets in the language of
//! [`jinja`]; Vault Agent's
//! Go templates for pods written for vault-k8s in [`gotemplate`], with Go's
//! `fmt` in [`gofmt`]; which field
//! names `env` and `dotenv` write as variables in [`variables`].

pub mod format;
pub mod gofmt;
pub mod gotemplate;
pub mod jinja;
pub mod template;
pub mod variables;

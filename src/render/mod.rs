//! Rendering fetched secrets into file contents: the per-secret
//! [`format`]s; templates, the minijinja templates a config declares (a
//! secret's `template`, the `templates:` section) in [`template`], in the
//! language of [`jinja`]; agent templates, the Vault Agent Go templates of
//! pods written for vault-k8s (`format: go-template`), in
//! [`agent_template`]; which field names `env` and `dotenv` write as
//! variables in [`variables`].

pub mod agent_template;
pub mod format;
pub mod jinja;
pub mod template;
pub mod variables;

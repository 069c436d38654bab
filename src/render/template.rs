//! Templates over several secrets (the top-level `templates:`): the strict
//! rendering of one template from the fetched secrets, seen as
//! `secrets["<name>"].<field>` (which secrets it reads was found by
//! [`crate::render::jinja::reads`] when the config was loaded).
//!
//! Only the secrets a template reads are put in its context, each lent as an
//! object that hands out a field's text when the template asks for it, so a
//! value is copied only where it is used. A lookup that fails is remembered,
//! so the error names the secret and the field, never a value. minijinja's
//! own copies of the values it renders are not zeroized.

use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, Value};

use crate::config::{Config, Secret, Template};
use crate::exit::{Exit, ExitCode};
use crate::render::format::Rendered;
use crate::secret::{Fetched, Fields, SecretBytes};

/// Why a template could not be rendered. Messages name secrets and fields, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template reads a secret the config does not have.
    #[error("secret `{secret}` is not configured (secrets: {known})")]
    UnknownSecret {
        /// The name it asked for.
        secret: String,
        /// The configured names.
        known: String,
    },
    /// The secret lacks a field the template reads.
    #[error("field `{field}` is not in secret `{secret}` (it has: {available})")]
    MissingField {
        /// The secret.
        secret: String,
        /// The field.
        field: String,
        /// Field names present.
        available: String,
    },
    /// A binary field cannot go into a template.
    #[error("field `{field}` of secret `{secret}` is binary (not UTF-8 without NUL)")]
    Binary {
        /// The secret.
        secret: String,
        /// The field.
        field: String,
    },
    /// An input has not been fetched (yet).
    #[error("secret `{0}` has not been fetched")]
    NotFetched(String),
    /// The template does not parse.
    #[error("template failed: {0}")]
    Syntax(#[source] minijinja::Error),
    /// The template failed for another reason: its kind and line only, since
    /// the detail of a runtime error may quote a value.
    #[error("template failed: {0}")]
    Render(String),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        Exit::Data
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The last lookup that found nothing, shared by the objects of one render.
type Miss = Arc<Mutex<Option<Error>>>;

fn remember(miss: &Miss, e: Error) {
    *miss.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
}

/// `secrets`: the inputs of one template, by name.
#[derive(Debug)]
struct SecretsObject {
    secrets: Vec<(String, Value)>,
    known: String,
    miss: Miss,
}

impl Object for SecretsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let found = self.secrets.iter().find(|(n, _)| n == name);
        if found.is_none() {
            remember(
                &self.miss,
                Error::UnknownSecret {
                    secret: name.to_owned(),
                    known: self.known.clone(),
                },
            );
        }
        found.map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self.secrets.iter().map(|(n, _)| Value::from(n)).collect();
        Enumerator::Iter(Box::new(names.into_iter()))
    }
}

/// One secret's fields, handed out as text on lookup.
#[derive(Debug)]
struct FieldsObject {
    secret: String,
    fields: Fields,
    miss: Miss,
}

impl Object for FieldsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let field = key.as_str()?;
        let Some(value) = self.fields.get(field) else {
            remember(
                &self.miss,
                Error::MissingField {
                    secret: self.secret.clone(),
                    field: field.to_owned(),
                    available: self.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                },
            );
            return None;
        };
        match value.expose_str().filter(|s| !s.contains('\0')) {
            Some(text) => Some(Value::from(text)),
            None => {
                remember(
                    &self.miss,
                    Error::Binary {
                        secret: self.secret.clone(),
                        field: field.to_owned(),
                    },
                );
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self.fields.keys().map(Value::from).collect();
        Enumerator::Iter(Box::new(names.into_iter()))
    }
}

/// Renders `template` from what was fetched for each secret of `secrets`
/// (`fetched(i)` for the secret at index `i`, `None` when not fetched).
pub fn render<'a>(
    template: &Template,
    secrets: &[Secret],
    fetched: impl Fn(usize) -> Option<&'a Fetched>,
) -> Result<Rendered> {
    let miss = Miss::default();
    let mut inputs = Vec::with_capacity(template.inputs.len());
    for &i in &template.inputs {
        let name = &secrets[i].name;
        let f = fetched(i).ok_or_else(|| Error::NotFetched(name.clone()))?;
        let fields = FieldsObject {
            secret: name.clone(),
            fields: f.fields.clone(),
            miss: miss.clone(),
        };
        inputs.push((name.clone(), Value::from_object(fields)));
    }
    let known = secrets
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let root = SecretsObject {
        secrets: inputs,
        known,
        miss: miss.clone(),
    };
    let mut env = crate::render::jinja::environment();
    // A template file's last newline belongs to the file it renders.
    env.set_keep_trailing_newline(true);
    let tmpl = env
        .template_from_str(&template.text)
        .map_err(Error::Syntax)?;
    let mut out = SecretBytes::default();
    let ctx = minijinja::context! { secrets => Value::from_object(root) };
    let rendered = tmpl.render_captured_to(ctx, &mut out).map(drop);
    match rendered {
        Ok(()) => Ok(Rendered {
            file: template.file.clone(),
            bytes: out,
            mode: template.mode,
        }),
        Err(e) => {
            let recorded = miss.lock().unwrap_or_else(|p| p.into_inner()).take();
            match (e.kind(), recorded) {
                (minijinja::ErrorKind::UndefinedError, Some(named)) => Err(named),
                (kind, _) => {
                    let line = e
                        .line()
                        .map(|l| format!(" at line {l}"))
                        .unwrap_or_default();
                    Err(Error::Render(format!("{kind}{line}")))
                }
            }
        }
    }
}

/// The sidecar's last good file of each template: a template is rendered
/// again when one of its inputs was fetched, and written only when its bytes
/// changed; a template that fails keeps its last good file.
#[derive(Debug, Default)]
pub struct Rendering {
    last: Vec<Option<Rendered>>,
}

impl Rendering {
    /// Starts from the files of the first cycle, one per template.
    pub fn new(first: Vec<Rendered>) -> Self {
        Rendering {
            last: first.into_iter().map(Some).collect(),
        }
    }

    /// Takes over `templates` (a reloaded config): a template keeps the last
    /// file of the old template that wrote the same file.
    pub fn reload(&mut self, templates: &[Template]) {
        let mut old = std::mem::take(&mut self.last);
        self.last = templates
            .iter()
            .map(|t| {
                let same = old
                    .iter()
                    .position(|r| r.as_ref().is_some_and(|r| r.file == t.file));
                same.and_then(|p| old.swap_remove(p))
            })
            .collect();
    }

    /// Renders the templates that read any secret of `fresh` (every template
    /// when `None`); returns, by template index, the files that differ from
    /// the last good ones. Failures are logged and leave the last file as it is.
    pub fn render<'a>(
        &self,
        config: &Config,
        fresh: Option<&[usize]>,
        fetched: impl Fn(usize) -> Option<&'a Fetched>,
    ) -> Vec<(usize, Rendered)> {
        let mut out = Vec::new();
        for (i, t) in config.templates.iter().enumerate() {
            if fresh.is_some_and(|f| !t.inputs.iter().any(|x| f.contains(x))) {
                continue;
            }
            match render(t, &config.secrets, &fetched) {
                Ok(r) if self.last.get(i).and_then(Option::as_ref) == Some(&r) => {}
                Ok(r) => out.push((i, r)),
                Err(e) => {
                    tracing::error!(template = %t.file, error = %e, "template cannot be rendered; its last good file stays")
                }
            }
        }
        out
    }

    /// Records `r` as the file of template `i` once it is written.
    pub fn keep(&mut self, i: usize, r: Rendered) {
        if let Some(slot) = self.last.get_mut(i) {
            *slot = Some(r);
        }
    }

    /// The last good files.
    pub fn files(&self) -> impl Iterator<Item = &Rendered> {
        self.last.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    fn secret(name: &str) -> Secret {
        Secret {
            name: name.into(),
            source: 0,
            address: serde_json::from_value(serde_json::json!({ "read": format!("x/{name}") }))
                .unwrap(),
            file: name.into(),
            format: Format::Json,
            key: None,
            template: None,
            mode: 0o400,
            refresh: None,
            on_change: Vec::new(),
            write: false,
            allow_exec_variables: false,
        }
    }

    fn fetched(pairs: &[(&str, &[u8])]) -> Fetched {
        Fetched::fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec())))
                .collect(),
        )
    }

    fn template(text: &str, inputs: Vec<usize>) -> Template {
        Template {
            file: "app.properties".into(),
            text: text.into(),
            mode: 0o440,
            on_change: Vec::new(),
            inputs,
            dynamic: false,
        }
    }

    #[test]
    fn renders_fields_of_several_secrets() {
        let secrets = [secret("db"), secret("api-key")];
        let f = [
            fetched(&[("user", b"app"), ("password", b"hunter2")]),
            fetched(&[("token", b"t0k")]),
        ];
        let t = template(
            "db.user={{ secrets.db.user }}\ndb.password={{ secrets['db'].password }}\napi={{ secrets['api-key'].token }}\n",
            vec![0, 1],
        );
        let r = render(&t, &secrets, |i| f.get(i)).unwrap();
        assert_eq!(
            r.bytes.expose(),
            b"db.user=app\ndb.password=hunter2\napi=t0k\n"
        );
        assert_eq!((r.file.as_str(), r.mode), ("app.properties", 0o440));
    }

    #[test]
    fn errors_name_the_secret_and_the_field_never_a_value() {
        let secrets = [secret("db"), secret("bin")];
        let f = [
            fetched(&[("user", b"app"), ("password", b"hunter2")]),
            fetched(&[("blob", &[0, 255])]),
        ];
        let run = |text: &str, inputs: Vec<usize>| {
            render(&template(text, inputs), &secrets, |i| f.get(i))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            run("{{ secrets.db.passwd }}", vec![0]),
            "field `passwd` is not in secret `db` (it has: password, user)"
        );
        assert_eq!(
            run("{{ secrets[n].x }}", vec![0]),
            "template failed: undefined value at line 1"
        );
        assert_eq!(
            run("{% set n = 'nope' %}{{ secrets[n].x }}", vec![0]),
            "secret `nope` is not configured (secrets: db, bin)"
        );
        assert_eq!(
            run("{{ secrets.bin.blob }}", vec![1]),
            "field `blob` of secret `bin` is binary (not UTF-8 without NUL)"
        );
        let e = run("{{ secrets.db.password | int }}", vec![0]);
        assert!(!e.contains("hunter2"), "{e}");
        let e = render(
            &template("{{ secrets.db.user }}", vec![0]),
            &secrets,
            |_| None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "secret `db` has not been fetched");
    }

    #[test]
    fn whole_secrets_can_be_iterated() {
        let secrets = [secret("db")];
        let f = [fetched(&[("a", b"1"), ("b", b"2")])];
        let t = template(
            "{% for k, v in secrets.db | items %}{{ k }}={{ v }};{% endfor %}",
            vec![0],
        );
        let r = render(&t, &secrets, |i| f.get(i)).unwrap();
        assert_eq!(r.bytes.expose(), b"a=1;b=2;");
    }
}

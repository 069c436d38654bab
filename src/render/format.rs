//! Turns the fields of a fetched secret into file contents: `raw`, `json`,
//! `dotenv`, `env`, `yaml`, strict minijinja templates, and the three PEM files
//! of a certificate. Output is built straight into [`SecretBytes`]; errors name
//! the secret and the field, never a value.

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::{previous_file, Format, Secret};
use crate::exit::{Exit, ExitCode};
use crate::render::{agent_template, variables};
use crate::secret::{Fetched, Fields, SecretBytes};

/// One file to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Path relative to the output directory.
    pub file: String,
    /// Contents.
    pub bytes: SecretBytes,
    /// Mode.
    pub mode: u32,
}

/// Why a secret could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret lacks a field the config asks for.
    #[error("field `{field}` is not in the secret (it has: {available})")]
    MissingField {
        /// The field.
        field: String,
        /// Field names present.
        available: String,
    },
    /// `raw` without `key` needs exactly one field.
    #[error("format raw needs `key` when the secret has {count} fields (it has: {available})")]
    NotOneField {
        /// How many fields.
        count: usize,
        /// Field names present.
        available: String,
    },
    /// A binary value cannot go into a text format.
    #[error("field `{field}` is binary (not UTF-8 without NUL); only `raw` can write it")]
    Binary {
        /// The field.
        field: String,
    },
    /// A field name cannot be a variable name.
    #[error("field name `{field}` is not a valid variable name for format {format}")]
    BadName {
        /// The field.
        field: String,
        /// The format.
        format: &'static str,
    },
    /// A field name would set a variable that changes what a program loads or runs.
    #[error("field name `{field}` would set a variable that changes what a program loads or runs; format {format} refuses it (set `allow_exec_variables: true` on the secret to write it)")]
    ExecVariable {
        /// The field.
        field: String,
        /// The format.
        format: &'static str,
    },
    /// The fields could not be written as JSON or YAML (not a template's
    /// failure: the serializer's error, which names no value, is the cause).
    #[error("cannot write the fields as {format}: {cause}")]
    Encode {
        /// The format: `json` or `yaml`.
        format: &'static str,
        /// The serializer's error.
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The template does not parse.
    #[error("template failed: {0}")]
    Syntax(#[source] minijinja::Error),
    /// The template failed: its kind and line only, since the detail of a
    /// runtime error may quote a value.
    #[error("template failed: {0}")]
    Template(String),
    /// An agent template (`go-template`, Vault Agent's) failed.
    #[error(transparent)]
    AgentTemplate(crate::render::agent_template::Error),
    /// The previous version (`previous: true`) could not be rendered.
    #[error("the AWSPREVIOUS version: {0}")]
    Previous(Box<Error>),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            // Writing text into memory cannot fail but by a bug of ours.
            Error::Encode { .. } => Exit::Software,
            _ => Exit::Data,
        }
    }
}

impl Error {
    /// A serializer's failure to write the fields as `format`.
    pub fn encode(
        format: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Encode {
            format,
            cause: Box::new(e),
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders what was fetched for `secret`: its files, and with a previous
/// version (AWS `previous: true`) the same files again as `<file>.previous`;
/// nothing for a secret with `write: false`.
pub fn render_fetched(secret: &Secret, fetched: &Fetched) -> Result<Vec<Rendered>> {
    if !secret.write {
        return Ok(Vec::new());
    }
    let mut files = render_value(secret, &fetched.fields, fetched.stored.as_ref())?;
    if let Some(previous) = &fetched.previous {
        let old = render_value(secret, &previous.fields, previous.stored.as_ref())
            .map_err(|e| Error::Previous(Box::new(e)))?;
        files.extend(old.into_iter().map(|r| Rendered {
            file: previous_file(&r.file),
            ..r
        }));
    }
    Ok(files)
}

/// Renders `fields` for `secret` into the files it writes; `raw` without
/// `key` writes `stored` when the backend gave one.
fn render_value(
    secret: &Secret,
    fields: &Fields,
    stored: Option<&SecretBytes>,
) -> Result<Vec<Rendered>> {
    if let Some(files) = secret.address.field_files() {
        return files
            .iter()
            .map(|(field, ext)| {
                Ok(Rendered {
                    file: format!("{}.{ext}", secret.file),
                    bytes: get(fields, field)?.clone(),
                    mode: secret.mode,
                })
            })
            .collect();
    }
    let bytes = match secret.format {
        Format::Raw => match (secret.key.as_deref(), stored) {
            (None, Some(stored)) => stored.clone(),
            (key, _) => raw(fields, key)?,
        },
        Format::Json => {
            let mut out = SecretBytes::default();
            serde_json::to_writer(&mut out, &text_fields(fields)?)
                .map_err(|e| Error::encode("json", e))?;
            out
        }
        Format::Yaml => {
            let mut out = SecretBytes::default();
            crate::config::yaml::write(&mut out, &text_fields(fields)?)
                .map_err(|e| Error::encode("yaml", e))?;
            out
        }
        Format::Dotenv => lines(fields, "dotenv", dotenv_line, secret.allow_exec_variables)?,
        Format::Env => lines(fields, "env", env_line, secret.allow_exec_variables)?,
        Format::Template => template(secret.template.as_deref().unwrap_or_default(), fields)?,
        Format::AgentTemplate => {
            let (Some(path), Some(data)) = (secret.address.read_path(), stored) else {
                return Err(Error::AgentTemplate(agent_template::Error::Render(
                    "the secret has no Vault read to render".into(),
                )));
            };
            agent_template::render(secret.template.as_deref().unwrap_or_default(), path, data)
                .map_err(Error::AgentTemplate)?
        }
    };
    // Kept until the next change (for writing back a file changed behind
    // our back): no more room than the bytes take.
    Ok(vec![Rendered {
        file: secret.file.clone(),
        bytes: bytes.fitted(),
        mode: secret.mode,
    }])
}

fn names(fields: &Fields) -> String {
    fields
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn get<'a>(fields: &'a Fields, field: &str) -> Result<&'a SecretBytes> {
    fields.get(field).ok_or_else(|| Error::MissingField {
        field: field.to_owned(),
        available: names(fields),
    })
}

/// One field: `key`, or the only one.
pub fn raw(fields: &Fields, key: Option<&str>) -> Result<SecretBytes> {
    match key {
        Some(k) => get(fields, k).cloned(),
        None if fields.len() == 1 => Ok(fields.values().next().cloned().unwrap_or_default()),
        None => Err(Error::NotOneField {
            count: fields.len(),
            available: names(fields),
        }),
    }
}

/// Text of a field: UTF-8 without NUL, else [`Error::Binary`].
fn text<'a>(name: &str, value: &'a SecretBytes) -> Result<&'a str> {
    value
        .expose_str()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| Error::Binary {
            field: name.to_owned(),
        })
}

/// The fields as text, or [`Error::Binary`] naming the first that is not.
pub fn text_fields(fields: &Fields) -> Result<BTreeMap<&str, &str>> {
    fields
        .iter()
        .map(|(k, v)| Ok((k.as_str(), text(k, v)?)))
        .collect()
}

fn lines(
    fields: &Fields,
    format: &'static str,
    line: fn(&mut SecretBytes, &str, &str),
    allow_exec_variables: bool,
) -> Result<SecretBytes> {
    let mut out = SecretBytes::default();
    for (k, v) in fields {
        if !variables::is_name(k) {
            return Err(Error::BadName {
                field: k.clone(),
                format,
            });
        }
        if !allow_exec_variables && variables::changes_execution(k) {
            return Err(Error::ExecVariable {
                field: k.clone(),
                format,
            });
        }
        line(&mut out, k, text(k, v)?);
    }
    Ok(out)
}

/// `KEY='value'` when that is literal everywhere, else a double-quoted value
/// with the backslash escapes python-dotenv decodes (`\\`, `\"`, `\n`, `\r`).
/// python-dotenv interpolates `${NAME}` in every value, quoted or not, and
/// has no escape for it: a `$` before `{` is written `${:-$}` (the empty
/// name is never set, so its default, `$`, is read back).
fn dotenv_line(out: &mut SecretBytes, k: &str, v: &str) {
    if !v.contains(['\'', '\n', '\r', '\\']) && !v.contains("${") {
        let _ = write!(out, "{k}='");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"'\n");
        return;
    }
    let _ = write!(out, "{k}=\"");
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '"' => out.extend_from_slice(b"\\\""),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '$' if chars.peek() == Some(&'{') => out.extend_from_slice(b"${:-$}"),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.extend_from_slice(b"\"\n");
}

/// `export KEY='value'`, with `'` written as `'\''`: nothing inside single
/// quotes is special to a POSIX shell.
fn env_line(out: &mut SecretBytes, k: &str, v: &str) {
    let _ = write!(out, "export {k}='");
    for part in v.split('\'').enumerate() {
        if part.0 > 0 {
            out.extend_from_slice(b"'\\''");
        }
        out.extend_from_slice(part.1.as_bytes());
    }
    out.extend_from_slice(b"'\n");
}

fn template(source: &str, fields: &Fields) -> Result<SecretBytes> {
    let env = crate::render::jinja::environment();
    let tmpl = env.template_from_str(source).map_err(Error::Syntax)?;
    // Strict undefined catches these too, but this names the field.
    let mut missing: Vec<_> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !fields.contains_key(v) && env.globals().all(|(g, _)| g != v))
        .collect();
    missing.sort();
    if let Some(field) = missing.into_iter().next() {
        return Err(Error::MissingField {
            field,
            available: names(fields),
        });
    }
    let ctx: BTreeMap<&str, minijinja::Value> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), minijinja::Value::from(text(k, v).ok()?))))
        .collect();
    let mut out = SecretBytes::default();
    tmpl.render_captured_to(ctx, &mut out).map_err(|e| {
        // The detail of a runtime error may quote a value: keep only its kind and line.
        let line = e
            .line()
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        match e.kind() {
            minijinja::ErrorKind::UndefinedError => {
                Error::Template(format!("a field used{line} is missing or binary"))
            }
            kind => Error::Template(format!("{kind}{line}")),
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;

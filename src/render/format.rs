//! Turns the fields of a fetched secret into file contents: `raw`, `json`,
//! `dotenv`, `env`, `yaml`, strict minijinja templates, and the three PEM files
//! of a certificate. Output is built straight into [`SecretBytes`]; errors name
//! the secret and the field, never a value.

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::{previous_file, Format, Secret};
use crate::exit::{Exit, ExitCode};
use crate::render::{gotemplate, variables};
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
    /// A Vault Agent template failed.
    #[error(transparent)]
    GoTemplate(crate::render::gotemplate::Error),
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
            serde_yaml::to_writer(&mut out, &text_fields(fields)?)
                .map_err(|e| Error::encode("yaml", e))?;
            out
        }
        Format::Dotenv => lines(fields, "dotenv", dotenv_line, secret.allow_exec_variables)?,
        Format::Env => lines(fields, "env", env_line, secret.allow_exec_variables)?,
        Format::Template => template(secret.template.as_deref().unwrap_or_default(), fields)?,
        Format::GoTemplate => {
            let (Some(path), Some(data)) = (secret.address.read_path(), stored) else {
                return Err(Error::GoTemplate(gotemplate::Error::Render(
                    "the secret has no Vault read to render".into(),
                )));
            };
            gotemplate::render(secret.template.as_deref().unwrap_or_default(), path, data)
                .map_err(Error::GoTemplate)?
        }
    };
    Ok(vec![Rendered {
        file: secret.file.clone(),
        bytes,
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
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &[u8])]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec())))
            .collect()
    }

    fn secret(format: Format, key: Option<&str>, template: Option<&str>) -> Secret {
        Secret {
            name: "db".into(),
            source: 0,
            address: serde_json::from_value(serde_json::json!({ "read": "x/y" })).unwrap(),
            file: "db".into(),
            format,
            key: key.map(Into::into),
            template: template.map(Into::into),
            mode: 0o400,
            refresh: None,
            on_change: Vec::new(),
            write: true,
            allow_exec_variables: false,
        }
    }

    fn one(format: Format, key: Option<&str>, tmpl: Option<&str>, f: &Fields) -> Result<String> {
        let out = render_value(&secret(format, key, tmpl), f, None)?;
        Ok(String::from_utf8(out[0].bytes.expose().to_vec()).unwrap())
    }

    #[test]
    fn formats() {
        let f = fields(&[("user", b"app"), ("pass", b"p'w\"$x\n")]);
        assert_eq!(
            one(Format::Json, None, None, &f).unwrap(),
            r#"{"pass":"p'w\"$x\n","user":"app"}"#
        );
        assert_eq!(
            one(Format::Yaml, None, None, &f).unwrap(),
            "pass: |\n  p'w\"$x\nuser: app\n"
        );
        assert_eq!(
            one(Format::Dotenv, None, None, &f).unwrap(),
            "pass=\"p'w\\\"$x\\n\"\nuser='app'\n"
        );
        assert_eq!(
            one(Format::Env, None, None, &f).unwrap(),
            "export pass='p'\\''w\"$x\n'\nexport user='app'\n"
        );
        assert_eq!(one(Format::Raw, Some("user"), None, &f).unwrap(), "app");
        assert_eq!(
            one(
                Format::Template,
                None,
                Some("{{ user }}:{{ pass|length }}"),
                &f
            )
            .unwrap(),
            "app:7"
        );
    }

    #[test]
    fn filters_escape_values_for_urls_json_and_base64() {
        let f = fields(&[
            ("user", b"app"),
            ("password", b"p@ss:w/rd#?%& \"x\"\n"),
            ("b64", b"aGkgdGhlcmU="),
        ]);
        let url = "postgres://{{ user | urlencode }}:{{ password | urlencode }}@db/app";
        assert_eq!(
            one(Format::Template, None, Some(url), &f).unwrap(),
            "postgres://app:p%40ss%3Aw%2Frd%23%3F%25%26%20%22x%22%0A@db/app"
        );
        let json = one(Format::Template, None, Some("{{ password | tojson }}"), &f).unwrap();
        assert_eq!(
            serde_json::from_str::<String>(&json).unwrap(),
            "p@ss:w/rd#?%& \"x\"\n"
        );
        let round = "{{ password | b64encode | b64decode }}|{{ b64 | b64decode }}";
        assert_eq!(
            one(Format::Template, None, Some(round), &f).unwrap(),
            "p@ss:w/rd#?%& \"x\"\n|hi there"
        );
        let err = one(Format::Template, None, Some("{{ user | b64decode }}"), &f).unwrap_err();
        assert!(!err.to_string().contains("app"), "{err}");
    }

    #[test]
    fn binary_survives_raw_only() {
        let bin: &[u8] = &[0, 159, 146, 150, 255];
        let f = fields(&[("blob", bin)]);
        let out = render_value(&secret(Format::Raw, None, None), &f, None).unwrap();
        assert_eq!(out[0].bytes.expose(), bin);
        let err = one(Format::Json, None, None, &f).unwrap_err();
        assert!(matches!(err, Error::Binary { .. }), "{err}");
    }

    #[test]
    fn errors_name_the_field_not_the_value() {
        let f = fields(&[("user", b"app"), ("pass", b"hunter2")]);
        let e = one(Format::Template, None, Some("{{ user }}{{ password }}"), &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `password` is not in the secret (it has: pass, user)"
        );
        let e = one(Format::Raw, Some("nope"), None, &f).unwrap_err();
        assert!(e.to_string().contains("`nope`"));
        let e = one(Format::Raw, None, None, &f).unwrap_err();
        assert!(matches!(e, Error::NotOneField { count: 2, .. }));
        let e = one(Format::Template, None, Some("{{ pass | int }}"), &f).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let bad = fields(&[("a-b", b"x")]);
        assert!(matches!(
            one(Format::Env, None, None, &bad).unwrap_err(),
            Error::BadName { .. }
        ));
    }

    #[test]
    fn names_that_change_what_programs_run_are_refused_unless_allowed() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "BASH_ENV",
            "NODE_OPTIONS",
            "DYLD_INSERT_LIBRARIES",
        ] {
            let f = fields(&[(name, b"/tmp/evil"), ("user", b"app")]);
            for format in [Format::Env, Format::Dotenv] {
                let e = one(format, None, None, &f).unwrap_err();
                assert!(matches!(e, Error::ExecVariable { .. }), "{name}: {e}");
                assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
                assert!(e.to_string().contains("allow_exec_variables"), "{e}");
                let mut allowed = secret(format, None, None);
                allowed.allow_exec_variables = true;
                let out = render_value(&allowed, &f, None).unwrap();
                let text = out[0].bytes.expose_str().unwrap();
                assert!(text.contains(&format!("{name}=")), "{text}");
            }
            // Other formats name no variable.
            assert!(one(Format::Json, None, None, &f).is_ok());
        }
        let f = fields(&[("PATHNAME", b"x"), ("MY_PATH", b"y"), ("LDAP_URL", b"z")]);
        assert!(one(Format::Env, None, None, &f).is_ok());
    }

    #[test]
    fn a_serializer_failure_is_not_a_template_error() {
        let serde = serde_json::from_str::<u8>("x").unwrap_err();
        let e = Error::encode("json", serde);
        assert!(matches!(e, Error::Encode { format: "json", .. }));
        let shown = e.to_string();
        assert!(
            shown.starts_with("cannot write the fields as json: "),
            "{shown}"
        );
        assert!(!shown.contains("template"), "{shown}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.exit(), Exit::Software);
        let f = fields(&[("user", b"app")]);
        let e = one(Format::Template, None, Some("{{ user"), &f).unwrap_err();
        assert!(matches!(e, Error::Syntax(_)), "{e}");
        assert!(
            e.to_string().starts_with("template failed: syntax error"),
            "{e}"
        );
        assert_eq!(e.exit(), Exit::Data);
    }

    /// Values that broke a reader: a trailing backslash, `${VAR}`, quotes,
    /// newlines, shell syntax.
    const NASTY: [&str; 9] = [
        "ends in a backslash\\",
        "${HOME} and ${NOPE:-x} and $HOME",
        "it's \"quoted\"",
        "two\nlines\r\n",
        "a'b\"c$(touch /tmp/x)`id`\\\n$HOME",
        "\\'",
        "$",
        "${",
        "}{$}{${}",
    ];

    /// `values` as `V0`, `V1`, … rendered as `dotenv`, what the test bed's
    /// python-dotenv (interpolation on) reads back, and what was written.
    fn through_python_dotenv(
        values: &[&str],
    ) -> (String, BTreeMap<String, String>, BTreeMap<String, String>) {
        let pairs: Vec<(String, &[u8])> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("V{i}"), v.as_bytes()))
            .collect();
        let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let text = one(Format::Dotenv, None, None, &fields(&refs)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, &text).unwrap();
        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let out = std::process::Command::new(python)
            .args(["-c", "import json, sys, dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1], interpolate=True)))"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
        let want: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        (text, read, want)
    }

    #[test]
    fn dotenv_reads_back_exactly_through_python_dotenv() {
        let (text, read, want) = through_python_dotenv(&NASTY);
        assert_eq!(read, want, "{text}");
    }

    /// What `sh` reads back from `v` written as `env` and sourced.
    fn through_sh(v: &str) -> String {
        let f = fields(&[("V", v.as_bytes())]);
        let script = one(Format::Env, None, None, &f).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{script}printf %s \"$V\""))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn env_output_is_safe_to_source() {
        for nasty in NASTY {
            assert_eq!(through_sh(nasty), nasty);
        }
    }

    /// Values built from what dotenv and shell readers treat specially, and
    /// arbitrary text.
    fn values() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let special = prop::sample::select(vec![
            '$', '{', '}', ':', '-', '\\', '\'', '"', '`', '\n', '\r', '\t', ' ', '#', '=', 'a',
            'é',
        ]);
        prop_oneof![
            prop::collection::vec(special, 0..16).prop_map(|v| v.into_iter().collect()),
            any::<String>(),
        ]
        .prop_filter("no NUL: no environment holds one", |v| !v.contains('\0'))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn env_round_trips_through_sh(v in values()) {
            proptest::prop_assert_eq!(through_sh(&v), v);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        /// Many values per case: one python-dotenv run reads them all.
        #[test]
        fn dotenv_round_trips_through_python_dotenv(vs in proptest::collection::vec(values(), 1..32)) {
            let refs: Vec<&str> = vs.iter().map(String::as_str).collect();
            let (text, read, want) = through_python_dotenv(&refs);
            proptest::prop_assert_eq!(read, want, "{}", text);
        }
    }
}

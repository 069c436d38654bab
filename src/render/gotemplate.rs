//! Vault Agent templates (consul-template, Go `text/template`): the subset
//! that pods written for vault-k8s use, parsed and executed by the `gotmpl`
//! crate (a port of Go's `text/template` with Go's output: `map[k:v]`,
//! `<nil>`, `<no value>`, `printf`'s verbs) plus consul-template's functions
//! `secret`, `toJSON`, `toJSONPretty`, `base64Encode`, `base64Decode` and
//! `trimSpace`.
//!
//! [`check`] runs when a config is loaded (and so when the injector admits a
//! pod): anything outside the subset is an error naming the construct and
//! its line, never a failure at run time. A template reads one secret, the
//! path its secret is read from; [`render`] executes it over that read's
//! `data` (JSON numbers as their text, as Vault's client keeps them).
//! Copies of values inside `gotmpl` are not zeroized.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::parse::{Expr, ListNode, Node, PipeNode};
use gotmpl::{Template, TemplateError, Value};

use crate::secret::SecretBytes;

/// The template vault-k8s writes for a secret without one (`.Data` as Go
/// prints a map, one `key: value` line per field).
pub fn default_template(path: &str) -> String {
    format!("{{{{ with secret \"{path}\" }}}}{{{{ range $k, $v := .Data }}}}{{{{ $k }}}}: {{{{ $v }}}}\n{{{{ end }}}}{{{{ end }}}}")
}

/// Why a template is refused or failed. Messages name constructs, lines and
/// paths, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// It does not parse (or calls a function consul-template has and ramsecrets does not).
    #[error("{0}")]
    Syntax(String),
    /// A construct outside the supported subset.
    #[error("line {line}: {construct} is not supported: {why}")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// The construct, e.g. `{{ template }}`.
        construct: String,
        /// Why, or what to do instead.
        why: String,
    },
    /// Execution failed (the kind only: details may quote a value).
    #[error("template failed: {0}")]
    Render(String),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The template's own name, as errors show it.
const NAME: &str = "template";

/// consul-template's functions that ramsecrets has.
const OURS: &[&str] = &[
    "secret",
    "toJSON",
    "toJSONPretty",
    "base64Encode",
    "base64Decode",
    "trimSpace",
];
/// Go's own functions (text/template builtins), all side-effect free.
const GO: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge",
];
/// Fields of consul-template's secret other than `.Data`.
const SECRET_FIELDS: &[&str] = &[
    "LeaseID",
    "LeaseDuration",
    "Renewable",
    "RequestID",
    "Warnings",
    "Auth",
    "WrapInfo",
];

/// A path as `secret` and annotations compare it.
fn norm(path: &str) -> &str {
    path.trim().trim_matches('/')
}

/// Checks `text` against the subset, for a secret read from `path`.
pub fn check(text: &str, path: &str) -> Result<()> {
    parse(text, path, Value::Nil, serde_json::Value::Null).map(drop)
}

/// Parses and checks `text`; `secret` answers `answer`, and `toJSON` writes
/// parts of `raw` (the read's data as JSON) with their numbers as Vault wrote them.
fn parse(text: &str, path: &str, answer: Value, raw: serde_json::Value) -> Result<Template> {
    let raw = Arc::new(raw);
    let own = norm(path).to_owned();
    let secret = move |args: &[Value]| match args {
        [Value::String(p)] if norm(p) == own => Ok(answer.clone()),
        _ => Err(TemplateError::Exec("secret".into())),
    };
    let raw_pretty = raw.clone();
    let template = Template::new(NAME)
        .func("secret", secret)
        .func("toJSON", move |args| to_json(args, &raw, false))
        .func("toJSONPretty", move |args| to_json(args, &raw_pretty, true))
        .func("base64Encode", |args| {
            let s = one_string(args, "base64Encode")?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s).into(),
            ))
        })
        .func("base64Decode", |args| {
            let s = one_string(args, "base64Decode")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| TemplateError::Exec("base64Decode: not base64".into()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| TemplateError::Exec("base64Decode: not UTF-8".into()))?;
            Ok(Value::String(text.into()))
        })
        .func("trimSpace", |args| {
            Ok(Value::String(one_string(args, "trimSpace")?.trim().into()))
        })
        .max_range_iters(1_000_000)
        .parse(text)
        .map_err(|e| Error::Syntax(e.to_string()))?;
    if let Some(extra) = template.templates().into_iter().find(|n| *n != NAME) {
        return Err(Error::Unsupported {
            line: 1,
            construct: format!("{{{{ define \"{extra}\" }}}}"),
            why: "a template is one file: no named templates".into(),
        });
    }
    if let Some(body) = template.lookup(NAME) {
        walk(body, norm(path))?;
    }
    Ok(template)
}

/// Renders `text` for a secret read from `path`, whose read answered
/// `data` (the JSON of the response's `data`). Any text and data may come
/// in: the whole way from untrusted input, and so a fuzz target.
pub fn render(text: &str, path: &str, data: &SecretBytes) -> Result<SecretBytes> {
    let json: serde_json::Value = serde_json::from_slice(data.expose())
        .map_err(|_| Error::Render("the read's data is not JSON".into()))?;
    let answer = Value::Map(Arc::new(BTreeMap::from([(
        Arc::from("Data"),
        value(&json),
    )])));
    let template = parse(text, path, answer, json)?;
    let mut out = SecretBytes::default();
    template
        .execute(&mut out, &Value::Nil)
        .map_err(|e| Error::Render(kind(&e)))?;
    Ok(out)
}

/// What went wrong, in words that cannot quote a value.
fn kind(e: &TemplateError) -> String {
    match e {
        TemplateError::Exec(m) if OURS.iter().any(|f| m.starts_with(f)) => m.clone(),
        TemplateError::IndexOutOfRange { .. }
        | TemplateError::TypeMismatch { .. }
        | TemplateError::MissingKey { .. }
        | TemplateError::RecursionLimit
        | TemplateError::RangeIterLimit
        | TemplateError::UndefinedVariable(_)
        | TemplateError::ArgCount { .. } => e.to_string(),
        TemplateError::NotIterable(_) => "cannot range over this value".into(),
        _ => "execution error".into(),
    }
}

fn unsupported(line: usize, construct: impl Into<String>, why: impl Into<String>) -> Error {
    Error::Unsupported {
        line,
        construct: construct.into(),
        why: why.into(),
    }
}

fn walk(list: &ListNode, path: &str) -> Result<()> {
    for node in &list.nodes {
        match node {
            Node::List(l) => walk(l, path)?,
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
            Node::Action(a) => pipe(&a.pipe, path)?,
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe(&b.pipe, path)?;
                walk(&b.body, path)?;
                if let Some(e) = &b.else_body {
                    walk(e, path)?;
                }
            }
            Node::Template(t) => {
                return Err(unsupported(
                    t.pos.line,
                    format!("{{{{ template \"{}\" }}}}", t.name),
                    "a template is one file: no named templates",
                ))
            }
            Node::Define(d) => {
                return Err(unsupported(
                    d.pos.line,
                    format!("{{{{ define \"{}\" }}}}", d.name),
                    "a template is one file: no named templates",
                ))
            }
        }
    }
    Ok(())
}

fn pipe(p: &PipeNode, path: &str) -> Result<()> {
    for command in &p.commands {
        if let Some(Expr::Identifier(pos, name)) = command.args.first() {
            if name == "secret" {
                match &command.args[1..] {
                    [Expr::String(_, p)] if norm(p) == path => {}
                    [Expr::String(_, p)] => {
                        return Err(unsupported(
                            pos.line,
                            format!("secret \"{p}\""),
                            format!("this file's secret is read from `{path}`; a template reads only that path"),
                        ))
                    }
                    _ => {
                        return Err(unsupported(
                            pos.line,
                            "secret",
                            "it takes one quoted path (writes with parameters are not supported)",
                        ))
                    }
                }
            }
        }
        for arg in &command.args {
            expr(arg, path)?;
        }
    }
    Ok(())
}

fn expr(e: &Expr, path: &str) -> Result<()> {
    match e {
        Expr::Identifier(pos, name)
            if !OURS.contains(&name.as_str()) && !GO.contains(&name.as_str()) =>
        {
            Err(unsupported(
                pos.line,
                format!("function `{name}`"),
                format!("supported: {}, {}", OURS.join(", "), GO.join(", ")),
            ))
        }
        Expr::Field(pos, fields) | Expr::Variable(pos, _, fields) | Expr::Chain(pos, _, fields)
            if fields
                .first()
                .is_some_and(|f| SECRET_FIELDS.contains(&f.as_str())) =>
        {
            Err(unsupported(
                pos.line,
                format!(".{}", fields[0]),
                "only .Data of a secret is supported",
            ))
        }
        Expr::Pipe(_, p) => pipe(p, path),
        Expr::Chain(_, inner, _) => expr(inner, path),
        _ => Ok(()),
    }
}

fn one_string(args: &[Value], name: &str) -> Result<String, TemplateError> {
    match args {
        [Value::String(s)] => Ok(s.to_string()),
        _ => Err(TemplateError::Exec(format!("{name} takes one string"))),
    }
}

/// A read's `data` as template values: JSON numbers stay their text, as Go's
/// `json.Number` (a string) in Vault's client.
pub fn value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::String(n.to_string().into()),
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => Value::List(a.iter().map(value).collect()),
        serde_json::Value::Object(m) => Value::Map(Arc::new(
            m.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), value(v)))
                .collect::<BTreeMap<_, _>>(),
        )),
    }
}

/// `toJSON`/`toJSONPretty` as consul-template: Go's `json.Marshal` (sorted
/// keys, `<`, `>`, `&`, U+2028 and U+2029 escaped), nil as nothing. A value
/// that is a part of the read's data is written from the data, so its
/// numbers stay numbers.
fn to_json(args: &[Value], raw: &serde_json::Value, pretty: bool) -> Result<Value, TemplateError> {
    let [v] = args else {
        return Err(TemplateError::Exec("toJSON takes one value".into()));
    };
    if matches!(v, Value::Nil) {
        return Ok(Value::String("".into()));
    }
    let json = find(raw, v, 0).unwrap_or_else(|| back(v));
    let text = match pretty {
        true => serde_json::to_string_pretty(&json),
        false => serde_json::to_string(&json),
    }
    .map_err(|_| TemplateError::Exec("toJSON".into()))?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(Value::String(out.into()))
}

/// The part of `raw` that `v` was made from, searched a few levels deep.
fn find(raw: &serde_json::Value, v: &Value, depth: usize) -> Option<serde_json::Value> {
    if value(raw) == *v {
        return Some(raw.clone());
    }
    match raw {
        serde_json::Value::Object(m) if depth < 3 => {
            m.values().find_map(|child| find(child, v, depth + 1))
        }
        _ => None,
    }
}

/// A template value as JSON.
fn back(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => l.iter().map(back).collect(),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), back(v))).collect())
        }
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KV2: &str = r#"{"data":{"password":"p<&>w","username":"app","port":5432},
        "metadata":{"created_time":"2026-12-07T02:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}}"#;

    fn run(text: &str) -> String {
        let out = render(text, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap();
        out.expose_str().unwrap().to_owned()
    }

    #[test]
    fn the_default_template_prints_data_as_go_prints_maps() {
        assert_eq!(
            run(&default_template("secret/data/app")),
            "data: map[password:p<&>w port:5432 username:app]\n\
             metadata: map[created_time:2026-12-07T02:00:00Z custom_metadata:<nil> deletion_time: destroyed:false version:1]\n"
        );
    }

    #[test]
    fn the_subset_renders() {
        let t = r#"{{- with secret "secret/data/app" -}}
postgres://{{ .Data.data.username }}:{{ .Data.data.password }}@db:{{ .Data.data.port }}/app
{{ if eq .Data.data.username "app" }}yes{{ else }}no{{ end }} v{{ .Data.metadata.version }}
{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | printf "%q" }};{{ end }}
{{ index .Data.data "username" | base64Encode }} {{ "YXBw" | base64Decode }} [{{ "  x \n" | trimSpace }}]
{{ .Data.data | toJSON }}
{{ .Data.data.missing }}
{{- end }}"#;
        assert_eq!(
            run(t),
            "postgres://app:p<&>w@db:5432/app\nyes v1\n\
             password=\"p<&>w\";port=\"5432\";username=\"app\";\n\
             YXBw app [x]\n\
             {\"password\":\"p\\u003c\\u0026\\u003ew\",\"port\":5432,\"username\":\"app\"}\n<no value>"
        );
    }

    #[test]
    fn to_json_pretty_indents_as_go() {
        let t = r#"{{ with secret "secret/data/app" }}{{ .Data.data | toJSONPretty }}{{ end }}"#;
        assert_eq!(
            run(t),
            "{\n  \"password\": \"p\\u003c\\u0026\\u003ew\",\n  \"port\": 5432,\n  \"username\": \"app\"\n}"
        );
    }

    #[test]
    fn constructs_outside_the_subset_are_refused_with_their_line() {
        let cases = [
            (
                "{{ with secret \"secret/data/app\" }}\n{{ pkiCert \"x\" }}{{ end }}",
                "line 2: function `pkiCert` is not supported",
            ),
            (
                "{{ with secret \"secret/data/other\" }}{{ end }}",
                "line 1: secret \"secret/data/other\" is not supported",
            ),
            (
                "{{ with secret \"secret/data/app\" \"a=b\" }}{{ end }}",
                "line 1: secret is not supported",
            ),
            (
                "{{ $p := \"secret/data/app\" }}{{ with secret $p }}{{ end }}",
                "line 1: secret is not supported",
            ),
            (
                "\n\n{{ with secret \"secret/data/app\" }}{{ .LeaseID }}{{ end }}",
                "line 3: .LeaseID is not supported",
            ),
            (
                "{{ define \"x\" }}a{{ end }}{{ template \"x\" }}",
                "define \"x\"",
            ),
            (
                "{{ with secret \"secret/data/app\" }}{{ call .Data }}{{ end }}",
                "function `call`",
            ),
            ("{{ with secret \"secret/data/app\" }", "unexpected"),
        ];
        for (t, expected) in cases {
            let e = check(t, "/secret/data/app/")
                .map_err(|e| e.to_string())
                .err()
                .unwrap_or_else(|| panic!("{t}: accepted"));
            assert!(e.contains(expected), "{t}: {e}");
        }
        check(&default_template("secret/data/app"), "secret/data/app").unwrap();
    }

    #[test]
    fn failures_name_no_value() {
        let t = r#"{{ with secret "secret/data/app" }}{{ .Data.data.password | base64Decode }}{{ end }}"#;
        let e = render(t, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap_err();
        assert_eq!(e.to_string(), "template failed: base64Decode: not base64");
        let t = r#"{{ with secret "secret/data/app" }}{{ range .Data.data.password }}{{ end }}{{ end }}"#;
        let e = render(t, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap_err();
        assert!(!e.to_string().contains("p<&>w"), "{e}");
    }

    #[test]
    fn render_takes_any_input() {
        for (t, d) in [
            ("{{", "{}"),
            ("{{ . }}", "not json"),
            ("{{ with secret \"p\" }}{{ .Data }}{{ end }}", "[1,2]"),
        ] {
            let _ = render(t, "p", &SecretBytes::copy_from(d));
        }
        assert_eq!(
            render(
                "{{ with secret \"p\" }}{{ .Data }}{{ end }}",
                "p",
                &SecretBytes::copy_from("[1,\"a\",null]")
            )
            .unwrap()
            .expose(),
            b"[1 a <nil>]"
        );
    }
}

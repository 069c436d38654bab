//! Agent templates: the Vault Agent templates (consul-template, Go
//! `text/template`) of `format: go-template`, in the subset that pods written
//! for vault-k8s use (the config's own templates are minijinja's,
//! [`super::template`]), parsed and executed by the `gotmpl`
//! crate (a port of Go's `text/template` with Go's output: `map[k:v]`,
//! `<nil>`, `<no value>`, `printf`'s verbs) plus consul-template's functions
//! `secret`, `toJSON`, `toJSONPretty`, `base64Encode`, `base64Decode` and
//! `trimSpace`. `printf` is Go's `fmt` (in [`gofmt`]) and the read's
//! numbers keep their text and their type, `json.Number`, as Vault's Go
//! client decodes them: `1.50` stays `1.50` in the file and in `toJSON`.
//!
//! [`check`] runs when a config is loaded (and so when the injector admits a
//! pod): anything outside the subset is an error naming the construct and
//! its line, never a failure at run time. A template reads one secret, the
//! path its secret is read from; [`render`] executes it over that read's
//! `data`, as the server wrote it.
//! Copies of values inside `gotmpl` are not zeroized.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::parse::{Expr, ListNode, Node, Number, PipeNode};
use gotmpl::{Template, TemplateError, Value};

use crate::secret::SecretBytes;
use gofmt::Numbers;

mod gofmt;

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
    parse(text, path, Value::Nil, Numbers::default()).map(drop)
}

/// Parses and checks `text`; `secret` answers `answer`, whose strings in
/// `numbers` are the read's numbers.
fn parse(text: &str, path: &str, answer: Value, numbers: Numbers) -> Result<Template> {
    let numbers = Arc::new(numbers);
    let own = norm(path).to_owned();
    let secret = move |args: &[Value]| match args {
        [Value::String(p)] if norm(p) == own => Ok(answer.clone()),
        _ => Err(TemplateError::Exec("secret".into())),
    };
    let (n1, n2, n3) = (numbers.clone(), numbers.clone(), numbers);
    let template = Template::new(NAME)
        .func("secret", secret)
        .func("printf", move |args| match args {
            [Value::String(f), args @ ..] => Ok(Value::String(gofmt::sprintf(f, args, &n1).into())),
            _ => Err(TemplateError::Exec("printf takes a format string".into())),
        })
        .func("toJSON", move |args| to_json(args, &n2, false))
        .func("toJSONPretty", move |args| to_json(args, &n3, true))
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
    let json: &serde_json::value::RawValue = serde_json::from_slice(data.expose())
        .map_err(|_| Error::Render("the read's data is not JSON".into()))?;
    let mut numbers = Numbers::default();
    let data = value(json, &mut numbers)
        .ok_or_else(|| Error::Render("the read's data is not JSON".into()))?;
    let answer = Value::Map(Arc::new(BTreeMap::from([(Arc::from("Data"), data)])));
    let template = parse(text, path, answer, numbers)?;
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
            if name == "printf" {
                match command.args.get(1) {
                    Some(Expr::String(_, f)) => gofmt::check(f)
                        .map_err(|why| unsupported(pos.line, format!("printf \"{f}\""), why))?,
                    _ => {
                        return Err(unsupported(
                            pos.line,
                            "printf",
                            "its format must be a quoted string right after it",
                        ))
                    }
                }
            }
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
        let printf = matches!(command.args.first(), Some(Expr::Identifier(_, n)) if n == "printf");
        for arg in &command.args {
            // printf writes a float as Go does; elsewhere gotmpl writes it.
            if !(printf && matches!(arg, Expr::Number(..))) {
                expr(arg, path)?;
            }
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
        Expr::Number(pos, Number::Float(f)) if !go_prints_as_rust(*f) => Err(unsupported(
            pos.line,
            format!("the number {}", gofmt::sprintf("%v", &[Value::Float(*f)], &Numbers::default())),
            "Go and ramsecrets print it differently: write it as a quoted string, or through printf",
        )),
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

/// Whether a float constant prints the same from Go (`%v`) and from gotmpl
/// (Rust's `{}`), which writes an action's value: `1.5` and `1e3` do,
/// `1e6` (Go's `1e+06`) does not.
fn go_prints_as_rust(f: f64) -> bool {
    let sign = if f.is_sign_negative() { "-" } else { "" };
    f.is_finite() && format!("{sign}{}", gofmt::float_text(f, 'g', None)) == format!("{f}")
}

/// A read's `data` as template values, as Vault's Go client decodes it:
/// each number a string of its text as the server wrote it, marked in
/// `numbers` (a `json.Number`). `None` if it is not JSON.
fn value(json: &serde_json::value::RawValue, numbers: &mut Numbers) -> Option<Value> {
    use serde_json::value::RawValue;
    let text = json.get();
    Some(match text.as_bytes().first()? {
        b'{' => {
            let m: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            let mut out = BTreeMap::new();
            for (k, v) in m {
                out.insert(Arc::from(k.as_str()), value(v, numbers)?);
            }
            Value::Map(Arc::new(out))
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            let items: Option<Vec<Value>> = items.into_iter().map(|v| value(v, numbers)).collect();
            Value::List(items?.into())
        }
        b'"' => Value::String(serde_json::from_str::<String>(text).ok()?.into()),
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Nil,
        _ => {
            let n: Arc<str> = Arc::from(text);
            numbers.add(&n);
            Value::String(n)
        }
    })
}

/// `toJSON`/`toJSONPretty` as consul-template: Go's `json.Marshal` (or
/// `MarshalIndent` by two spaces) of the value, nil as nothing.
fn to_json(args: &[Value], numbers: &Numbers, pretty: bool) -> Result<Value, TemplateError> {
    let [v] = args else {
        return Err(TemplateError::Exec("toJSON takes one value".into()));
    };
    if matches!(v, Value::Nil) {
        return Ok(Value::String("".into()));
    }
    let mut out = String::new();
    json(&mut out, v, numbers, pretty.then_some(0))?;
    Ok(Value::String(out.into()))
}

/// Go's `encoding/json` of `v` into `out`: sorted keys; `<`, `>`, `&`,
/// U+2028 and U+2029 escaped; a read's number as its text; with `indent`,
/// one line a value, nested by two spaces.
fn json(
    out: &mut String,
    v: &Value,
    numbers: &Numbers,
    indent: Option<usize>,
) -> Result<(), TemplateError> {
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)?),
        Value::String(s) if numbers.has(v) => out.push_str(s),
        Value::String(s) => json_string(out, s),
        Value::List(items) if items.is_empty() => out.push_str("[]"),
        Value::Map(m) if m.is_empty() => out.push_str("{}"),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(d) = indent {
                    newline(out, d + 1);
                }
                json(out, item, numbers, indent.map(|d| d + 1))?;
            }
            if let Some(d) = indent {
                newline(out, d);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(d) = indent {
                    newline(out, d + 1);
                }
                json_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                json(out, item, numbers, indent.map(|d| d + 1))?;
            }
            if let Some(d) = indent {
                newline(out, d);
            }
            out.push('}');
        }
        _ => return Err(TemplateError::Exec("toJSON: a function is not JSON".into())),
    }
    Ok(())
}

/// A JSON string as Go writes it.
fn json_string(out: &mut String, s: &str) {
    let text = serde_json::Value::String(s.to_owned()).to_string();
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
}

/// A float as Go's `encoding/json` writes it: `f` notation, or `e` below
/// 1e-6 and from 1e21 on (`1e-07` written `1e-7`).
fn json_float(f: f64) -> Result<String, TemplateError> {
    if !f.is_finite() {
        return Err(TemplateError::Exec("toJSON: not a finite number".into()));
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let abs = f.abs();
    let text = if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = gofmt::float_text(abs, 'e', None);
        match e.split_once("e-0") {
            Some((m, x)) => format!("{m}e-{x}"),
            None => e,
        }
    } else {
        gofmt::float_text(abs, 'f', None)
    };
    Ok(format!("{sign}{text}"))
}

#[cfg(test)]
mod tests;

//! Tests of the output formats: each format's bytes, and round trips
//! through the readers apps use (sh, python-dotenv, PyYAML).

use super::*;
use serde_json::Value;

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
        "pass: \"p'w\\\"$x\\n\"\nuser: app\n"
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

/// `values` as `V0`, `V1`, … rendered as `format`, what the test bed's
/// python reads back from the file with `read` (an expression over the path
/// `sys.argv[1]`), and what was written.
fn through_python(format: Format, read: &str, values: &[&str]) -> (String, Value, Value) {
    let pairs: Vec<(String, &[u8])> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i}"), v.as_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let text = one(format, None, None, &fields(&refs)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("written");
    std::fs::write(&path, &text).unwrap();
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            &format!("import json, sys, dotenv, yaml; print(json.dumps({read}))"),
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(std::str::from_utf8(v).unwrap())))
        .collect();
    (text, read, Value::Object(want))
}

/// As python-dotenv (interpolation on) reads a `dotenv` file.
const DOTENV: &str = "dotenv.dotenv_values(sys.argv[1], interpolate=True)";
/// As PyYAML reads a `yaml` file: a YAML 1.1 reader, where `yes`, `on`,
/// `0755` and `12:30` are not text unless quoted.
const PYYAML: &str = "yaml.safe_load(open(sys.argv[1], encoding='utf-8'))";

#[test]
fn dotenv_reads_back_exactly_through_python_dotenv() {
    let (text, read, want) = through_python(Format::Dotenv, DOTENV, &NASTY);
    assert_eq!(read, want, "{text}");
}

#[test]
fn yaml_reads_back_exactly_through_pyyaml() {
    let tricky = [
        "yes",
        "on",
        "n",
        "~",
        "null",
        "0755",
        "0x1F",
        "1_000",
        "12:30",
        "1e3",
        ".inf",
        "",
        " lead",
        "trail ",
        "a: b",
        "# c",
        "- x",
        "@x",
        "`x",
        "%x",
        "*x",
        "&x",
        "!x",
        "|",
        ">",
        "{x}",
        "[x]",
        "\t tab first line\nsecond",
        "\u{2028}",
        "\u{85}",
        "\u{feff}",
    ];
    let values: Vec<&str> = NASTY.iter().chain(&tricky).copied().collect();
    let (text, read, want) = through_python(Format::Yaml, PYYAML, &values);
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
        '$', '{', '}', ':', '-', '\\', '\'', '"', '`', '\n', '\r', '\t', ' ', '#', '=', 'a', 'é',
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
        let (text, read, want) = through_python(Format::Dotenv, DOTENV, &refs);
        proptest::prop_assert_eq!(read, want, "{}", text);
    }

    /// Any text, as PyYAML (a YAML 1.1 reader) reads it back from the `yaml` format.
    #[test]
    fn yaml_round_trips_through_pyyaml(vs in proptest::collection::vec(values(), 1..32)) {
        let refs: Vec<&str> = vs.iter().map(String::as_str).collect();
        let (text, read, want) = through_python(Format::Yaml, PYYAML, &refs);
        proptest::prop_assert_eq!(read, want, "{}", text);
    }
}

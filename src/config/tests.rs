//! Table tests of configuration problems: each names its key, and where the
//! text has one, its line.

use super::*;
use crate::source::AwsAddress;
use rustix::process::Signal;

mod paths;

const HEAD: &str = "sources:\n  - name: v\n    vault:\n      address: http://127.0.0.1:8200\n      auth: { token_file: /t }\n  - name: f\n    file: { path: dev.yaml }\n  - name: a\n    aws_secrets_manager: { region: eu-west-1, endpoint: \"http://127.0.0.1:5000\" }\noutput:\n  dir: /run/x\nsecrets:\n";

fn problems(secrets: &str) -> Vec<Problem> {
    Config::parse(&format!("{HEAD}{secrets}"), Path::new("/cfg")).unwrap_err()
}

#[test]
fn a_valid_config_resolves_defaults() {
    let c = Config::parse(
        &format!(
            "{HEAD}  - name: db\n    source: v\n    kv: {{ mount: /secret/, path: app/db }}\n    key: password\n  - name: tls\n    source: v\n    pki: {{ mount: pki, role: web, common_name: a.b, ttl: 24h }}\n    mode: \"0440\"\n  - name: api\n    source: f\n    secret_id: prod/api\n"
        ),
        Path::new("/cfg"),
    )
    .unwrap();
    assert_eq!(c.secrets[0].format, Format::Raw);
    assert_eq!(c.secrets[0].file, "db");
    assert_eq!(c.secrets[0].address.key(), "secret/app/db");
    assert_eq!(c.secrets[1].files(), ["tls.crt", "tls.key", "tls.ca.crt"]);
    assert_eq!(c.secrets[1].mode, 0o440);
    assert_eq!(c.secrets[2].format, Format::Json);
    assert_eq!(c.secrets[2].mode, 0o400);
    match &c.sources[1].kind {
        SourceKind::File(f) => assert_eq!(f.path, Path::new("/cfg/dev.yaml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_input_names_the_key_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  - name: a\n    source: v\n    kv: { mount: s, path: p }\n    formt: json\n",
            "secrets[0].formt",
            "unknown field `formt`",
        ),
        (
            "  - name: a\n    source: v\n    kv: { mount: 3, path: p }\n",
            "secrets[0].kv.mount",
            "invalid type: integer `3`, expected a string",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n  - name: a\n    source: v\n    read: x/z\n    file: b\n",
            "secrets[1].name",
            "duplicate secret name `a`",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    file: same\n  - name: b\n    source: v\n    read: x/z\n    file: same\n",
            "secrets[1].file",
            "file `same` is also written by secret `a`",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    file: ../etc/passwd\n",
            "secrets[0].file",
            "must not contain `..`",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    file: /etc/passwd\n",
            "secrets[0].file",
            "not absolute",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    file: \"a\\0b\"\n",
            "secrets[0].file",
            "must not contain NUL",
        ),
        (
            "  - name: a\n    source: nope\n    read: x/y\n",
            "secrets[0].source",
            "undefined source `nope` (sources: v, f, a)",
        ),
        (
            "  - name: a\n    read: x/y\n",
            "secrets[0].source",
            "required when there is more than one source",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    mode: 440\n",
            "secrets[0].mode",
            "quote the mode",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    mode: \"999\"\n",
            "secrets[0].mode",
            "not an octal file mode",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    template: \"{{ user \"\n",
            "secrets[0].template",
            "syntax error",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    key: k\n    format: json\n",
            "secrets[0].key",
            "cannot be used with format json",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    kv: { mount: s, path: p }\n",
            "secrets[0]",
            "exactly one of `kv`, `read`, `pki`, `secret_id`, `parameter` or `parameters_by_path`",
        ),
        (
            "  - name: a\n    source: v\n    secret_id: prod/api\n",
            "secrets[0].secret_id",
            "source `v` is Vault",
        ),
        (
            "  - name: a\n    source: v\n    secret_id: prod/api\n    version_stage: AWSPENDING\n",
            "secrets[0].version_stage",
            "only an `aws_secrets_manager` source has versions; source `v` is Vault",
        ),
        (
            "  - name: a\n    source: f\n    secret_id: prod/api\n    version_id: abc\n",
            "secrets[0].version_id",
            "source `f` is a file",
        ),
        (
            "  - name: a\n    source: f\n    secret_id: prod/api\n    previous: true\n",
            "secrets[0].previous",
            "only an `aws_secrets_manager` source",
        ),
        (
            "  - name: a\n    source: v\n    kv: { mount: s, path: p }\n    previous: true\n",
            "secrets[0].previous",
            "source `v` is Vault",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    version_stage: AWSPENDING\n    version_id: abc\n",
            "secrets[0].version_id",
            "cannot be used with `version_stage`",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    version_stage: AWSPENDING\n    previous: true\n",
            "secrets[0].previous",
            "cannot be used with `version_stage: AWSPENDING`",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    version_id: abc\n    previous: true\n",
            "secrets[0].previous",
            "cannot be used with `version_id: abc`",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    version_stage: \"\"\n",
            "secrets[0].version_stage",
            "must be non-empty printable ASCII",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: \"\"\n",
            "secrets[0].secret_id",
            "must not be empty",
        ),
        (
            "  - name: a\n    source: a\n    kv: { mount: s, path: p }\n",
            "secrets[0].kv",
            "source `a` is AWS Secrets Manager: use `secret_id`",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    previous: true\n    file: x\n  - name: b\n    source: a\n    secret_id: prod/b\n    file: x.previous\n",
            "secrets[1].file",
            "file `x.previous` is also written by secret `a`",
        ),
        (
            "  - name: a\n    source: a\n    secret_id: prod/api\n    previous: yes please\n",
            "secrets[0].previous",
            "invalid type",
        ),
        (
            "  - name: a\n    source: v\n    pki: { mount: pki, role: r, common_name: c }\n    key: certificate\n",
            "secrets[0]",
            "do not apply",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    on_change:\n      - signal: { process: app, signal: BOGUS }\n",
            "secrets[0].on_change[0].signal.signal",
            "not a signal name",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    on_change:\n      - exec: []\n",
            "secrets[0].on_change[0].exec",
            "needs a command",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    on_change:\n      - http: { url: \"ftp://x\" }\n",
            "secrets[0].on_change[0].http.url",
            "not an http(s) URL",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    on_change:\n      - signal: { signal: HUP }\n",
            "secrets[0].on_change[0].signal",
            "exactly one of `pid_file` or `process`",
        ),
        (
            "  - name: a\n    source: v\n    read: x/y\n    refresh: often\n",
            "secrets[0].refresh",
            "not a duration",
        ),
        (
            "  - name: a\n    source: v\n    read: ../sys/x\n",
            "secrets[0].read",
            "not a plain Vault path",
        ),
    ];
    for (secrets, path, message) in cases {
        let found = problems(secrets);
        assert!(
            found
                .iter()
                .any(|p| p.path == *path && p.message.contains(message) && p.at.is_some()),
            "expected `{path}: …{message}…` with a line for\n{secrets}\ngot {found:#?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = problems(
        "  - name: a\n    source: v\n    read: x/y\n    file: /abs\n  - name: b\n    source: zz\n    read: x/z\n  - name: c\n    bogus: 1\n",
    );
    let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["secrets[2].bogus", "secrets[0].file", "secrets[1].source"],
        "{found:#?}"
    );
    let shown = found[1].to_string();
    assert!(
        shown.starts_with("secrets[0].file (line 16, column"),
        "{shown}"
    );
}

#[test]
fn a_duplicate_name_is_reported_with_the_entries_type_errors() {
    for (first, problem) in [
        ("    refresh: soon\n", "secrets[0].refresh"),
        ("    kv: { mount: 3, path: p }\n", "secrets[0].kv.mount"),
    ] {
        let found = problems(&format!(
            "  - name: a\n    source: v\n    read: x/y\n{first}  - name: a\n    source: v\n    read: x/z\n    file: b\n"
        ));
        let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&problem), "{found:#?}");
        assert!(
            found
                .iter()
                .any(|p| p.path == "secrets[1].name"
                    && p.message.contains("duplicate secret name `a`")),
            "{found:#?}"
        );
    }
}

#[test]
fn a_bad_section_does_not_hide_the_next_and_an_empty_key_is_checked() {
    let found = Config::parse(
        "sources: { a: 1 }\noutput: { dir: /x, mode: 440 }\nmlock: maybe\nsecrets:\n  - name: a\n    kv: 7\n  - name: b\n    read: x\n    file: /abs\nhealth: 3\nproxy:\ntemplates:\n",
        Path::new("/"),
    )
    .unwrap_err();
    let shown: Vec<_> = found
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    for want in [
        "sources: must be a list",
        "output.mode: invalid type: integer `440`, expected a string: quote the mode",
        "mlock: invalid type",
        "health: invalid type: integer `3`",
        // A key with no value is an empty section, not a missing one.
        "proxy: missing field `token_file`",
        "templates: must be a list",
        // The entries of a list are read one by one and keep their index.
        "secrets[0].kv: invalid type: integer `7`",
        "secrets[1].file: `/abs`: must be relative",
    ] {
        assert!(
            shown.iter().any(|p| p.starts_with(want)),
            "{want}: {shown:#?}"
        );
    }
    // Sections in the order of the file, then the entries.
    let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths[..7],
        [
            "sources",
            "output.mode",
            "mlock",
            "health",
            "proxy",
            "templates",
            "secrets[0].kv"
        ],
        "{shown:#?}"
    );
}

#[test]
fn top_level_problems() {
    let found = Config::parse("output: { dir: /x }\nsecret: []\n", Path::new("/")).unwrap_err();
    let shown: Vec<_> = found.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|p| p.contains("unknown key `secret`")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|p| p.starts_with("sources: missing")),
        "{shown:?}"
    );
    let found = Config::parse("output: [\n", Path::new("/")).unwrap_err();
    assert!(found[0].message.starts_with("not valid YAML"), "{found:?}");
    assert!(found[0].at.is_some());
}

#[test]
fn aws_secrets_get_versions_and_previous_files() {
    let c = Config::parse(
        &format!(
            "{HEAD}  - name: api\n    source: a\n    secret_id: prod/api\n    key: token\n    previous: true\n  - name: pending\n    source: a\n    secret_id: prod/api\n    version_stage: AWSPENDING\n  - name: pinned\n    source: a\n    secret_id: prod/api\n    version_id: 0e3c\n  - name: dev\n    source: f\n    secret_id: prod/api\n"
        ),
        Path::new("/cfg"),
    )
    .unwrap();
    assert_eq!(c.secrets[0].files(), ["api", "api.previous"]);
    assert_eq!(
        c.secrets[0].address,
        Address::AwsSecretsManager(AwsAddress::SecretId {
            id: "prod/api".into(),
            version: AwsVersion::Stage(AWS_CURRENT.into()),
            previous: true
        })
    );
    assert!(
        matches!(&c.secrets[1].address, Address::AwsSecretsManager(AwsAddress::SecretId { version: AwsVersion::Stage(s), .. }) if s == "AWSPENDING")
    );
    assert!(
        matches!(&c.secrets[2].address, Address::AwsSecretsManager(AwsAddress::SecretId { version: AwsVersion::Id(v), .. }) if v == "0e3c")
    );
    assert_eq!(c.secrets[3].files(), ["dev"]);
    let plan = c.to_string();
    for line in [
        "  a: aws_secrets_manager (region eu-west-1, endpoint http://127.0.0.1:5000/, credentials from the SDK default chain; BatchGetSecretValue, 20 per call)",
        "  api: secret_id prod/api +AWSPREVIOUS from a -> api, api.previous (raw key token, mode 0400)",
        "  pending: secret_id prod/api @AWSPENDING from a -> pending (raw, mode 0400)",
        "  pinned: secret_id prod/api version 0e3c from a -> pinned (raw, mode 0400)",
        "  dev: secret_id prod/api from f -> dev (json, mode 0400)",
    ] {
        assert!(plan.contains(line), "{line}\nnot in\n{plan}");
    }
}

#[test]
fn aws_sources_default_their_name_and_check_their_keys() {
    let one = |source: &str| {
        Config::parse(
            &format!("sources:\n  - {source}\noutput: {{ dir: /x }}\nsecrets:\n  - name: s\n    secret_id: prod/s\n"),
            Path::new("/"),
        )
    };
    for empty in ["aws_secrets_manager: {}", "aws_secrets_manager:"] {
        let c = one(empty).unwrap();
        assert_eq!(c.sources[0].name, "aws");
        assert!(
            matches!(&c.sources[0].kind, SourceKind::AwsSecretsManager(a) if a.region.is_none() && a.endpoint.is_none())
        );
    }
    let cases = [
        (
            "aws_secrets_manager: { region: EU West }",
            "sources[0].aws_secrets_manager.region",
            "not a region name",
        ),
        (
            "aws_secrets_manager: { endpoint: \"ftp://x\" }",
            "sources[0].aws_secrets_manager.endpoint",
            "http:// or https://",
        ),
        (
            "aws_secrets_manager: { endpoint: \"::\" }",
            "sources[0].aws_secrets_manager.endpoint",
            "not a URL",
        ),
        (
            "aws_secrets_manager: { profile: \" \" }",
            "sources[0].aws_secrets_manager.profile",
            "must not be empty",
        ),
        (
            "aws_secrets_manager: { regoin: eu-west-1 }",
            "sources[0].aws_secrets_manager.regoin",
            "unknown field",
        ),
        (
            "{ aws_secrets_manager: {}, file: { path: x } }",
            "sources[0]",
            "exactly one of `vault`, `aws_secrets_manager`, `ssm_parameter_store` or `file`",
        ),
    ];
    for (source, path, message) in cases {
        let found = one(source).unwrap_err();
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.contains(message)),
            "expected `{path}: …{message}…` for {source}, got {found:#?}"
        );
    }
}

#[test]
fn auth_needs_exactly_one_method() {
    let text = "sources:\n  - vault:\n      address: http://x:1\n      auth: { token_file: /t, jwt: { role: r, token_file: /j } }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    read: a/b\n";
    let found = Config::parse(text, Path::new("/")).unwrap_err();
    assert_eq!(found[0].path, "sources[0].vault.auth");
    let text = text.replace("http://x:1", "ftp://x");
    let found = Config::parse(&text, Path::new("/")).unwrap_err();
    assert!(
        found.iter().any(|p| p.path == "sources[0].vault.address"),
        "{found:?}"
    );
}

#[test]
fn the_schema_lists_the_contract_keys() {
    let schema = schema().to_string();
    for key in [
        "sources",
        "output",
        "secrets",
        "token_file",
        "kv_version",
        "template",
        "aws_secrets_manager",
        "version_stage",
        "version_id",
        "previous",
    ] {
        assert!(schema.contains(&format!("\"{key}\"")), "{key}");
    }
}

#[test]
fn sidecar_settings() {
    let ok = Config::parse(
        &format!("{HEAD}  - name: a\n    source: v\n    read: x/y\n    refresh: 30s\n    on_change:\n      - signal: {{ pid_file: /run/app.pid, signal: sighup }}\n      - exec: [nginx, -s, reload]\n        timeout: 5s\nrefresh: {{ interval: 1m, renew_at: 0.5 }}\nhealth: {{ listen: \"127.0.0.1:8099\" }}\nexec: {{ on_change: USR1, grace: 3s }}\n"),
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(ok.refresh.interval, Duration::from_secs(60));
    assert_eq!(ok.exec.on_change, ChildOnChange::Signal(Signal::USR1));
    assert_eq!(ok.secrets[0].refresh, Some(Duration::from_secs(30)));
    assert_eq!(ok.secrets[0].on_change.len(), 2);
    // No hand-off unless asked for.
    assert_eq!(ok.output.unwrap().state_dir, None);
    let bad = Config::parse(
        &format!("{HEAD}  - name: a\n    source: v\n    read: x/y\nrefresh: {{ renew_at: 1.5 }}\nhealth: {{ listen: nowhere }}\nexec: {{ on_change: reboot }}\n"),
        Path::new("/"),
    )
    .unwrap_err();
    let paths: Vec<_> = bad.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["refresh.renew_at", "health.listen", "exec.on_change"],
        "{bad:#?}"
    );
}

#[test]
fn a_state_dir_inside_the_output_dir_is_refused_naming_both_keys() {
    let head = HEAD.replace("  dir: /run/x\n", "  dir: /run/x\n  state_dir: STATE\n");
    let secret = "  - name: a\n    source: v\n    read: x/y\n";
    for state in [
        "/run/x",
        "/run/x/.ramsecrets",
        "/run/y/../x/s",
        "../run/x/./s",
    ] {
        let err = Config::parse(
            &format!("{}{secret}", head.replace("STATE", state)),
            Path::new("/cfg"),
        )
        .unwrap_err();
        assert_eq!(err.len(), 1, "{state}: {err:?}");
        assert_eq!(err[0].path, "output.state_dir");
        assert!(err[0].message.contains("output.dir"), "{}", err[0].message);
        assert!(err[0].at.is_some());
    }
    let ok = Config::parse(
        &format!("{}{secret}", head.replace("STATE", "/run/ramsecrets/state")),
        Path::new("/cfg"),
    )
    .unwrap();
    assert_eq!(
        ok.output.unwrap().state_dir.as_deref(),
        Some(Path::new("/run/ramsecrets/state"))
    );
}

#[test]
fn the_schema_says_exactly_one_of_every_choice() {
    let schema = schema();
    // Each listed key of these definitions is one of the choices; the rest are not.
    for (def, not_choices) in [
        ("Auth", &[][..]),
        ("Source", &["name"][..]),
        ("Action", &["timeout"][..]),
        ("Signal", &["signal"][..]),
        ("Template", &["file", "mode", "on_change"][..]),
    ] {
        let d = &schema["$defs"][def];
        let mut choices: Vec<&str> = d["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{def} has no oneOf"))
            .iter()
            .map(|c| c["required"][0].as_str().unwrap())
            .collect();
        let mut keys: Vec<&str> = d["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| !not_choices.contains(k))
            .collect();
        choices.sort_unstable();
        keys.sort_unstable();
        assert_eq!(choices, keys, "{def}");
    }
}

#[test]
fn output_is_optional_only_with_a_proxy() {
    let body = "sources:\n  - file: { path: dev.yaml }\nsecrets:\n  - name: db\n    kv: { mount: secret, path: app/db }\n";
    let found = Config::parse(body, Path::new("/cfg")).unwrap_err();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "output");
    assert!(found[0].message.contains("`proxy`"), "{found:?}");
    let c = Config::parse(
        &format!("{body}proxy: {{ token_file: t }}\n"),
        Path::new("/cfg"),
    )
    .unwrap();
    assert!(c.output.is_none());
    let plan = c.to_string();
    assert!(plan.contains("output: none"), "{plan}");
    assert!(
        plan.contains("db: kv secret/app/db from file -> the proxy only, in memory"),
        "{plan}"
    );
    // With both, each secret goes to its files and the proxy.
    let c = Config::parse(
        &format!("{body}output: {{ dir: /x }}\nproxy: {{ token_file: t }}\n"),
        Path::new("/cfg"),
    )
    .unwrap();
    let plan = c.to_string();
    assert!(
        plan.contains("-> db (json, mode 0400), and the proxy"),
        "{plan}"
    );
    // Templates are files: they need the output directory.
    let found = Config::parse(
        &format!("{body}proxy: {{ token_file: t }}\ntemplates:\n  - {{ file: f, template: \"{{{{ secrets['db'].password }}}}\" }}\n"),
        Path::new("/cfg"),
    )
    .unwrap_err();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "templates", "{found:?}");
    // A broken output section is reported once, not also as missing.
    let found =
        Config::parse(&format!("{body}output: {{ dri: /x }}\n"), Path::new("/cfg")).unwrap_err();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].path.starts_with("output"), "{found:?}");
}

#[test]
fn max_answer_bytes_defaults_to_four_mebibytes_and_is_bounded() {
    let config = |vault: &str, aws: &str| {
        Config::parse(
            &format!("sources:\n  - vault: {{ address: http://v:8200, auth: {{ token_file: /t }}{vault} }}\n  - aws_secrets_manager: {{ region: eu-west-1{aws} }}\noutput: {{ dir: /x }}\nsecrets:\n  - {{ name: a, source: vault, read: x/y }}\n"),
            Path::new("/cfg"),
        )
    };
    let caps = |c: Config| {
        c.sources
            .iter()
            .map(|s| match &s.kind {
                SourceKind::Vault(v) => v.max_answer_bytes,
                SourceKind::AwsSecretsManager(a) => a.max_answer_bytes,
                SourceKind::SsmParameterStore(s) => s.0.max_answer_bytes,
                SourceKind::File(_) => 0,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(caps(config("", "").unwrap()), [4 << 20, 4 << 20]);
    let set = ", max_answer_bytes: 65536";
    assert_eq!(caps(config(set, set).unwrap()), [65536, 65536]);
    let found = config(", max_answer_bytes: 1023", ", max_answer_bytes: 2147483648").unwrap_err();
    // (A source refused is also one no secret can name.)
    let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths[..2],
        [
            "sources[0].vault.max_answer_bytes",
            "sources[1].aws_secrets_manager.max_answer_bytes"
        ]
    );
    assert!(found[0].message.contains("from 1024"), "{}", found[0]);
}

#[test]
fn a_file_may_not_be_the_directory_of_another() {
    // Found by the fuzz target `config`'s invariant: both were accepted, and the
    // second write failed at run time.
    let found = problems("  - { name: a, source: v, read: x/a, file: x }\n  - { name: b, source: v, read: x/b, file: x/y/z }\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "secrets[1].file");
    assert_eq!(
        found[0].message,
        "file `x/y/z` needs `x` as a directory, but secrets[0].file writes it as a file"
    );
}

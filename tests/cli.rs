//! The command line on the `file` source: the README's main job, `check`,
//! `schema`, usage errors, and file-source specifics (binary values, missing keys).

mod common;

use common::*;
use serde_json::json;

/// examples/dev.yaml with its output dir moved to `dir`.
fn dev_config(dir: &std::path::Path) -> String {
    std::fs::read_to_string(repo().join("examples/dev.yaml"))
        .unwrap()
        .replace("/dev/shm/ramsecrets-dev", &dir.display().to_string())
        .replace(
            "path: dev-secrets.yaml",
            &format!(
                "path: {}",
                repo().join("examples/dev-secrets.yaml").display()
            ),
        )
}

#[test]
fn the_readme_main_job_writes_every_file() {
    let work = scratch();
    let out = Tmpfs::new("4m");
    let o = init(work.path(), &dev_config(out.path()), &[]);
    assert_exit(&o, 0);
    assert_eq!(
        out.names(),
        [
            "api.yaml",
            "db-creds.env",
            "db-password",
            "db.json",
            "db.url",
            "tls.ca.crt",
            "tls.crt",
            "tls.key"
        ]
    );
    assert_eq!(out.read("db-password"), "dev-only-password");
    assert_eq!(
        out.read("db.url"),
        "postgres://app:dev-only-password@db:5432/app"
    );
    assert!(!text(&o).contains("dev-only-password"));
}

#[test]
fn check_prints_the_plan_without_values() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = file(work.path(), "config.yaml", &dev_config(out.path()));
    let o = ramsecrets(&["check", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 0);
    let t = text(&o);
    assert!(
        t.contains("db-creds: read database/creds/app from dev -> db-creds.env (env, mode 0440)"),
        "{t}"
    );
    assert!(
        t.contains(
            "tls: pki pki/issue/web cn=app.default.svc from dev -> tls.crt, tls.key, tls.ca.crt"
        ),
        "{t}"
    );
    assert!(
        t.contains("its local files and directories are ready"),
        "{t}"
    );
    assert!(!t.contains("dev-only-password"), "{t}");
    assert!(out.names().is_empty(), "check wrote {:?}", out.names());
}

#[test]
fn check_finds_what_init_would_reject_without_a_server() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let config = |source: &str, dir: &str, template: &str| {
        Config::new()
            .source(file_source(source))
            .output(std::path::Path::new(dir))
            .secret(json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db" }, "template": template }))
    };
    let check = |config: Config, extra: &[&str]| {
        let cfg = config.write(work.path(), "config.yaml");
        let mut args = vec!["check", "--config", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        ramsecrets(&args)
    };
    // A missing output dir and a missing file source, both named at once.
    let missing = format!("{}/missing", out.path().display());
    let o = check(config("nope.yaml", &missing, "{{ password }}"), &[]);
    assert_exit(&o, 73);
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "output dir {missing} does not exist: create it, or mount a memory volume there"
        )),
        "{t}"
    );
    assert!(t.contains("nope.yaml") && !t.contains("is valid\n"), "{t}");
    // A field the file source's secret lacks.
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: x\n");
    let dir = out.path().display().to_string();
    let o = check(config("dev.yaml", &dir, "{{ username }}"), &[]);
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("secret `db`: field `username` is not in the secret (it has: password)"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(": x"), "{}", text(&o));
    // A field a template over several secrets reads.
    let with_template = config("dev.yaml", &dir, "{{ password }}").template(json!({
        "file": "app.conf",
        "template": "{{ secrets.db.password }} {{ secrets.db.user }}",
    }));
    let o = check(with_template, &[]);
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("template `app.conf`:") && text(&o).contains("`user`"),
        "{}",
        text(&o)
    );
    // --config-only: the file alone.
    let o = check(
        config("nope.yaml", &missing, "{{ username }}"),
        &["--config-only"],
    );
    assert_exit(&o, 0);
    let o = check(config("dev.yaml", &dir, "{{ password }}"), &[]);
    assert_exit(&o, 0);
    assert!(out.names().is_empty());
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dev = repo().join("examples/dev.yaml");
    let dev = dev.to_str().unwrap();
    for args in [
        vec!["schema"],
        vec!["check", "--config-only", "--config", dev],
        vec!["--help"],
        vec!["exec", "--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ramsecrets"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o));
    }
}

#[test]
fn os_errors_are_said_once() {
    let once = |o: &std::process::Output, what: &str| {
        assert_eq!(text(o).matches(what).count(), 1, "{}", text(o));
    };
    let o = ramsecrets(&["check", "--config", "/nonexistent/ramsecrets.yaml"]);
    once(&o, "No such file or directory");
    let work = scratch();
    let out = Tmpfs::new("1m");
    let missing = out.path().join("missing");
    let o = init(work.path(), &dev_config(&missing), &[]);
    assert_exit(&o, 73);
    once(
        &o,
        "does not exist: create it, or mount a memory volume there",
    );
    assert!(!text(&o).contains("os error"), "{}", text(&o));
    // A busy health port.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let config = dev_config(out.path()).replacen(
        "output:",
        &format!("health:\n  listen: 127.0.0.1:{port}\noutput:"),
        1,
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let o = ramsecrets(&["run", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 71);
    once(&o, "Address already in use");
    once(
        &o,
        &format!("cannot listen on health.listen 127.0.0.1:{port}"),
    );
    // A busy proxy port: the same error, naming its key.
    let config = dev_config(out.path()).replacen(
        "listen: \"127.0.0.1:2773\"",
        &format!("listen: \"127.0.0.1:{port}\""),
        1,
    );
    let cfg = file(work.path(), "config.yaml", &config);
    let o = ramsecrets(&["run", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 71);
    once(
        &o,
        &format!("cannot listen on proxy.listen 127.0.0.1:{port}"),
    );
    // A busy webhook port: the same error, naming its key.
    let (_, cert, key) = common::kube::serving_cert(&["127.0.0.1"]);
    let inject = Config::new()
        .source(vault("http://127.0.0.1:8200", json!({ "kubernetes": { "role": "app" } })))
        .set(
            "inject",
            json!({
                "listen": format!("127.0.0.1:{port}"),
                "tls": { "cert_file": file(work.path(), "tls.crt", &cert), "key_file": file(work.path(), "tls.key", &key) },
                "image": "ramsecrets:test",
                "kubernetes_version": "1.35",
            }),
        )
        .write(work.path(), "inject.yaml");
    let o = ramsecrets(&["inject", "--config", inject.to_str().unwrap()]);
    assert_exit(&o, 71);
    once(
        &o,
        &format!("cannot listen on inject.listen 127.0.0.1:{port}"),
    );
}

#[test]
fn schema_is_json_with_the_contract_keys() {
    let o = ramsecrets(&["schema"]);
    assert_exit(&o, 0);
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let props = &schema["properties"];
    for key in [
        "sources",
        "output",
        "secrets",
        "mlock",
        "templates",
        "inject",
    ] {
        assert!(props.get(key).is_some(), "{key} missing from {props}");
    }
}

#[test]
fn usage_errors_exit_64() {
    assert_exit(&ramsecrets(&["init"]), 64);
    assert_exit(&ramsecrets(&["frobnicate"]), 64);
    assert_exit(
        &ramsecrets(&["init", "--config", "x", "--timeout", "soon"]),
        64,
    );
    // Every duration flag has a floor: below it is a usage error naming it, never a panic.
    for (args, floor) in [
        (&["init", "--timeout", "0s"][..], "1s"),
        (&["run", "--timeout", "500ms"], "1s"),
        (&["check", "--online", "--timeout", "0s"], "1s"),
        (
            &["drill", "--secret", "db", "--check-interval", "0s"],
            "10ms",
        ),
        (&["drill", "--secret", "db", "--deadline", "0s"], "1s"),
        (&["drill", "--secret", "db", "--settle", "0s"], "100ms"),
    ] {
        let mut args = args.to_vec();
        args.extend(["--config", "x"]);
        let o = ramsecrets(&args);
        assert_exit(&o, 64);
        assert!(
            text(&o).contains(&format!("is too short: at least {floor}")),
            "{args:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let help = ramsecrets(&["init", "--help"]);
    assert_exit(&help, 0);
    assert!(text(&help).contains("Exit codes"));
    let v = ramsecrets(&["--version"]);
    assert_exit(&v, 0);
    assert!(text(&v).starts_with("ramsecrets "));
}

#[test]
fn a_missing_config_file_exits_78() {
    let o = ramsecrets(&["check", "--config", "/nonexistent/ramsecrets.yaml"]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("cannot read config /nonexistent/ramsecrets.yaml"));
}

#[test]
fn file_source_binary_values_and_missing_keys() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    file(
        work.path(),
        "dev.yaml",
        "blobs/one:\n  data: !base64 AJ+SlP8K\n  name: one\n",
    );
    let config = |secret: serde_json::Value| {
        Config::new()
            .source(file_source("dev.yaml"))
            .output(out.path())
            .secret(secret)
            .yaml()
    };
    let o = init(
        work.path(),
        &config(json!({ "name": "bin", "secret_id": "blobs/one", "key": "data" })),
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read(out.path().join("bin")).unwrap(),
        [0, 159, 146, 148, 255, 10]
    );
    // A binary value cannot go into a text format.
    let o = init(
        work.path(),
        &config(json!({ "name": "j", "secret_id": "blobs/one" })),
        &[],
    );
    assert_exit(&o, 65);
    assert!(text(&o).contains("field `data` is binary"), "{}", text(&o));
    // A missing address names it and the file.
    let o = init(work.path(), &config(kv("m", "secret", "nope")), &[]);
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("`secret/nope` is not a key of"),
        "{}",
        text(&o)
    );
    assert_eq!(out.names(), ["bin"]);
}

#[test]
fn mlock_locks_memory_when_allowed() {
    assert!(
        is_root(),
        "mlockall needs CAP_IPC_LOCK: run the tests as root (CI does)"
    );
    let work = scratch();
    let out = Tmpfs::new("1m");
    let config = dev_config(out.path()).replacen("output:", "mlock: true\n\noutput:", 1);
    let o = init(work.path(), &config, &["--log-level", "debug"]);
    assert_exit(&o, 0);
    assert!(text(&o).contains("memory locked"), "{}", text(&o));
}

#[test]
fn every_example_config_is_valid() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The stand-in values of the `file` source, not a config.
        if name == "dev-secrets.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        let o = ramsecrets(&["check", "--config-only", "--config", path.to_str().unwrap()]);
        assert_exit(&o, 0);
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "aws.yaml",
            "dev-proxy.yaml",
            "dev.yaml",
            "inject.yaml",
            "laptop.yaml",
            "vault.yaml"
        ]
    );
}

#[test]
fn durations_take_the_documented_units_and_print_as_written() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: x\n");
    let check = |interval: &str| {
        let cfg = Config::new()
            .source(file_source("dev.yaml"))
            .output(out.path())
            .set("refresh", json!({ "interval": interval }))
            .secret(json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db" }, "refresh": "1h30m" }))
            .write(work.path(), "config.yaml");
        ramsecrets(&["check", "--config", cfg.to_str().unwrap()])
    };
    let o = check("1d");
    assert_exit(&o, 0);
    assert!(text(&o).contains("poll every 1d,"), "{}", text(&o));
    assert!(text(&o).contains(", every 1h30m"), "{}", text(&o));
    let o = check("5M");
    assert_exit(&o, 78);
    let t = text(&o);
    assert!(
        t.contains("refresh.interval")
            && t.contains("unknown unit `M`")
            && t.contains("ms, s, m, h or d"),
        "{t}"
    );
    let o = ramsecrets(&["init", "--config", "x", "--timeout", "soon"]);
    assert_exit(&o, 64);
    let t = text(&o);
    assert!(
        t.contains("ms, s, m, h or d") && !t.contains("expected number at 0"),
        "{t}"
    );
}

#[test]
fn the_dev_example_keeps_its_proxy_token_in_the_directory_made_for_it() {
    let work = scratch();
    let out = Tmpfs::new("4m");
    let port = free_port();
    let config = dev_config(out.path()).replace("127.0.0.1:2773", &format!("127.0.0.1:{port}"));
    let cfg = file(work.path(), "dev.yaml", &config);
    let mut run = Running::start(work.path(), &["proxy", "--config", cfg.to_str().unwrap()]);
    run.wait_log("proxy listening", std::time::Duration::from_secs(60));
    // Not in /dev/shm itself, where any uid could have planted it first.
    let token = std::fs::read_to_string(out.path().join("proxy-token")).unwrap();
    let answer = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/secretsmanager/get?secretId=prod/api"
        ))
        .header("X-Aws-Parameters-Secrets-Token", &token)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(run.stop(rustix::process::Signal::TERM), Some(0));
    assert!(!run.logs().contains(&token));
}

#[test]
fn a_yaml_syntax_error_is_said_once_in_plain_words() {
    let work = scratch();
    let cfg = file(
        work.path(),
        "config.yaml",
        "sources:\n  - file: { path: dev.yaml }\noutput:\n    dir: /dev/shm\n  mode: \"0400\"\nsecrets: []\n",
    );
    let o = ramsecrets(&["check", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 78);
    let t = text(&o);
    assert!(
        t.contains("line 5, column 3: not valid YAML: a line is indented differently"),
        "{t}"
    );
    assert_eq!(t.matches("column").count(), 1, "{t}");
    assert!(!t.contains("(top)") && !t.contains("while parsing"), "{t}");
}

#[test]
fn the_schema_carries_the_rules_an_editor_checks() {
    let work = scratch();
    let o = ramsecrets(&["schema"]);
    assert_exit(&o, 0);
    let schema = file(
        work.path(),
        "schema.json",
        &String::from_utf8_lossy(&o.stdout),
    );
    let schema_value: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema_value["title"], "ramsecrets configuration");
    assert!(
        !o.stdout.windows(3).any(|w| w == b"Raw"),
        "Rust type names in the schema"
    );
    // Every example passes; each mistake fails.
    let good = ["dev.yaml", "vault.yaml", "aws.yaml"].map(|e| repo().join("examples").join(e));
    let base = "sources:\n  - file: { path: d.yaml }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: m, path: p }\n";
    let bad = [
        ("two kinds of source", base.replace("- file: { path: d.yaml }", "- file: { path: d.yaml }\n    vault: { address: http://v, auth: { token_file: t } }")),
        ("a secret with no address", base.replace("    kv: { mount: m, path: p }\n", "")),
        ("two auth methods", base.replace("- file: { path: d.yaml }", "- vault: { address: http://v, auth: { token_file: t, jwt: { role: r, token_file: j } } }")),
        ("a month", format!("{base}refresh:\n  interval: 5M\n")),
        ("a fraction", format!("{base}    refresh: 1.5h\n")),
        ("a mode", base.replace("/x }", "/x, mode: \"0648\" }")),
        ("a template with two texts", format!("{base}templates:\n  - file: t\n    template: x\n    template_file: f\n")),
        ("a template with no text", format!("{base}templates:\n  - file: t\n")),
        ("a secret with two templates", format!("{base}    template: x\n    template_file: f\n")),
        ("a cert login without its key", base.replace("- file: { path: d.yaml }", "- vault: { address: https://v, auth: { cert: { client_cert: c } } }")),
    ];
    let mut docs = Vec::new();
    for path in &good {
        docs.push(("good", path.clone()));
    }
    for (i, (_, text)) in bad.iter().enumerate() {
        docs.push(("bad", file(work.path(), &format!("bad{i}.yaml"), text)));
    }
    let mut script = format!(
        "import json, sys, yaml, jsonschema\nschema = json.load(open({:?}))\nv = jsonschema.Draft202012Validator(schema)\n",
        schema.display()
    );
    for (want, path) in &docs {
        script.push_str(&format!(
            "errors = list(v.iter_errors(yaml.safe_load(open({:?}))))\nprint({want:?}, 'valid' if not errors else 'invalid', {:?}, errors[0].message if errors else '')\n",
            path.display(),
            path.file_name().unwrap().to_string_lossy()
        ));
    }
    let report = python_report(&script);
    for line in report.lines() {
        assert!(
            line.starts_with("good valid") || line.starts_with("bad invalid"),
            "{report}"
        );
    }
    assert_eq!(report.lines().count(), docs.len(), "{report}");
}

#[test]
fn templates_escape_values_with_urlencode_tojson_and_base64() {
    let work = scratch();
    let out = Tmpfs::new("4m");
    let password = "p@ss:w/rd#?%&=+ \"q\"";
    file(
        work.path(),
        "dev.yaml",
        &format!(
            "secret/app/db:\n  username: app\n  password: {}\n  cert_b64: aGVsbG8=\n",
            serde_json::to_string(password).unwrap()
        ),
    );
    let templated = |name: &str, template: &str| json!({ "name": name, "kv": { "mount": "secret", "path": "app/db" }, "template": template });
    let config = Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .secret(templated(
            "url",
            "postgres://{{ username | urlencode }}:{{ password | urlencode }}@db:5432/app?sslmode=require",
        ))
        .secret(templated("json", r#"{"password": {{ password | tojson }}}"#))
        .secret(templated(
            "b64",
            "{{ password | b64encode }} {{ cert_b64 | b64decode }}",
        ))
        .yaml();
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 0);
    // A URL parser gets the password back, and the host and path are intact.
    let py = repo().join(".venv/bin/python");
    let parsed = std::process::Command::new(py)
        .arg("-c")
        .arg("import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.unquote(p.password), p.hostname, p.port, p.path, p.query, sep='|')")
        .arg(out.read("url"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim_end(),
        format!("{password}|db|5432|/app|sslmode=require")
    );
    let json: serde_json::Value = serde_json::from_str(&out.read("json")).unwrap();
    assert_eq!(json["password"], password);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(password);
    assert_eq!(out.read("b64"), format!("{b64} hello"));
    assert!(!text(&o).contains("p@ss"));
}

#[test]
fn each_command_has_its_own_help() {
    let help = |cmd: &str| {
        let o = ramsecrets(&[cmd, "--help"]);
        assert_exit(&o, 0);
        text(&o)
    };
    let exec = help("exec");
    for said in [
        "forwarded",
        "exec.on_change",
        "127",
        "126",
        "128+N",
        "-- /usr/bin/app",
    ] {
        assert!(exec.contains(said), "`{said}` not in exec --help:\n{exec}");
    }
    let tails: Vec<String> = ["init", "run", "exec", "proxy", "inject", "check", "schema"]
        .iter()
        .map(|c| {
            let h = help(c);
            assert!(
                h.contains(&format!("ramsecrets {c} ")) || *c == "schema",
                "{c}:\n{h}"
            );
            h.split("Example").nth(1).unwrap_or_default().to_owned()
        })
        .collect();
    for (i, a) in tails.iter().enumerate() {
        for b in &tails[i + 1..] {
            assert_ne!(a, b, "two commands share one help text");
        }
    }
    assert!(help("schema").contains("yaml-language-server"));
    // `check --online` logs in: its help does not say otherwise.
    let check = help("check");
    assert!(
        !check.contains("\nNo server is contacted")
            && check.contains("Without --online no server is contacted"),
        "{check}"
    );
}

#[test]
fn the_book_covers_what_users_look_for() {
    for (page, said) in [
        (
            "reference/configuration.md",
            "exactly one of `vault`, `aws_secrets_manager`, `ssm_parameter_store` or `file`",
        ),
        (
            "reference/configuration.md",
            "# yaml-language-server: $schema=ramsecrets.schema.json",
        ),
        (
            "modes.md",
            "`ramsecrets exec --config F [--timeout 2m] -- CMD ARGS…`",
        ),
        ("reference/config-keys.md", "the subdirectories they needed"),
    ] {
        let text = std::fs::read_to_string(repo().join("docs").join(page)).unwrap();
        assert!(text.contains(said), "docs/{page} lacks `{said}`");
    }
}

#[test]
fn inject_needs_an_inject_section_and_says_what_is_wrong_with_it() {
    let dev = repo().join("examples/dev.yaml");
    let o = ramsecrets(&["inject", "--config", dev.to_str().unwrap()]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("no `inject:` section"), "{}", text(&o));

    let work = scratch();
    let cfg = file(
        work.path(),
        "inject.yaml",
        "sources:\n  - vault: { address: https://v:8200, auth: { kubernetes: { role: r } } }\ninject:\n  tls: { cert_file: missing.crt, key_file: missing.key }\n  image: ramsecrets:test\n  kubernetes_version: \"1.35\"\n",
    );
    let o = ramsecrets(&["inject", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("missing.crt"), "{}", text(&o));
}

#[test]
fn exec_of_a_command_that_does_not_exist_says_so_before_any_login() {
    let work = scratch();
    // A Vault nobody answers at: a login would retry until --timeout.
    let cfg = Config::new()
        .source(json!({ "vault": { "address": format!("http://127.0.0.1:{}", free_port()), "auth": { "token_file": "token" } } }))
        .set("proxy", json!({ "listen": format!("127.0.0.1:{}", free_port()), "token_file": "proxy-token" }))
        .secret(json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db" } }))
        .write(work.path(), "config.yaml");
    let o = ramsecrets(&[
        "exec",
        "--config",
        cfg.to_str().unwrap(),
        "--timeout",
        "1m",
        "--",
        "no-such-command-here",
    ]);
    assert_exit(&o, 127);
    let t = text(&o);
    assert!(t.contains("cannot start `no-such-command-here`"), "{t}");
    assert!(!t.contains("login") && !t.contains("Vault"), "{t}");
}

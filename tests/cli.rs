//! The command line on the `file` source: the README's main job, `check`,
//! `schema`, usage errors, and file-source specifics (binary values, missing keys).

mod common;

use common::*;

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
    let o = ramsecrets(&[
        "check",
        "--config",
        repo().join("examples/dev.yaml").to_str().unwrap(),
    ]);
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
    assert!(!t.contains("dev-only-password"), "{t}");
}

#[test]
fn schema_is_json_with_the_contract_keys() {
    let o = ramsecrets(&["schema"]);
    assert_exit(&o, 0);
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let props = &schema["properties"];
    for key in ["sources", "output", "secrets", "mlock", "templates"] {
        assert!(props.get(key).is_some(), "{key} missing from {props}");
    }
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_exit(&ramsecrets(&["init"]), 64);
    assert_exit(&ramsecrets(&["frobnicate"]), 64);
    assert_exit(
        &ramsecrets(&["init", "--config", "x", "--timeout", "soon"]),
        64,
    );
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
    let config = |secrets: &str| {
        format!(
            "sources:\n  - file: {{ path: dev.yaml }}\noutput: {{ dir: {} }}\nsecrets:\n{secrets}",
            out.path().display()
        )
    };
    let o = init(
        work.path(),
        &config("  - name: bin\n    secret_id: blobs/one\n    key: data\n"),
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
        &config("  - name: j\n    secret_id: blobs/one\n"),
        &[],
    );
    assert_exit(&o, 65);
    assert!(text(&o).contains("field `data` is binary"), "{}", text(&o));
    // A missing address names it and the file.
    let o = init(
        work.path(),
        &config("  - name: m\n    kv: { mount: secret, path: nope }\n"),
        &[],
    );
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
    for example in ["dev.yaml", "vault.yaml", "aws.yaml"] {
        let path = repo().join("examples").join(example);
        let o = ramsecrets(&["check", "--config", path.to_str().unwrap()]);
        assert_exit(&o, 0);
    }
}

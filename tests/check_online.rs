//! `ramsecrets check --online` against OpenBao (with PostgreSQL for the
//! database engine): a policy that allows some paths and denies others, a
//! missing path, a path under no secrets engine, and an unreachable source;
//! the table, the worst exit code, and counts in OpenBao proving that no
//! certificate or database lease was minted. And against moto: AWS secrets
//! secrets and Parameter Store parameters are read and dropped.

mod common;

use common::moto::{AwsEnv, Moto};
use common::*;
use serde_json::{json, Value};

/// How many PKI certificates and database leases OpenBao holds.
fn minted(bao: &Bao) -> (usize, usize) {
    let (status, v) = bao.api_as(&bao.token, "LIST", "pki/certs", Value::Null);
    assert_eq!(status, 200, "LIST pki/certs: {v}");
    let certs = v["data"]["keys"].as_array().map_or(0, Vec::len);
    (certs, bao.leases("database/creds/app"))
}

/// `ramsecrets check --config <cfg> --online --timeout <timeout>`.
fn online(cfg: &std::path::Path, timeout: &str) -> std::process::Output {
    let cfg = cfg.to_str().unwrap();
    ramsecrets(&["check", "--config", cfg, "--online", "--timeout", timeout])
}

/// The table line of `secret`, with single spaces.
fn row(out: &str, secret: &str) -> String {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|l| l.starts_with(&format!("{secret} ")))
        .unwrap_or_else(|| panic!("no row for {secret} in:\n{out}"))
}

#[test]
fn check_online_reports_each_secret_and_mints_nothing() {
    let bao = Bao::start();
    let pg = Postgres::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    bao.kv2_put("app/db", json!({ "password": "kv-secret-value" }));
    bao.kv2_put("other/x", json!({ "v": "not-yours" }));
    bao.api("POST", "sys/mounts/pki", json!({ "type": "pki" }));
    bao.api(
        "POST",
        "pki/root/generate/internal",
        json!({ "common_name": "ca", "ttl": "24h" }),
    );
    for role in ["web", "admin"] {
        bao.api(
            "POST",
            &format!("pki/roles/{role}"),
            json!({ "allow_any_name": true }),
        );
    }
    bao.database(&pg, "1h", "2h");
    let token = bao.token_with_policy(
        "checker",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }
path \"database/creds/app\" { capabilities = [\"read\"] }
path \"pki/issue/web\" { capabilities = [\"update\"] }
path \"nope/creds/x\" { capabilities = [\"read\"] }",
    );
    let token = file(work.path(), "token", &token);
    let closed = free_port();
    let secret = |name: &str, source: &str, fields: serde_json::Value| {
        let mut secret = json!({ "name": name, "source": source });
        for (key, value) in fields.as_object().unwrap() {
            secret[key] = value.clone();
        }
        secret
    };
    let secrets = [
        secret(
            "db",
            "vault",
            json!({ "kv": { "mount": "secret", "path": "app/db" } }),
        ),
        secret(
            "db-password",
            "vault",
            json!({ "kv": { "mount": "secret", "path": "app/db" }, "key": "password" }),
        ),
        secret("creds", "vault", json!({ "read": "database/creds/app" })),
        secret(
            "tls",
            "vault",
            json!({ "pki": { "mount": "pki", "role": "web", "common_name": "a.svc" } }),
        ),
        secret(
            "other",
            "vault",
            json!({ "kv": { "mount": "secret", "path": "other/x" } }),
        ),
        secret(
            "admin-tls",
            "vault",
            json!({ "pki": { "mount": "pki", "role": "admin", "common_name": "a.svc" } }),
        ),
        secret(
            "gone",
            "vault",
            json!({ "kv": { "mount": "secret", "path": "app/gone" } }),
        ),
        secret("nomount", "vault", json!({ "read": "nope/creds/x" })),
        secret(
            "remote",
            "far",
            json!({ "kv": { "mount": "secret", "path": "app/db" } }),
        ),
    ];
    // The config, without the secrets named in `skip`.
    let without = |skip: &[&str]| {
        let base = Config::new()
            .source(json!({ "name": "vault", "vault": { "address": bao.addr, "auth": { "token_file": token } } }))
            .source(json!({ "name": "far", "vault": {
                "address": format!("http://127.0.0.1:{closed}"),
                "auth": { "token_file": token },
            } }))
            .output(out.path());
        secrets
            .iter()
            .filter(|s| !skip.iter().any(|n| s["name"] == *n))
            .fold(base, |config, s| config.secret(s.clone()))
    };
    let cfg = without(&[]).write(work.path(), "config.yaml");
    let before = minted(&bao);
    assert_eq!(before, (1, 0), "the CA certificate, no lease");
    let o = online(&cfg, "10s");
    // The worst status: denied.
    assert_exit(&o, 77);
    let t = text(&o);
    assert!(t.contains("SECRET"), "{t}");
    for (secret, expected) in [
        ("db", "db vault kv secret/app/db ok"),
        ("db-password", "db-password vault kv secret/app/db ok"),
        ("creds", "creds vault read database/creds/app ok"),
        ("tls", "tls vault pki pki/issue/web ok"),
        ("other", "other vault kv secret/other/x denied"),
        ("admin-tls", "admin-tls vault pki pki/issue/admin denied"),
        ("gone", "gone vault kv secret/app/gone missing"),
        ("nomount", "nomount vault read nope/creds/x missing"),
        ("remote", "remote far kv secret/app/db unreachable"),
    ] {
        assert!(row(&t, secret).starts_with(expected), "{t}");
    }
    assert!(t.contains("4 of 9 secret(s) readable"), "{t}");
    assert!(
        !t.contains("kv-secret-value") && !t.contains("not-yours"),
        "{t}"
    );
    // Nothing minted, nothing written.
    assert_eq!(minted(&bao), before);
    assert!(out.names().is_empty(), "{:?}", out.names());

    // Only readable secrets: 0.
    let cfg = without(&["other", "admin-tls", "gone", "nomount", "remote"])
        .write(work.path(), "readable.yaml");
    let o = online(&cfg, "30s");
    assert_exit(&o, 0);
    assert!(
        text(&o).contains("4 of 4 secret(s) readable"),
        "{}",
        text(&o)
    );
    assert_eq!(minted(&bao), before);

    // Without a denied secret, the worst is the unreachable source: 69.
    let cfg = without(&["other", "admin-tls"]).write(work.path(), "unreachable.yaml");
    let o = online(&cfg, "5s");
    assert_exit(&o, 69);
}

/// Both AWS backends: one secret read and its value dropped, one missing (65).
#[test]
fn check_online_reads_aws_secrets_and_parameters_and_drops_them() {
    let moto = Moto::start();
    moto.create("prod/api", r#"{"token":"aws-secret-value"}"#);
    moto.put_parameter("/app/token", "ssm-secret-value", "SecureString");
    let backends = [
        (
            "aws_secrets_manager",
            "secret_id",
            "prod/api",
            "prod/gone",
            "aws",
        ),
        (
            "ssm_parameter_store",
            "parameter",
            "/app/token",
            "/app/gone",
            "ssm",
        ),
    ];
    for (source, key, here, gone, name) in backends {
        let work = scratch();
        let out = Tmpfs::new("1m");
        let cfg = Config::new()
            .source(json!({ source: { "region": "us-east-1", "endpoint": moto.url } }))
            .output(out.path())
            .secret(json!({ "name": "here", key: here }))
            .secret(json!({ "name": "gone", key: gone }))
            .write(work.path(), "config.yaml");
        let o = AwsEnv::keys()
            .command(&["check", "--config", cfg.to_str().unwrap(), "--online"])
            .output()
            .unwrap();
        assert_exit(&o, 65);
        let t = text(&o);
        let ok = format!("here {name} {key} {here} ok");
        assert!(row(&t, "here").starts_with(&ok), "{t}");
        let missing = format!("gone {name} {key} {gone} missing");
        assert!(row(&t, "gone").starts_with(&missing), "{t}");
        assert!(!t.contains("-secret-value"), "{t}");
        assert!(out.names().is_empty(), "{:?}", out.names());
    }
}

/// The AWS SDK's own INFO lines (the credentials it loaded, with the access
/// key id) show only from `--log-level debug` on.
#[test]
fn the_aws_sdks_info_lines_are_not_shown_at_the_default_level() {
    let moto = Moto::start();
    moto.create("prod/api", r#"{"token":"aws-secret-value"}"#);
    let work = scratch();
    let cfg = Config::new()
        .source(json!({ "aws_secrets_manager": { "region": "us-east-1", "endpoint": moto.url } }))
        .set("proxy", json!({ "token_file": "token" }))
        .secret(json!({ "name": "api", "secret_id": "prod/api" }))
        .write(work.path(), "config.yaml");
    let env = AwsEnv::bare();
    let profile = "[default]\naws_access_key_id = AKIAPROFILEKEY01\naws_secret_access_key = x\n";
    std::fs::write(env.dir().join("credentials"), profile).unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--config", cfg.to_str().unwrap(), "--online"];
        args.extend_from_slice(extra);
        let o = env.command(&args).output().unwrap();
        assert_exit(&o, 0);
        text(&o)
    };
    let quiet = check(&[]);
    assert!(!quiet.contains("AKIAPROFILEKEY01"), "{quiet}");
    assert!(!quiet.contains("loaded base credentials"), "{quiet}");
    let verbose = check(&["--log-level", "debug"]);
    assert!(verbose.contains("loaded base credentials"), "{verbose}");
}

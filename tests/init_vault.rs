//! `ramsecrets init` against a real OpenBao dev server: every secret kind,
//! every format, every auth method, and the bad inputs with their exit codes.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::*;
use serde_json::json;

fn vault_source(bao: &Bao, token_file: &std::path::Path) -> serde_json::Value {
    json!({ "name": "vault", "vault": { "address": bao.addr, "auth": { "token_file": token_file } } })
}

#[test]
fn writes_kv_v1_v2_read_and_pki_in_every_format() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("16m");
    bao.api(
        "POST",
        "sys/mounts/kv1",
        json!({ "type": "kv", "options": { "version": "1" } }),
    );
    bao.api(
        "POST",
        "kv1/app/cfg",
        json!({ "user": "svc", "pass": "v1-pass", "port": 5432 }),
    );
    bao.kv2_put(
        "app/db",
        json!({ "username": "app", "password": "first-pass" }),
    );
    bao.kv2_put(
        "app/db",
        json!({ "username": "app", "password": "second pass's \"$x\"\nline2" }),
    );
    bao.api(
        "POST",
        "sys/mounts/pki",
        json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } }),
    );
    bao.api(
        "POST",
        "pki/root/generate/internal",
        json!({ "common_name": "Test Root CA", "ttl": "87600h" }),
    );
    bao.api(
        "POST",
        "pki/roles/web",
        json!({ "allowed_domains": ["svc"], "allow_subdomains": true, "max_ttl": "72h" }),
    );
    let token = file(work.path(), "token", &format!("{}\n", bao.token));
    assert!(
        is_root(),
        "output.owner needs root to give files away: run the tests as root (CI does)"
    );
    let config = Config::new()
        .source(vault_source(&bao, &token))
        .set(
            "output",
            json!({ "dir": out.path(), "mode": "0440", "owner": "1234:2345" }),
        )
        .secret(json!({ "name": "v1", "kv": { "mount": "kv1", "path": "app/cfg" }, "format": "yaml" }))
        .secret(json!({ "name": "v2", "kv": { "mount": "secret", "path": "app/db" }, "file": "db.json" }))
        .secret(json!({
            "name": "v2-pinned",
            "kv": { "mount": "secret", "path": "app/db", "version": 1 },
            "key": "password",
            "mode": "0400",
        }))
        .secret(json!({
            "name": "v2-forced",
            "kv": { "mount": "secret", "path": "app/db", "kv_version": 2 },
            "file": "sub/db.env",
            "format": "env",
        }))
        .secret(json!({
            "name": "dotenv",
            "kv": { "mount": "secret", "path": "app/db" },
            "file": "db.dotenv",
            "format": "dotenv",
        }))
        .secret(json!({
            "name": "url",
            "kv": { "mount": "secret", "path": "app/db" },
            "template": "postgres://{{ username }}@db/{{ password | length }}",
        }))
        .secret(json!({ "name": "generic", "read": "kv1/app/cfg", "key": "port" }))
        .secret(json!({
            "name": "tls",
            "pki": { "mount": "pki", "role": "web", "common_name": "app.default.svc", "ttl": "1h", "alt_names": ["app.svc"] },
        }))
        .yaml();
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 0);
    assert_eq!(
        out.names(),
        [
            "db.dotenv",
            "db.json",
            "generic",
            "sub",
            "tls.ca.crt",
            "tls.crt",
            "tls.key",
            "url",
            "v1",
            "v2-pinned"
        ]
    );
    assert_eq!(out.read("v1"), "pass: v1-pass\nport: \"5432\"\nuser: svc\n");
    let db: serde_json::Value = serde_json::from_str(&out.read("db.json")).unwrap();
    assert_eq!(db["password"], "second pass's \"$x\"\nline2");
    assert_eq!(out.read("v2-pinned"), "first-pass");
    assert_eq!(out.read("generic"), "5432");
    assert_eq!(out.read("url"), "postgres://app@db/24");
    // The env file is safe to source whatever the value holds.
    assert_eq!(
        out.source_var("sub/db.env", "password"),
        "second pass's \"$x\"\nline2"
    );
    assert!(out
        .read("db.dotenv")
        .contains("password=\"second pass's \\\"$x\\\"\\nline2\""));
    // The certificate is real and chains to the CA.
    assert!(out.read("tls.key").contains("PRIVATE KEY"));
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(out.path().join("tls.ca.crt"))
        .arg(out.path().join("tls.crt"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Modes and owner as configured.
    let meta = |f: &str| std::fs::metadata(out.path().join(f)).unwrap();
    assert_eq!(meta("db.json").permissions().mode() & 0o777, 0o440);
    assert_eq!(meta("v2-pinned").permissions().mode() & 0o777, 0o400);
    assert_eq!((meta("tls.key").uid(), meta("tls.key").gid()), (1234, 2345));
    // Without output.state_dir, nothing is handed over, and said once.
    assert_eq!(text(&o).matches("nothing is handed over").count(), 1);
}

#[test]
fn logs_in_with_approle_and_jwt() {
    let bao = Bao::start();
    let work = scratch();
    bao.kv2_put("app/db", json!({ "password": "via-login" }));
    bao.app_policy();
    let (rid, sid) = bao.approle(work.path());

    // JWT, with a key pair made here.
    let signer = JwtSigner::new(work.path());
    let now = now_unix();
    let jwt =
        signer.sign(json!({ "sub": "ci-job", "aud": "ramsecrets", "iat": now, "exp": now + 600 }));
    bao.api("POST", "sys/auth/jwt", json!({ "type": "jwt" }));
    bao.api(
        "POST",
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [signer.public_pem] }),
    );
    bao.api(
        "POST",
        "auth/jwt/role/ci",
        json!({ "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["ramsecrets"], "token_policies": ["app"] }),
    );
    let jwt_file = file(work.path(), "jwt", &jwt);

    let auths = [
        (
            "approle",
            json!({ "approle": { "role_id_file": rid, "secret_id_file": sid } }),
        ),
        (
            "jwt",
            json!({ "jwt": { "role": "ci", "token_file": jwt_file } }),
        ),
    ];
    for (name, auth) in auths {
        let out = Tmpfs::new("1m");
        let config = Config::new()
            .source(vault(&bao.addr, auth))
            .output(out.path())
            .secret(kv_key("pw", "app/db", "password"))
            .yaml();
        let o = init(work.path(), &config, &[]);
        assert_exit(&o, 0);
        assert_eq!(out.read("pw"), "via-login", "{name}");
    }

    // A login the server rejects is a permission error.
    let bad = file(
        work.path(),
        "bad-secret-id",
        "00000000-0000-0000-0000-000000000000",
    );
    let out = Tmpfs::new("1m");
    let config = Config::new()
        .source(vault(
            &bao.addr,
            json!({ "approle": { "role_id_file": rid, "secret_id_file": bad } }),
        ))
        .output(out.path())
        .secret(kv("pw", "secret", "app/db"))
        .yaml();
    let o = init(work.path(), &config, &[]);
    assert_exit(&o, 77);
    assert!(text(&o).contains("approle login"), "{}", text(&o));
}

#[test]
fn backend_errors_name_every_secret_and_write_nothing() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("1m");
    bao.kv2_put("app/db", json!({ "password": "pw" }));
    bao.kv2_put("other/x", json!({ "password": "other" }));
    std::fs::write(out.path().join("db"), "old").unwrap();
    let limited = bao.token_with_policy(
        "limited",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"kv1/*\" { capabilities = [\"read\"] }",
    );
    let token = file(work.path(), "token", &limited);
    let run = |secrets: &[serde_json::Value]| {
        let config = secrets.iter().fold(
            Config::new()
                .source(vault_source(&bao, &token))
                .output(out.path())
                .secret(kv_key("db", "app/db", "password")),
            |config, s| config.secret(s.clone()),
        );
        init(work.path(), &config.yaml(), &[])
    };
    // 403 → 77
    let o = run(&[kv("denied", "secret", "other/x")]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("secret `denied`") && text(&o).contains("permission denied"),
        "{}",
        text(&o)
    );
    // Missing path → 65, and every failed secret is named.
    let o = run(&[
        kv("gone", "secret", "app/nope"),
        kv_key("nokey", "app/db", "user"),
    ]);
    assert_exit(&o, 65);
    let t = text(&o);
    assert!(
        t.contains("secret `gone`") && t.contains("not found"),
        "{t}"
    );
    assert!(
        t.contains("secret `nokey`") && t.contains("field `user` is not in the secret"),
        "{t}"
    );
    // A pinned version on a KV v1 mount → 65, naming the mount.
    bao.api(
        "POST",
        "sys/mounts/kv1",
        json!({ "type": "kv", "options": { "version": "1" } }),
    );
    let o =
        run(&[json!({ "name": "pinned", "kv": { "mount": "kv1", "path": "x", "version": 2 } })]);
    assert_exit(&o, 65);
    assert!(text(&o).contains("mount `kv1` is KV v1"), "{}", text(&o));
    // Template naming a missing field → 65.
    let o = run(&[json!({
        "name": "tmpl",
        "kv": { "mount": "secret", "path": "app/db" },
        "template": "{{ password }}/{{ username }}",
    })]);
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("field `username` is not in the secret (it has: password)"),
        "{}",
        text(&o)
    );
    // All or nothing: `db` succeeded each time, yet no file changed.
    assert_eq!(out.names(), ["db"]);
    assert_eq!(out.read("db"), "old");
    assert!(!text(&o).contains("\"pw\""));
    let o = run(&[]);
    assert_exit(&o, 0);
    assert_eq!(out.read("db"), "pw");
}

#[test]
fn unreachable_and_hanging_backends_exit_69() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let token = file(work.path(), "token", "t");
    let config = |addr: &str| {
        Config::new()
            .source(json!({ "vault": {
                "address": addr,
                "auth": { "token_file": token },
                "request_timeout": "1s",
            } }))
            .output(out.path())
            .secret(json!({ "name": "db", "read": "secret/data/x" }))
            .yaml()
    };
    let closed = free_port();
    let o = init(
        work.path(),
        &config(&format!("http://127.0.0.1:{closed}")),
        &["--timeout", "2s"],
    );
    assert_exit(&o, 69);
    assert!(text(&o).contains("backend unavailable"), "{}", text(&o));
    let (port, _h) = hanging_server();
    let started = std::time::Instant::now();
    let o = init(
        work.path(),
        &config(&format!("http://127.0.0.1:{port}")),
        &["--timeout", "3s"],
    );
    assert_exit(&o, 69);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(out.names().is_empty());
}

#[test]
fn local_setup_errors_exit_78() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("1m");
    let config = |source: serde_json::Value| {
        Config::new()
            .source(source)
            .output(out.path())
            .secret(json!({ "name": "db", "read": "secret/data/x" }))
    };
    let missing = work.path().join("missing-token");
    let o = init(
        work.path(),
        &config(vault_source(&bao, &missing)).yaml(),
        &[],
    );
    assert_exit(&o, 78);
    assert!(
        text(&o).contains(&format!("token_file {}", missing.display())),
        "{}",
        text(&o)
    );
    let empty = file(work.path(), "empty-token", "\n");
    let o = init(work.path(), &config(vault_source(&bao, &empty)).yaml(), &[]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("is empty"), "{}", text(&o));
    let ca = file(work.path(), "ca.pem", "not a certificate\n");
    let token = file(work.path(), "token", &bao.token);
    let with_ca = config(json!({ "vault": {
        "address": "https://127.0.0.1:1",
        "ca_cert": ca,
        "auth": { "token_file": token },
    } }));
    let o = init(work.path(), &with_ca.yaml(), &[]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains(&format!("ca_cert {}", ca.display())),
        "{}",
        text(&o)
    );
    // A bad config is reported with its key and line, before anything is
    // contacted (the text as written, to name its line).
    let typo = format!(
        "sources:\n  - vault:\n      address: {}\n      auth:\n        token_file: {}\noutput:\n  dir: {}\nsecrets:\n  - name: db\n    read: secret/data/x\n    formt: json\n",
        bao.addr,
        token.display(),
        out.path().display()
    );
    let o = init(work.path(), &typo, &[]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("secrets[0].formt (line 11, column 5): unknown field `formt`"),
        "{}",
        text(&o)
    );
}

#[test]
fn output_problems_exit_73_and_keep_old_files() {
    assert!(
        is_root(),
        "this test mounts a tiny tmpfs to fill it: run the tests as root (CI does)"
    );
    let bao = Bao::start();
    let work = scratch();
    bao.kv2_put("big", json!({ "blob": "x".repeat(256 * 1024) }));
    bao.kv2_put("small", json!({ "v": "fresh" }));
    let token = file(work.path(), "token", &bao.token);
    let config = |dir: &std::path::Path, allow_disk: bool| {
        Config::new()
            .source(vault_source(&bao, &token))
            .set("output", json!({ "dir": dir, "allow_disk": allow_disk }))
            .secret(kv_key("small", "small", "v"))
            .secret(kv_key("big", "big", "blob"))
            .yaml()
    };
    // Missing directory.
    let o = init(work.path(), &config(&work.path().join("nope"), false), &[]);
    assert_exit(&o, 73);
    assert!(
        text(&o).contains("does not exist: create it, or mount a memory volume there"),
        "{}",
        text(&o)
    );
    // A directory on disk, refused unless allow_disk.
    let disk = work.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let o = init(work.path(), &config(&disk, false), &[]);
    assert_exit(&o, 73);
    assert!(text(&o).contains("is not tmpfs or ramfs"), "{}", text(&o));
    assert_exit(&init(work.path(), &config(&disk, true), &[]), 0);
    // ENOSPC: a 64 KiB tmpfs cannot hold the big secret; the old files stay, no temporary is left.
    let tiny = Tmpfs::new("64k");
    std::fs::write(tiny.path().join("small"), "old").unwrap();
    let o = init(work.path(), &config(tiny.path(), false), &[]);
    assert_exit(&o, 73);
    assert!(text(&o).contains("No space left on device"), "{}", text(&o));
    assert_eq!(tiny.names(), ["small"]);
    assert_eq!(tiny.read("small"), "old");
    // A symlink planted at a target name, pointing outside, is replaced and not followed.
    let out = Tmpfs::new("4m");
    let victim = file(work.path(), "victim", "untouched");
    std::os::unix::fs::symlink(&victim, out.path().join("small")).unwrap();
    assert_exit(&init(work.path(), &config(out.path(), false), &[]), 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(out.read("small"), "fresh");
    assert!(std::fs::symlink_metadata(out.path().join("small"))
        .unwrap()
        .is_file());
}

#[test]
fn trace_logs_never_show_a_secret() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    let values = ["Zq7-kv2-value-a81", "Zq7-kv1-value-b92", "Zq7-pki-never"];
    bao.kv2_put("app/db", json!({ "password": values[0], "username": "u" }));
    bao.api(
        "POST",
        "sys/mounts/kv1",
        json!({ "type": "kv", "options": { "version": "1" } }),
    );
    bao.api("POST", "kv1/app", json!({ "token": values[1] }));
    bao.api("POST", "sys/mounts/pki", json!({ "type": "pki" }));
    bao.api(
        "POST",
        "pki/root/generate/internal",
        json!({ "common_name": "ca", "ttl": "24h" }),
    );
    bao.api("POST", "pki/roles/web", json!({ "allow_any_name": true }));
    let token = file(work.path(), "token", &bao.token);
    let config = Config::new()
        .source(vault_source(&bao, &token))
        .output(out.path())
        .secret(
            json!({ "name": "a", "kv": { "mount": "secret", "path": "app/db" }, "format": "json" }),
        )
        .secret(json!({ "name": "b", "kv": { "mount": "kv1", "path": "app" }, "format": "env" }))
        .secret(json!({ "name": "c", "read": "kv1/app", "template": "x{{ token }}" }))
        .secret(json!({
            "name": "tls",
            "pki": { "mount": "pki", "role": "web", "common_name": "app.svc", "ttl": "1h" },
        }))
        .yaml();
    for format in ["text", "json"] {
        let o = init(
            work.path(),
            &config,
            &["--log-level", "trace", "--log-format", format],
        );
        assert_exit(&o, 0);
        let t = text(&o);
        assert!(
            t.lines().count() > 20,
            "trace output is suspiciously short:\n{t}"
        );
        for v in values.iter().take(2).chain([&bao.token.as_str()]) {
            assert!(
                !t.contains(v),
                "a secret value reached the {format} logs:\n{t}"
            );
        }
        let key = out.read("tls.key");
        let key_body = key.lines().nth(1).unwrap();
        assert!(!t.contains(key_body), "the private key reached the logs");
    }
    assert!(out.read("a").contains(values[0]));
}

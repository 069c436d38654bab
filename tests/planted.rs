//! Files that another uid could plant where ramsecrets looks: a hand-off
//! state, a huge sparse file at an output path, a proxy token file. None is
//! trusted, none crashes a start, and no value reaches the log. The tests run
//! as root and hand the planted files to uid 65534 with `chown`; one runs
//! ramsecrets itself as uid 65534 (`setpriv`), where root may own its token.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::*;
use rustix::process::Signal;
use serde_json::json;

const REAL: &str = "real-pass-1b2c";
const PLANTED: &str = "PLANTED-9z8y";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A `file` source config with a leased-style secret (`read:`) and a static
/// one, both from the source's `REAL` value.
fn config(work: &Path, out: &Path) -> Config {
    file(
        work,
        "dev.yaml",
        &format!("database/creds/app:\n  password: {REAL}\nsecret/app/kv:\n  password: {REAL}\n"),
    );
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .secret(json!({ "name": "db", "read": "database/creds/app", "key": "password" }))
        .secret(kv_key("kv", "app/kv", "password"))
}

/// A state document as `init` writes it, holding `PLANTED` for both secrets,
/// the lease of `db` taken at `lease_path`.
fn planted_state(lease_path: &str, fetched_at: u64) -> String {
    let held = |address: serde_json::Value| {
        json!({
            "address": address,
            "fetched_at": fetched_at,
            "version": null,
            "lease": { "id": format!("{lease_path}/x1"), "duration": 3600, "renewable": true },
            "expires": null,
            "fields": { "password": b64(PLANTED) },
        })
    };
    json!({
        "version": 2,
        "tokens": {},
        "secrets": {
            "db": held(json!({ "read": "database/creds/app" })),
            "kv": held(json!({ "kv": { "mount": "secret", "path": "app/kv", "kv_version": null, "version": null } })),
        },
    })
    .to_string()
}

fn chown(path: &Path, uid: u32) {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        None,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Runs the sidecar once on the planted state; returns its logs and what it wrote.
fn sidecar_with(work: &Path, out: &Tmpfs, cfg: &Path) -> (String, String, String) {
    let mut run = Running::sidecar(work, cfg);
    let (db, kv) = (out.read("db"), out.read("kv"));
    assert_eq!(run.stop(Signal::TERM), Some(0), "{}", run.logs());
    (run.logs(), db, kv)
}

/// Runs the sidecar once with a state dir (0700, on tmpfs) that `plant` fills.
fn sidecar_on_state(plant: impl FnOnce(&Path)) -> (String, String, String) {
    let (work, out, state) = (scratch(), Tmpfs::new("4m"), Tmpfs::new("4m"));
    let dir = state.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700)).unwrap();
    plant(&dir);
    let cfg = config(work.path(), out.path())
        .with("output", json!({ "state_dir": dir }))
        .write(work.path(), "config.yaml");
    sidecar_with(work.path(), &out, &cfg)
}

#[test]
fn a_planted_or_damaged_hand_off_state_is_never_adopted() {
    let now = now_unix();
    let good = planted_state("database/creds/app", now);
    // (what is planted, the reason logged)
    type Plant = fn(&Path, &str);
    let cases: [(&str, Plant, &str); 8] = [
        (
            "a file owned by another uid",
            |dir, doc| {
                std::fs::write(dir.join("state.json"), doc).unwrap();
                chown(&dir.join("state.json"), 65534);
            },
            "owned by uid 65534",
        ),
        (
            "a directory others can write",
            |dir, doc| {
                std::fs::write(dir.join("state.json"), doc).unwrap();
                std::fs::set_permissions(dir, PermissionsExt::from_mode(0o777)).unwrap();
            },
            "writable by group or others",
        ),
        (
            "a symlink to a good-looking file",
            |dir, doc| {
                let elsewhere = dir.join("elsewhere.json");
                std::fs::write(&elsewhere, doc).unwrap();
                std::os::unix::fs::symlink(&elsewhere, dir.join("state.json")).unwrap();
            },
            "symlink",
        ),
        (
            "a FIFO",
            |dir, _| {
                let ok = Command::new("mkfifo")
                    .arg(dir.join("state.json"))
                    .status()
                    .unwrap();
                assert!(ok.success());
            },
            "not a regular file",
        ),
        (
            "a file over 1 MiB",
            |dir, doc| {
                let padded = format!("{}{doc}", " ".repeat(2 << 20));
                std::fs::write(dir.join("state.json"), padded).unwrap();
            },
            "larger than 1048576 bytes",
        ),
        (
            "a fetched_at that overflows",
            |dir, _| {
                let doc = planted_state("database/creds/app", u64::MAX);
                std::fs::write(dir.join("state.json"), doc).unwrap();
            },
            "fetched_at is out of range",
        ),
        (
            "a state of another version",
            |dir, doc| {
                let doc = doc.replacen(r#""version":2"#, r#""version":1"#, 1);
                std::fs::write(dir.join("state.json"), doc).unwrap();
            },
            "the state is version 1, but this ramsecrets reads only version 2",
        ),
        (
            "a lease of another path",
            |dir, _| {
                let doc = planted_state("sys/other", now_unix());
                std::fs::write(dir.join("state.json"), doc).unwrap();
            },
            "",
        ),
    ];
    for (what, plant, reason) in cases {
        let (logs, db, kv) = sidecar_on_state(|dir| plant(dir, &good));
        assert_eq!((db.as_str(), kv.as_str()), (REAL, REAL), "{what}:\n{logs}");
        assert!(!logs.contains("adopting"), "{what}:\n{logs}");
        if !reason.is_empty() {
            let said = logs.matches("the hand-off state is not used").count();
            assert_eq!(said, 1, "{what}:\n{logs}");
            assert!(
                logs.contains(reason),
                "{what}: `{reason}` not said:\n{logs}"
            );
        }
        assert!(
            !logs.contains(PLANTED) && !logs.contains(&b64(PLANTED)),
            "{what}"
        );
    }
    // The same document, rightly owned, is adopted for the lease only: a
    // static secret is never taken from the state.
    let (logs, db, kv) = sidecar_on_state(|dir| {
        std::fs::write(dir.join("state.json"), &good).unwrap();
        std::fs::set_permissions(dir.join("state.json"), PermissionsExt::from_mode(0o400)).unwrap();
    });
    assert_eq!((db.as_str(), kv.as_str()), (PLANTED, REAL), "{logs}");
    assert!(!logs.contains("the hand-off state is not used"), "{logs}");
    assert!(!logs.contains(PLANTED), "{logs}");
}

#[test]
fn a_state_dir_on_disk_is_refused_by_init() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let disk = work.path().join("state");
    let cfg = config(work.path(), out.path())
        .with("output", json!({ "state_dir": disk }))
        .write(work.path(), "config.yaml");
    let o = ramsecrets(&["init", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 73);
    assert!(
        text(&o).contains("output.state_dir") && text(&o).contains("not on tmpfs or ramfs"),
        "{}",
        text(&o)
    );
    // Refused before anything was fetched or written.
    assert!(out.names().is_empty(), "{:?}", out.names());
}

#[test]
fn a_huge_sparse_file_at_an_output_path_is_replaced_by_init_and_run() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let cfg = config(work.path(), out.path()).write(work.path(), "config.yaml");
    let plant = || {
        let o = Command::new("truncate")
            .args(["-s", "1T"])
            .arg(out.path().join("db"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        chown(&out.path().join("db"), 65534);
    };
    plant();
    let o = ramsecrets(&["init", "--config", cfg.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert_eq!(out.read("db"), REAL);
    plant();
    let (logs, db, _) = sidecar_with(work.path(), &out, &cfg);
    assert_eq!(db, REAL, "{logs}");
    assert!(!text(&o).contains(REAL) && !logs.contains(REAL));
}

#[test]
fn an_untrusted_proxy_token_file_stops_the_proxy_with_77() {
    let port = free_port();
    // (how the file is planted, what the message says)
    type Plant = fn(&Path);
    let cases: [(Plant, &str); 4] = [
        (
            |p| {
                std::fs::write(p, PLANTED).unwrap();
                std::fs::set_permissions(p, PermissionsExt::from_mode(0o666)).unwrap();
                chown(p, 65534);
            },
            "owned by uid 65534, not by ramsecrets' uid 0 or root",
        ),
        (
            |p| {
                std::fs::write(p, PLANTED).unwrap();
                std::fs::set_permissions(p, PermissionsExt::from_mode(0o666)).unwrap();
            },
            "writable by group or others (mode 0666)",
        ),
        (
            |p| {
                let target = p.with_extension("target");
                std::fs::write(&target, PLANTED).unwrap();
                std::fs::set_permissions(&target, PermissionsExt::from_mode(0o440)).unwrap();
                std::os::unix::fs::symlink(&target, p).unwrap();
            },
            "symlink",
        ),
        (|p| std::fs::create_dir(p).unwrap(), "not a regular file"),
    ];
    for (plant, says) in cases {
        let (work, out) = (scratch(), Tmpfs::new("4m"));
        let token = work.path().join("proxy-token");
        plant(&token);
        let cfg = config(work.path(), out.path())
            .set(
                "proxy",
                json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "proxy-token" }),
            )
            .write(work.path(), "config.yaml");
        let o = ramsecrets(&["proxy", "--config", cfg.to_str().unwrap()]);
        assert_exit(&o, 77);
        let msg = text(&o);
        assert!(
            msg.contains(&token.display().to_string()) && msg.contains(says),
            "`{says}` not said:\n{msg}"
        );
        assert!(!msg.contains(PLANTED));
        // Refused before anything was fetched or written.
        assert!(out.names().is_empty(), "{:?}", out.names());
    }
}

#[test]
fn a_proxy_of_another_uid_trusts_a_token_file_of_its_own_or_roots_only() {
    // ramsecrets runs as uid 65534 (setpriv); the token file is 0444 so that
    // it can read whichever uid owns it.
    const TOKEN: &str = "proxy-token-7c2e";
    for (owner, trusted) in [(65534, true), (0, true), (1234, false)] {
        let work = scratch();
        std::fs::set_permissions(work.path(), PermissionsExt::from_mode(0o755)).unwrap();
        file(
            work.path(),
            "dev.yaml",
            &format!("prod/api:\n  token: {REAL}\n"),
        );
        let port = free_port();
        let cfg = Config::new()
            .source(file_source("dev.yaml"))
            .set(
                "proxy",
                json!({ "listen": format!("127.0.0.1:{port}"), "token_file": "proxy-token" }),
            )
            .secret(json!({ "name": "api", "secret_id": "prod/api", "key": "token" }))
            .write(work.path(), "config.yaml");
        let token = file(work.path(), "proxy-token", TOKEN);
        std::fs::set_permissions(&token, PermissionsExt::from_mode(0o444)).unwrap();
        chown(&token, owner);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_ramsecrets"))
            .args(["proxy", "--config", cfg.to_str().unwrap()])
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        let mut run = Running::spawn(work.path(), cmd);
        if trusted {
            run.wait_log("proxy listening", std::time::Duration::from_secs(60));
            let answer = reqwest::blocking::Client::new()
                .get(format!(
                    "http://127.0.0.1:{port}/secretsmanager/get?secretId=prod/api"
                ))
                .header("X-Aws-Parameters-Secrets-Token", TOKEN)
                .send()
                .unwrap();
            assert_eq!(answer.status().as_u16(), 200, "owner {owner}");
            assert_eq!(run.stop(Signal::TERM), Some(0), "{}", run.logs());
        } else {
            let mut code = None;
            wait_until(
                std::time::Duration::from_secs(60),
                "the proxy to refuse",
                || {
                    code = run.child.try_wait().unwrap().map(|s| s.code());
                    code.is_some()
                },
            );
            assert_eq!(code, Some(Some(77)), "{}", run.logs());
            let says = "owned by uid 1234, not by ramsecrets' uid 65534 or root";
            assert!(run.logs().contains(says), "{}", run.logs());
        }
        assert!(!run.logs().contains(TOKEN) && !run.logs().contains(REAL));
    }
}
